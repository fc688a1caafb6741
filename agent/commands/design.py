"""`qkv design`: a task in words → a design report (Markdown, JSON or self-contained HTML)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from qkv.agent.cli_app import SCHEMAS, JsonOpt, app, console, validated
from qkv.tools.atomic import write_text

SCHEMAS["design"] = "qkv.agent.graph.schemas:DesignReport"
SCHEMAS["design-request"] = "qkv.agent.graph.api:DesignRequest"


@app.command()
def design(
    task: Annotated[str | None, typer.Argument(
        help='the task in words, e.g. "fine-tune a 7B model for legal summarisation on one 24 GB GPU"')] = None,
    gpu: Annotated[str | None, typer.Option("--gpu", "-g", help="catalog GPU (qkv gpus); overrides the text")] = None,
    gpus: Annotated[int | None, typer.Option(help="number of GPUs; overrides the text")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="base model: catalog name, config.json, "
                                                                     "folder or .gguf")] = None,
    corpus: Annotated[list[str] | None, typer.Option(
        "--corpus", help="corpus sample file for the tokenizer audit (repeatable)")] = None,
    llm: Annotated[str, typer.Option(help="none (templates) | local (bundled GGUF) | http(s) URL of an "
                                          "OpenAI-compatible server: who words the prose")] = "none",
    llm_model: Annotated[str | None, typer.Option(
        "--llm-model", help="with --llm local: a .gguf file or a bundled alias (smollm2, gemma3-270m); with a URL: "
                            "the endpoint's model id")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the report here (.md, .html, "
                                                                       ".json by extension)")] = None,
    html: Annotated[bool, typer.Option("--html", help="HTML (self-contained, with a memory chart)")] = False,
    session: Annotated[str | None, typer.Option(
        help="checkpoint the run under this session id in QKV_HOME/sessions.sqlite")] = None,
    resume: Annotated[str | None, typer.Option(help="resume a crashed session by its id")] = None,
    json: JsonOpt = False,
) -> None:
    """Design a Transformer for a task: objective, architecture, efficiency (fits in memory?),
    tokenization and inference, each number computed by qkv's tools, with the three hard-rule checks.

    Examples:
      qkv design "fine-tune a 7B model for legal summarisation on one 24 GB consumer GPU" -o report.md
      qkv design "classify support tickets" --gpu t4 --json
      qkv design "summarise 16k-token contracts" --model llama-2-7b --gpu a100-80gb --html -o r.html
      qkv design "summarise legal contracts on an RTX 4090" --llm local --llm-model gemma3-270m
    Missing facts are assumed and listed under 'assumptions'. --llm none is deterministic.
    """
    from qkv.agent.graph.api import DesignRequest, default_db_path, get_report, resume_design, stream_design
    from qkv.agent.graph.api import design as run_design
    from qkv.tools.errors import BadInput

    progress = sys.stderr.isatty()
    report = None
    if resume:
        events = resume_design(resume, None, db_path=default_db_path())
    else:
        if task is None or not task.strip():
            raise BadInput("the design request is empty",
                           expected='a task such as "fine-tune a 7B model for legal summarisation on one 24 GB GPU"')
        req = validated(DesignRequest, task=task, gpu=gpu, gpus=gpus, model=model, corpus=list(corpus or []), llm=llm,
                        llm_model=llm_model)
        if session is None and not progress:
            report = run_design(req)
            events = iter(())
        else:
            import uuid

            events = stream_design(req, thread_id=session or f"design-{uuid.uuid4().hex[:12]}",
                                   db_path=default_db_path())
    for event in events:
        if progress and event.status in ("done", "looped"):
            spent = sum(c.seconds for c in event.tool_calls)
            sys.stderr.write(f"  {'↻' if event.status == 'looped' else '✓'} {event.step:<13} {spent:6.3f} s\n")
        if event.report is not None:
            report = event.report
    if report is None and resume:
        report = get_report(resume, db_path=default_db_path())  # already finished: show its report
    if report is None:
        raise BadInput(f"session '{resume}' has nothing left to run" if resume else "the design did not finish",
                       expected="a session id of an unfinished run")
    as_html = html or (output is not None and output.suffix.lower() in (".html", ".htm"))
    as_json = json or (output is not None and output.suffix.lower() == ".json")
    text = report.to_html() if as_html else (report.model_dump_json(indent=2) + "\n" if as_json
                                             else report.to_markdown())
    if output is not None:
        write_text(output, text)  # a report the user keeps is never left half-written
        if not json:
            console().print(f"wrote {output}")
        return
    if as_json or as_html:
        sys.stdout.write(text)
        return
    from rich.markdown import Markdown

    console().print(Markdown(text))
