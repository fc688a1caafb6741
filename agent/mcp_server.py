"""qkv's MCP server: every tool in the registry (agent/mcp_tools.py) over stdio or streamable HTTP.

Each call goes: size limits → path checks (allowed roots) → the tool's pydantic request → the tool
function (in a worker thread) → its pydantic result as structured content. A QkvError or a bad argument
becomes a tool error (`is_error`), never a dead server. Logs go to stderr only: on stdio, stdout is the
protocol."""

from __future__ import annotations

import hmac
import logging
import sys
import threading
import time
from typing import Any

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.prompts.base import Prompt
from mcp.server.mcpserver.resources import FunctionResource
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from qkv.agent.mcp_safety import Sandbox
from qkv.agent.mcp_tools import RESOURCES, BoundTool, bound_tools, persona_prompt, read_catalog
from qkv.tools.errors import QkvError

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

HEARTBEAT_S = 1.0  # how often a long tool reports progress


def _first_error(exc: ValidationError) -> str:
    errs = exc.errors()
    parts = []
    for err in errs[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (+{len(errs) - 3} more)" if len(errs) > 3 else ""
    return "; ".join(parts) + more


class QkvTool(Tool):
    """An SDK tool whose call validates with the qkv request model and runs the qkv function.

    The SDK's own argument model is bypassed on purpose: the request model's validators raise QkvError
    (with the valid choices), which must reach the caller as a readable tool error."""

    bound: Any = Field(exclude=True)  # BoundTool
    sandbox: Any = Field(exclude=True)  # Sandbox
    lock: Any = Field(exclude=True)  # threading.Lock shared by the long tools (one torch job at a time)

    def prepare(self, arguments: dict[str, Any]) -> BaseModel:
        """Raw JSON arguments → size limits → path checks (values replaced by the checked real paths) →
        the tool's pydantic request."""
        bound: BoundTool = self.bound
        sandbox: Sandbox = self.sandbox
        if not isinstance(arguments, dict):
            raise ToolError(f"{self.name}: arguments must be a JSON object")
        sandbox.check_arguments(arguments, caps=bound.spec.caps)
        args = dict(arguments)
        for name, kind in bound.spec.paths.items():
            if name not in bound.request.model_fields or args.get(name) is None:
                continue
            value = args[name]
            if isinstance(value, str):
                args[name] = sandbox.check_ref(value, kind, name)
            elif isinstance(value, list):  # file lists may hold globs: expanded inside the roots, each checked
                args[name] = [p for i, v in enumerate(value) if isinstance(v, str)
                              for p in sandbox.check_pattern(v, kind, f"{name}[{i}]")]
        return bound.request.model_validate(args)

    async def run(self, arguments: dict[str, Any], context: Context, convert_result: bool = False) -> Any:
        bound: BoundTool = self.bound
        try:
            request = self.prepare(arguments)
        except ValidationError as exc:
            raise ToolError(f"{self.name}: invalid arguments: {_first_error(exc)}") from exc
        except QkvError as exc:
            raise ToolError(f"{self.name}: {exc}") from exc
        try:
            if bound.spec.long:
                result = await _run_long(bound, request, self.lock, context)
            else:
                result = await anyio.to_thread.run_sync(bound.call, request)
        except QkvError as exc:
            raise ToolError(f"{self.name}: {exc}") from exc
        except Exception as exc:  # a crash: traceback to the stderr log, a generic error to the caller
            log.exception("tool %s crashed", self.name)
            raise UnexpectedToolError(f"Error executing tool {self.name}") from exc
        return self.fn_metadata.convert_result(result) if convert_result else result


async def _run_long(bound: BoundTool, request: BaseModel, lock: threading.Lock, context: Context) -> BaseModel:
    """Run a long tool in a worker thread, one at a time, reporting progress every HEARTBEAT_S: the
    tool's own (done, total) when it reports one (bytes read, for the audit), else elapsed seconds."""
    name = bound.spec.name
    start = time.perf_counter()
    latest: dict[str, tuple[int, int]] = {}
    result: list[BaseModel] = []

    def work() -> BaseModel:
        with lock:  # taken in the worker thread, so a caller waiting its turn still gets heartbeats
            return bound.call(request, progress=lambda done, total: latest.__setitem__("p", (done, total)))

    failure: list[BaseException] = []

    async def worker() -> None:
        # The tool's own exception is kept and re-raised after the task group: raised inside it, it
        # would surface as an ExceptionGroup and a QkvError would read as a crash, not a tool error.
        try:
            result.append(await anyio.to_thread.run_sync(work))
        except Exception as exc:
            failure.append(exc)
        tg.cancel_scope.cancel()

    sent = 0.0
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker)
        await _progress(context, 0.0, None, f"{name}: started")
        while True:
            await anyio.sleep(HEARTBEAT_S)
            elapsed = time.perf_counter() - start
            if bound.progress:
                done, total = latest.get("p", (0, 0))
                if done > sent:  # progress must increase; nothing new, nothing sent
                    sent = float(done)
                    await _progress(context, sent, float(total) or None, f"{name}: {elapsed:.0f} s")
            else:
                sent = elapsed
                await _progress(context, elapsed, None, f"{name}: running, {elapsed:.0f} s")
    if failure:
        raise failure[0]
    if bound.progress:
        done, total = latest.get("p", (0, 0))
        if max(done, total) > sent:
            await _progress(context, float(max(done, total)), float(total) or None, f"{name}: done")
    else:
        await _progress(context, time.perf_counter() - start, None, f"{name}: done")
    return result[0]


