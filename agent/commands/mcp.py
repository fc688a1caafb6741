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
        "--root", help="folder the tools may read files from (repeatable; default: the working directory)")] = None,
    online: Annotated[bool, typer.Option(help="let tools fetch hub config.json files (never code)")] = False,
    list_: Annotated[bool, typer.Option("--list", help="print the tools, resources, prompt and schemas, then exit")]
    = False,
    json: Annotated[bool, typer.Option("--json", help="with --list: the full JSON schemas")] = False,
    log_level: Annotated[str, typer.Option(help="stderr log level: DEBUG INFO WARNING ERROR")] = "WARNING",
) -> None:
    """Run qkv as an MCP server: params, vram, vram_trace, doctor (and audit, evaluate, design once
    installed) as typed tools; the model and GPU catalogs as resources; the researcher persona as a prompt.

    Example (desktop agent config): {"command": "qkv", "args": ["mcp", "--root", "/path/to/project"]}
    Example (HTTP): QKV_MCP_TOKEN=secret qkv mcp --transport http --port 8765
    """
    from qkv.agent.mcp_safety import Sandbox
    from qkv.agent.mcp_server import build_server, configure_logging, serve_http, serve_stdio
    from qkv.tools.errors import BadInput

    if transport not in ("stdio", "http"):
        raise BadInput(f"--transport {transport}", expected="stdio or http")
    level = log_level.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise BadInput(f"--log-level {log_level}", expected="DEBUG, INFO, WARNING or ERROR")
    configure_logging(level)
    server = build_server(Sandbox.from_dirs(root or [], allow_online=online), log_level=level)
    if list_:
        _print_listing(server, json)
        return
    if transport == "stdio":
        serve_stdio(server)
        return
    token = token or os.environ.get("QKV_MCP_TOKEN") or None
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        sys.stderr.write(f"qkv: warning: serving on {host} without a bearer token\n")
    serve_http(server, host=host, port=port, token=token, log_level=level)


def _print_listing(server, as_json: bool) -> None:
    """What a client sees on connect (tools/list, resources/list, prompts/list), from the live server."""
    import anyio

    from qkv.agent.mcp_tools import TOOLS, bound_tools

    async def collect():
        return await server.list_tools(), await server.list_resources(), await server.list_prompts()

    tools, resources, prompts = anyio.run(collect)
    pending = [s.name for s in bound_tools()[1]]
    cli = {s.name: s.cli for s in TOOLS}
    if as_json:
        import json as _json

        doc = {
            "tools": [{"name": t.name, "title": t.title, "description": t.description, "cli": cli.get(t.name, ""),
                       "input_schema": t.input_schema, "output_schema": t.output_schema} for t in tools],
            "resources": [{"uri": str(r.uri), "title": r.title, "mime_type": r.mime_type} for r in resources],
            "prompts": [{"name": p.name, "description": p.description,
                         "arguments": [a.name for a in p.arguments or []]} for p in prompts],
            "pending": pending,
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
    if pending:
        out.print(f"[dim]not installed yet: {', '.join(pending)}[/]")
    out.print("[dim]full JSON schemas: qkv mcp --list --json[/]")


def _type(prop: dict) -> str:
    if "enum" in prop:
        return " | ".join(map(str, prop["enum"]))
    if "anyOf" in prop:
        return " | ".join(_type(p) for p in prop["anyOf"])
    if prop.get("type") == "array":
        return f"list[{_type(prop.get('items', {}))}]"
    return str(prop.get("type", prop.get("$ref", "any").rsplit("/", 1)[-1]))
