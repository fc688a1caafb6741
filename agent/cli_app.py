"""The shared typer app and the helpers every subcommand uses (JSON output, request validation).

Subcommands live in `qkv.agent.cli` (the foundation's) and in `qkv.agent.commands.*` (one module per
capability); each registers on this one `app`, so the CLI stays one program with one error policy."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from qkv.tools.errors import BadInput

app = typer.Typer(
    name="qkv",
    help="A Transformer design assistant that reasons like a principal researcher: every number from a tool. "
         "`qkv` alone (on a terminal) opens the chat TUI and takes the chat's options (`qkv --llm none`, "
         "`qkv --resume latest`); `qkv design \"TASK\"` writes the design report; the commands below are the "
         "tools it uses.",
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context) -> None:
    """qkv: a Transformer design assistant. With no command, on a terminal, opens the conversational TUI
    (`qkv chat`) with the bundled local model; `qkv design "TASK"` writes the design report directly."""
    if ctx.invoked_subcommand is not None:
        return
    if sys.stdin.isatty() and sys.stdout.isatty():
        from qkv.tui.app import run_app

        run_app(llm="local")
        return
    # Not a terminal (a pipe, CI, a script): a full-screen app would hang or garble; show the commands.
    typer.echo(ctx.get_help())


JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON (the pydantic schema)")]


def console():
    from rich.console import Console

    return Console()


def emit_json(model) -> None:
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")


def validated(cls, **fields):
    """Build a pydantic request, turning validation errors into one clear BadInput."""
    from pydantic import ValidationError

    try:
        return cls(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = "--" + str(err["loc"][0]).replace("_", "-") if err["loc"] else "input"
        raise BadInput(f"{field}: {err['msg']} (got {err.get('input')!r})") from None



# `qkv schema NAME` prints the JSON Schema of these models: the documented --json contracts.
# Command modules add their own entries when they are imported.
SCHEMAS = {
    "vram-request": "qkv.tools.memory.schema:MemoryRequest",
    "vram": "qkv.tools.memory.verdict:FitReport",
    "params-request": "qkv.tools.params:ParamCountRequest",
    "params": "qkv.tools.params:ParamCount",
    "models": "qkv.tools.catalog.summary:ModelSummary",
    "gpus": "qkv.tools.catalog.gpus:GpuSpec",
    "doctor": "qkv.tools.doctor:DoctorReport",
}