async def _progress(context: Context, progress: float, total: float | None, message: str) -> None:
    try:
        await context.report_progress(progress, total, message)
    except Exception:  # no request context (a direct Python call) or the client went away: not fatal
        log.debug("progress not delivered: %s", message)


def make_tool(bound: BoundTool, sandbox: Sandbox, lock: threading.Lock) -> QkvTool:
    """Wrap a bound qkv function as an SDK Tool: schemas from its pydantic models, our own `run`."""
    args_model = create_model(f"{bound.spec.name}Arguments", __base__=ArgModelBase)
    args_model.model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)
    meta = FuncMetadata(arg_model=args_model, output_schema=bound.output_schema(), output_model=bound.result)
    return QkvTool(
        fn=bound.fn, name=bound.spec.name, title=bound.spec.title, description=bound.description,
        parameters=bound.input_schema(), fn_metadata=meta, is_async=False, context_kwarg=None,
        annotations=ToolAnnotations(title=bound.spec.title, read_only_hint=True, destructive_hint=False,
                                    open_world_hint=False),
        bound=bound, sandbox=sandbox, lock=lock)


def build_server(sandbox: Sandbox | None = None, *, log_level: str = "WARNING") -> MCPServer:
    """The qkv MCP server: registry tools, the two catalog resources and the persona prompt."""
    sandbox = sandbox or Sandbox.from_dirs()
    ready, pending = bound_tools()
    lock = threading.Lock()
    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, version=_version(), log_level=log_level,
                       tools=[make_tool(b, sandbox, lock) for b in ready])
    for spec in RESOURCES:
        server.add_resource(FunctionResource(
            uri=spec.uri, name=spec.uri.rsplit("/", 1)[-1], title=spec.title, description=spec.title,
            mime_type="application/json", fn=lambda spec=spec: read_catalog(spec)))
    server.add_prompt(Prompt.from_function(
        persona_prompt, name="researcher",
        title="Principal Transformer researcher",
        description="The qkv researcher persona for a task: five steps, numbers only from tools, three hard rules."))
    if pending:
        log.info("tools not installed yet: %s", ", ".join(s.name for s in pending))
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


class BearerAuth:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>` (else 401)."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            got = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(got, self.expected):
                body = b'{"error": "unauthorized", "detail": "missing or wrong bearer token"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer, *, host: str = "127.0.0.1", token: str | None = None):
    """The streamable-HTTP ASGI app at /mcp, behind the bearer check when a token is given."""
    app = server.streamable_http_app(host=host, streamable_http_path="/mcp")
    return BearerAuth(app, token) if token else app


def serve_http(server: MCPServer, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
               log_level: str = "warning") -> None:
    """Serve streamable HTTP until interrupted (uvicorn logs to stderr)."""
    import uvicorn

    app = http_app(server, host=host, token=token)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower(), lifespan="on")
    log.warning("qkv MCP server on http://%s:%d/mcp%s", host, port, " (bearer token required)" if token else "")
    uvicorn.Server(config).run()


def serve_stdio(server: MCPServer) -> None:
    """Serve over stdin/stdout until the client closes stdin."""
    server.run("stdio")
