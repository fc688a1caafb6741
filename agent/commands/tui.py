"""`qkv chat` (alias `qkv tui`): the conversational Textual app. Textual loads inside the command only."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from qkv.agent.cli_app import SCHEMAS, JsonOpt, app, console

SCHEMAS["sessions"] = "qkv.tui.sessions:SessionInfo"


def chat(
    llm: Annotated[str, typer.Option(
        "--llm", help="who words the replies: local (bundled SmolLM2, default) | none (templates) | an "
                      "OpenAI-compatible URL; numbers never depend on it")] = "local",
    model: Annotated[str | None, typer.Option(
        "--model", help="local: a .gguf path or gemma3-270m; URL: the endpoint's model id")] = None,
    resume: Annotated[str | None, typer.Option(
        "--resume", "-r", help="resume a saved session: its thread id, or 'latest'")] = None,
    list_sessions: Annotated[bool, typer.Option("--list", help="list saved sessions and exit")] = False,
    follow: Annotated[Path | None, typer.Option(
        "--follow", help="a training run folder whose metrics.jsonl the Training tab plots live")] = None,
    task: Annotated[str | None, typer.Option("--task", "-t", help="start with this request")] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", "-g", help="catalog GPU (qkv gpus); overrides the text")]
    = None,
    gpus: Annotated[int | None, typer.Option(help="number of GPUs; overrides the text")] = None,
    base_model: Annotated[str | None, typer.Option(
        "--base-model", help="base model (catalog name, config.json, folder, .gguf); overrides the text")] = None,
    corpus: Annotated[list[str] | None, typer.Option(help="corpus sample file for the tokenizer audit")] = None,
    runs: Annotated[Path, typer.Option(help="where exports and training runs are written")] = Path("runs"),
    json: JsonOpt = False,
) -> None:
    """Talk a design through: the design steps run live, the report, memory, tokenizer and training tabs,
    follow-ups that re-run only the affected steps, sessions saved in SQLite and resumable.

    Examples: qkv chat · qkv chat --llm none · qkv chat --resume latest · qkv chat --list
    Keys: F1 help · Ctrl+S export · Ctrl+O sessions · Ctrl+T trace · Esc cancel · Ctrl+Q quit.
    """
    if list_sessions:
        from qkv.tui.sessions import SessionStore

        rows = SessionStore().list()
        if json:
            sys.stdout.write("[" + ",\n".join(r.model_dump_json() for r in rows) + "]\n")
            return
        from rich.table import Table

        table = Table(show_edge=False, pad_edge=False)
        # The id is what `--resume` takes: never wrapped or cut; the title gives way on a narrow terminal.
        table.add_column("thread id", no_wrap=True, min_width=max((len(r.thread_id) for r in rows), default=9))
        table.add_column("updated", no_wrap=True)
        table.add_column("msgs", justify="right", no_wrap=True)
        table.add_column("report", no_wrap=True)
        table.add_column("title", no_wrap=True, overflow="ellipsis")
        for r in rows:
            table.add_row(r.thread_id, r.when(), str(r.messages), "yes" if r.has_report else "no", r.title[:60])
        console().print(table)
        return
    from qkv.tui.app import run_app

    run_app(llm=llm, model=model, resume=resume, follow=follow, task=task, gpu=gpu, gpus=gpus,
            base_model=base_model, corpus=corpus, runs_dir=runs)


app.command("chat")(chat)
app.command("tui", help="Alias of `qkv chat`: the conversational TUI.")(chat)
