"""qkv's MCP server: every tool in the registry (agent/mcp_tools.py) over stdio or streamable HTTP.

Each call goes: size limits → the client's MCP roots, when it sends them (they narrow the allowed roots)
→ path checks (allowed roots; off the event loop) → the tool's pydantic request → the tool function →
its pydantic result as structured content. Short analytic tools run in a worker thread; long tools
(tracing, audit, evaluation, perplexity, design) run in a worker PROCESS, one at a time, which is killed
when the call is cancelled, times out, or its client goes away, so abandoned work never keeps running.

A QkvError or a bad argument becomes a tool error (`is_error`), never a dead server; an unknown tool or
prompt is a JSON-RPC error -32602, and a line on stdio that is not JSON-RPC gets -32700 / -32600. Logs go
to stderr only: on stdio, stdout is the protocol.

This module builds the server; the pieces live beside it: mcp_tool (the SDK tool wrapping one registry row),
mcp_roots (the client's MCP roots), mcp_process (the worker process, its slot and time limits),
mcp_transport (HTTP and stdio), mcp_safety and mcp_limits (what a caller may send and make qkv read)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.prompts.base import Prompt
from mcp.server.mcpserver.resources import FunctionResource
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from qkv.agent.mcp_process import DEFAULT_TOOL_TIMEOUT_S, WorkerSlot, runs_in_worker
from qkv.agent.mcp_safety import Sandbox
from qkv.agent.mcp_tool import make_tool
from qkv.agent.mcp_tools import RESOURCES, bound_tools, persona_prompt, read_catalog

log = logging.getLogger("qkv.mcp")

SERVER_NAME = "qkv"
INSTRUCTIONS = (
    "qkv answers Transformer design questions with computed numbers: exact parameter counts (params), peak GPU "
    "memory with a fit verdict and a ladder of cheaper strategies (vram; vram_trace traces one real step on "
    "fake tensors), layer profiles, context-window checks, scaling laws, sizing, hyperparameters, sampling "
    "policies, tokenizer audits, evaluation of prediction files, perplexity, and the full five-step design "
    "report (design). Models are catalog names (resource qkv://catalog/models) or config.json / model folders "
    "/ .gguf files inside the server's allowed roots; GPUs are in qkv://catalog/gpus. Every figure carries its "
    "provenance (analytic, traced, measured, cited); quote it.")


class QkvServer(MCPServer):
    """MCPServer where the spec asks for protocol errors: an unknown tool or prompt, and a prompt called
    without its arguments, are JSON-RPC errors -32602 (invalid params) rather than a tool error or code 0."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None) -> Any:
        if self._tool_manager.get_tool(name) is None:
            import difflib

            known = [t.name for t in self._tool_manager.list_tools()]
            near = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f"; did you mean: {', '.join(near)}" if near else ""
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown tool: {name}{hint}", data={"tools": known})
        return await super().call_tool(name, arguments, context)

    async def get_prompt(self, name: str, arguments: dict[str, Any] | None = None,
                         context: Context | None = None) -> Any:
        if self._prompt_manager.get_prompt(name) is None:
            raise MCPError(code=INVALID_PARAMS, message=f"Unknown prompt: {name}")
        try:
            return await super().get_prompt(name, arguments, context)
        except ValueError as exc:  # missing or invalid prompt arguments
            raise MCPError(code=INVALID_PARAMS, message=f"prompt {name}: {exc}") from None



def build_server(sandbox: Sandbox | None = None, *, log_level: str = "WARNING",
                 tool_timeouts: Mapping[str, float | None] | None = None,
                 use_client_roots: bool = True) -> QkvServer:
    """The qkv MCP server: registry tools, the two catalog resources and the persona prompt.

    `tool_timeouts` maps a worker tool's name (or "*" for all of them) to its wall-clock limit in seconds
    (None or 0: no limit); default DEFAULT_TOOL_TIMEOUT_S. `use_client_roots`: narrow the roots to the
    client's MCP roots when it declares them."""
    sandbox = sandbox or Sandbox.from_dirs()
    limits = {"*": DEFAULT_TOOL_TIMEOUT_S, **(tool_timeouts or {})}
    slot = WorkerSlot()
    tools = []
    for b in bound_tools():
        in_worker = runs_in_worker(b.spec)
        timeout = limits.get(b.spec.name, limits["*"]) if in_worker else None
        tools.append(make_tool(b, sandbox, slot if in_worker else None, timeout=timeout or None,
                               use_client_roots=use_client_roots))
    server = QkvServer(SERVER_NAME, instructions=INSTRUCTIONS, version=_version(), log_level=log_level, tools=tools)
    server.qkv_slot = slot  # the worker process, for tests and diagnostics
    for spec in RESOURCES:
        server.add_resource(FunctionResource(
            uri=spec.uri, name=spec.uri.rsplit("/", 1)[-1], title=spec.title, description=spec.title,
            mime_type="application/json", fn=lambda spec=spec: read_catalog(spec)))
    server.add_prompt(Prompt.from_function(
        persona_prompt, name="researcher",
        title="Principal Transformer researcher",
        description="The qkv researcher persona for a task: five steps, numbers only from tools, three hard rules."))
    log.info("allowed roots: %s", ", ".join(map(str, sandbox.roots)))
    return server


def _version() -> str:
    import importlib.metadata as md

    try:
        return md.version("qkv")
    except md.PackageNotFoundError:
        return "0"


def configure_logging(level: str = "WARNING") -> None:
    """Everything to stderr: on the stdio transport stdout carries the protocol. Handlers that write to
    stdout are removed; others (a test harness's) are left alone."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stdout:
            root.removeHandler(h)
    if not any(getattr(h, "_qkv_mcp", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("qkv-mcp %(levelname)s %(name)s: %(message)s"))
        handler._qkv_mcp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)

