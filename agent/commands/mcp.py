"""`qkv mcp`: serve qkv's tools to other agents over the Model Context Protocol (stdio or HTTP)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from qkv.agent.cli_app import app


@app.command()
def mcp(
    transport: Annotated[str, typer.Option(help="stdio (desktop agents launch qkv) | http (streamable HTTP)")]
    = "stdio",
    host: Annotated[str, typer.Option(help="HTTP bind address; keep 127.0.0.1 unless you add a token")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (endpoint http://HOST:PORT/mcp)")] = 8765,
    token: Annotated[str | None, typer.Option(
        help="HTTP bearer token clients must send (default: $QKV_MCP_TOKEN; none = no auth)")] = None,
    root: Annotated[list[str] | None, typer.Option(
        "--root", help="folder the tools may read files from (repeatable; default: the working directory, "
        "refused when that is / or your home folder)")] = None,
    allow_broad_root: Annotated[bool, typer.Option(
        "--allow-broad-root", help="allow /, your home folder or a folder above it as a root")] = False,
    client_roots: Annotated[bool, typer.Option(
        help="narrow the roots to the MCP roots the client declares (never widen them)")] = True,
    tool_timeout: Annotated[list[str] | None, typer.Option(
        "--tool-timeout", help="wall-clock limit of a long tool call: SECONDS for all of them or TOOL=SECONDS "
        "(repeatable; 0 = no limit; default 600)")] = None,
    session_idle_timeout: Annotated[float, typer.Option(
        help="HTTP: close a session after this many seconds without a request in flight (0 = never)")] = 300.0,
    max_sessions: Annotated[int, typer.Option(help="HTTP: open sessions at once; more get 503")] = 200,
    online: Annotated[bool, typer.Option(help="let tools fetch hub config.json files (never code)")] = False,
    list_: Annotated[bool, typer.Option("--list", help="print the tools, resources, prompt and schemas, then exit")]
    = False,
    json: Annotated[bool, typer.Option("--json", help="with --list: the full JSON schemas")] = False,
    log_level: Annotated[str, typer.Option(help="stderr log level: DEBUG INFO WARNING ERROR")] = "WARNING",
) -> None:
    """Run qkv as an MCP server: params, vram, vram_trace, doctor, audit, evaluate, design and more as typed
    tools; the model and GPU catalogs as resources; the researcher persona as a prompt.

    Example (desktop agent config): {"command": "qkv", "args": ["mcp", "--root", "/path/to/project"]}
    Example (HTTP): QKV_MCP_TOKEN=secret qkv mcp --transport http --port 8765
    """
    from qkv.agent.mcp_safety import Sandbox
    from qkv.tools.errors import BadInput

    if transport not in ("stdio", "http"):
        raise BadInput(f"--transport {transport}", expected="stdio or http")
    level = log_level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise BadInput(f"--log-level {log_level}", expected="DEBUG, INFO, WARNING or ERROR")
    if session_idle_timeout < 0 or max_sessions < 1:
        raise BadInput(f"--session-idle-timeout {session_idle_timeout:g} / --max-sessions {max_sessions}",
                       expected="a non-negative number of seconds and at least one session")
    # The sandbox first, before the SDK is imported: a refused root answers in well under a second.
    # A listing reads no file, so it may run anywhere.
    sandbox = Sandbox.from_dirs(root or [], allow_online=online, allow_broad=allow_broad_root or list_)

    from qkv.agent.mcp_server import build_server, configure_logging
    from qkv.agent.mcp_transport import serve_http, serve_stdio

    configure_logging(level)
    server = build_server(sandbox, log_level=level, tool_timeouts=parse_timeouts(tool_timeout or []),
                          use_client_roots=client_roots)
    if list_:
        _print_listing(server, json)
        return
    if transport == "stdio":
        serve_stdio(server)
        return
    token = token or os.environ.get("QKV_MCP_TOKEN") or None
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        sys.stderr.write(f"qkv: warning: serving on {host} without a bearer token\n")
    serve_http(server, host=host, port=port, token=token, log_level=level,
               session_idle_timeout=session_idle_timeout or None, max_sessions=max_sessions)


def parse_timeouts(values: list[str]) -> dict[str, float | None]:
    """`--tool-timeout` values: "SECONDS" (every long tool) or "TOOL=SECONDS"; 0 means no limit. Only the
    tools that run in the worker process can be stopped, so only they take a limit."""
    from qkv.agent.mcp_process import worker_tool_names
    from qkv.tools.errors import BadInput

    names = worker_tool_names()
    out: dict[str, float | None] = {}
    for value in values:
        tool, _, seconds = value.rpartition("=")
        try:
            limit = float(seconds)
        except ValueError:
            limit = -1.0
        if not limit >= 0 or limit == float("inf"):
            raise BadInput(f"--tool-timeout {value}", expected="SECONDS or TOOL=SECONDS, a finite number >= 0")
        if tool and tool not in names:
            raise BadInput(f"--tool-timeout {value}: {tool} is not a long tool (the others answer in "
                           "milliseconds and run in-process)", expected="one of the tools run in the worker "
                           "process", choices=names)
        out[tool or "*"] = limit or None
    return out


def _print_listing(server, as_json: bool) -> None:
    """What a client sees on connect (tools/list, resources/list, prompts/list), from the live server."""
    import anyio

    from qkv.agent.mcp_tools import TOOLS

    async def collect():
        return await server.list_tools(), await server.list_resources(), await server.list_prompts()

    tools, resources, prompts = anyio.run(collect)
    cli = {s.name: s.cli for s in TOOLS}
    if as_json:
        import json as _json

        doc = {
            "tools": [{"name": t.name, "title": t.title, "description": t.description, "cli": cli.get(t.name, ""),
                       "input_schema": t.input_schema, "output_schema": t.output_schema} for t in tools],
            "resources": [{"uri": str(r.uri), "title": r.title, "mime_type": r.mime_type} for r in resources],
            "prompts": [{"name": p.name, "description": p.description,
                         "arguments": [a.name for a in p.arguments or []]} for p in prompts],
        }
        sys.stdout.write(_json.dumps(doc, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    out = Console()
    for t in tools:
        out.print(f"[bold]{t.name}[/] — {escape(t.title or '')}   [dim]({escape(cli.get(t.name, ''))})[/]")
        table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 2))
        for col in ("argument", "type", "default", "description"):
            table.add_column(col, overflow="fold")
        props = t.input_schema.get("properties", {})
        required = set(t.input_schema.get("required", []))
        for name, prop in props.items():
            table.add_row(name, escape(_type(prop)),
                          "required" if name in required else escape(repr(prop.get("default"))),
                          escape(prop.get("description", "")))
        if props:
            out.print(table)
        fields = ", ".join((t.output_schema or {}).get("properties", {}))
        out.print(f"  [dim]returns[/] {(t.output_schema or {}).get('title', '')}: {fields}\n")
    for r in resources:
        out.print(f"[bold]resource[/] {r.uri} — {r.title}")
    for p in prompts:
        out.print(f"[bold]prompt[/] {p.name}({', '.join(a.name for a in p.arguments or [])}) — {p.description}")
    out.print("[dim]full JSON schemas: qkv mcp --list --json[/]")


def _type(prop: dict) -> str:
    if "enum" in prop:
        return " | ".join(map(str, prop["enum"]))
    if "anyOf" in prop:
        return " | ".join(_type(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"list[{_type(prop.get('items', {}))}]"
    return str(prop.get("type", prop.get("$ref", "any").rsplit("/", 1)[-1]))
