"""qkv's MCP server: every tool in the registry (agent/mcp_tools.py) over stdio or streamable HTTP.

Each call goes: size limits → the client's MCP roots, when it sends them (they narrow the allowed roots)
→ path checks (allowed roots; off the event loop) → the tool's pydantic request → the tool function →
its pydantic result as structured content. Short analytic tools run in a worker thread; long tools
(tracing, audit, evaluation, perplexity, design) run in a worker PROCESS, one at a time, which is killed
when the call is cancelled, times out, or its client goes away, so abandoned work never keeps running.

A QkvError or a bad argument becomes a tool error (`is_error`), never a dead server; an unknown tool or
prompt is a JSON-RPC error -32602, and a line on stdio that is not JSON-RPC gets -32700 / -32600. Logs go
to stderr only: on stdio, stdout is the protocol."""

from __future__ import annotations

import atexit
import hmac
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.prompts.base import Prompt
from mcp.server.mcpserver.resources import FunctionResource
from mcp.server.mcpserver.tools import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage
from mcp_types import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    CallToolResult,
    ErrorData,
    InputRequiredResult,
    JSONRPCError,
    ListRootsRequest,
    ListRootsResult,
    TextContent,
    ToolAnnotations,
)
from mcp_types.version import is_version_at_least
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from qkv.agent.mcp_safety import Sandbox, validation_summary
from qkv.agent.mcp_tools import RESOURCES, TOOLS, BoundTool, ToolSpec, bound_tools, persona_prompt, read_catalog
from qkv.tools.errors import BadInput, QkvError

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
DEFAULT_TOOL_TIMEOUT_S = 600.0  # wall-clock limit of one worker-tool call (`qkv mcp --tool-timeout`)
DEFAULT_SESSION_IDLE_S = 300.0  # an HTTP session with no request in flight for this long is closed
DEFAULT_MAX_SESSIONS = 200  # open HTTP sessions at once (each costs ~0.6 MiB); more get 503
ROOTS_TIMEOUT_S = 5.0  # a client that declares roots but does not answer roots/list in time: server roots apply
ROOTS_KEY = "qkv/roots"  # the input-request key of roots/list on 2026-07-28 connections

# Run in the worker process (killable) besides the long tools: scoring 64 MiB prediction files is not quick.
WORKER_TOOLS_EXTRA = frozenset({"evaluate"})
# Files whose lines come back in the result word for word: only term-like lines are accepted.
ECHOED_FILES: Mapping[str, tuple[str, ...]] = {"audit": ("terms",)}


def runs_in_worker(spec: ToolSpec) -> bool:
    """Whether calls of this tool run in the killable worker process (one at a time, time-limited)."""
    return spec.long or spec.name in WORKER_TOOLS_EXTRA


def worker_tool_names() -> list[str]:
    return [s.name for s in TOOLS if runs_in_worker(s)]


class QkvTool(Tool):
    """An SDK tool whose call validates with the qkv request model and runs the qkv function.

    The SDK's own argument model is bypassed on purpose: the request model's validators raise QkvError
    (with the valid choices), which must reach the caller as a readable tool error."""

    bound: Any = Field(exclude=True)  # BoundTool
    sandbox: Any = Field(exclude=True)  # Sandbox: the server's roots
    slot: Any = Field(exclude=True)  # WorkerSlot shared by the worker tools, or None for in-thread tools
    timeout: float | None = Field(default=None, exclude=True)  # seconds, worker tools only
    use_client_roots: bool = Field(default=True, exclude=True)

    def limits(self, arguments: dict[str, Any]) -> None:
        if not isinstance(arguments, dict):
            raise BadInput("arguments must be a JSON object", expected="an object of named arguments")
        self.sandbox.check_arguments(arguments, caps=self.bound.spec.caps)

    def checked(self, arguments: dict[str, Any]) -> tuple[BaseModel, dict[str, Any]]:
        self.limits(arguments)
        return self.prepare(arguments, self.sandbox)

    def limits_and_reads_files(self, arguments: dict[str, Any]) -> bool:
        """Size limits, then whether any argument names a file (so the client's roots matter for this call)."""
        self.limits(arguments)
        bound: BoundTool = self.bound
        for name, kind in bound.spec.paths.items():
            value = arguments.get(name)
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, str) and self.sandbox.names_a_path(v, kind) for v in values):
                return True
        return False

    def prepare(self, arguments: dict[str, Any], sandbox: Sandbox) -> tuple[BaseModel, dict[str, Any]]:
        """Raw JSON arguments → path checks (values replaced by the checked real paths; globs expanded
        inside the roots) → the tool's pydantic request. Returns the request and the checked arguments
        (what the worker process validates again: request models built at run time do not pickle)."""
        bound: BoundTool = self.bound
        args = dict(arguments)
        for name, kind in bound.spec.paths.items():
            if name not in bound.request.model_fields or args.get(name) is None:
                continue
            value = args[name]
            if isinstance(value, str):
                args[name] = sandbox.check_ref(value, kind, name)
            elif isinstance(value, list):  # file lists may hold globs: expanded inside the roots, each checked
                expanded: list[Any] = []
                for i, v in enumerate(value):  # a non-string item stays, for the request model to refuse
                    expanded += sandbox.check_pattern(v, kind, f"{name}[{i}]") if isinstance(v, str) else [v]
                if len(expanded) > sandbox.limits.max_list:
                    raise BadInput(f"{name} names {len(expanded):,} files once its globs are expanded",
                                   expected=f"at most {sandbox.limits.max_list}")
                args[name] = expanded
        for name in ECHOED_FILES.get(bound.spec.name, ()):
            if isinstance(args.get(name), str):
                sandbox.check_terms_file(args[name], name)
        return bound.request.model_validate(args), args

    def check_then_call(self, arguments: dict[str, Any]) -> tuple[str, Any]:
        """Checks and the tool call in one worker-thread hop, for the in-thread tools when the client's roots
        play no part (the common, cheap case): ("checks" | "call", exception) or ("ok", result)."""
        try:
            request, _ = self.checked(arguments)
        except Exception as exc:
            return "checks", exc
        try:
            return "ok", self.bound.call(request)
        except Exception as exc:
            return "call", exc

    async def run(self, arguments: dict[str, Any], context: Context, convert_result: bool = False) -> Any:
        # Checks touch the disk (globs, folder walks), so they run off the event loop like the tools.
        roots_matter = self.use_client_roots and _declares_roots(context)
        if self.slot is None and not roots_matter:
            stage, value = await anyio.to_thread.run_sync(self.check_then_call, arguments)
            if stage == "checks":
                raise self._check_error(value) from value
            if stage == "call":
                err = self._call_error(value)
                raise err from (None if err is value else value)
            result = value
        else:
            try:
                sandbox = self.sandbox
                if roots_matter and await anyio.to_thread.run_sync(self.limits_and_reads_files, arguments):
                    roots = await client_roots(context)
                    if isinstance(roots, InputRequiredResult):  # 2026-07-28: the client answers, then retries
                        return roots
                    if roots is not None:
                        sandbox = sandbox.narrowed(roots)
                    request, args = await anyio.to_thread.run_sync(self.prepare, arguments, sandbox)
                else:
                    request, args = await anyio.to_thread.run_sync(self.checked, arguments)
            except Exception as exc:
                raise self._check_error(exc) from exc
            try:
                if self.slot is not None:
                    result = await _run_in_worker(self, args, context)
                else:
                    result = await anyio.to_thread.run_sync(self.bound.call, request)
            except ToolError:
                raise
            except Exception as exc:
                raise self._call_error(exc) from exc
        if isinstance(result, CallToolResult):  # from the worker: already in its wire form
            return result if convert_result else result.structured_content
        return self.fn_metadata.convert_result(result) if convert_result else result

    def _check_error(self, exc: Exception) -> Exception:
        if isinstance(exc, ValidationError):
            return ToolError(f"{self.name}: invalid arguments: {validation_summary(exc)}")
        if isinstance(exc, QkvError):
            return ToolError(f"{self.name}: {exc}")
        # a bug in the checks: logged, and nothing of it shown to the caller
        log.error("checking the arguments of %s failed", self.name, exc_info=exc)
        return UnexpectedToolError(f"Error executing tool {self.name}")

    def _call_error(self, exc: Exception) -> Exception:
        if isinstance(exc, ToolError):
            return exc
        if isinstance(exc, QkvError):
            return ToolError(f"{self.name}: {exc}")
        log.error("tool %s crashed", self.name, exc_info=exc)  # the traceback to stderr, a generic error out
        return UnexpectedToolError(f"Error executing tool {self.name}")


# ------------------------------------------------------------------------------------------ client roots
def _declares_roots(context: Context) -> bool:
    try:
        caps = context.client_capabilities
    except Exception:  # no request context: a direct Python call
        return False
    return caps is not None and caps.roots is not None


async def client_roots(context: Context) -> list[Path] | InputRequiredResult | None:
    """The client's MCP roots as local folders; None when it sends none usable (the server's roots then
    apply). Handshake-era connections (≤ 2025-11-25) get a roots/list request mid-call; on 2026-07-28
    connections (where roots are deprecated but still served) the call first returns an input-required
    result asking for them, and the client retries with its answer. Non-`file:` roots are ignored."""
    try:
        version = context.protocol_version
        if version is not None and is_version_at_least(version, "2026-07-28"):
            answer = (context.input_responses or {}).get(ROOTS_KEY)
            if answer is None:
                return InputRequiredResult(input_requests={ROOTS_KEY: ListRootsRequest()})
            listed = ListRootsResult.model_validate(answer.model_dump(mode="json", by_alias=True, exclude_none=True))
        else:
            with anyio.fail_after(ROOTS_TIMEOUT_S), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # roots are deprecated in 2026-07-28, not in the era used here
                listed = await context.session.list_roots()
    except Exception as exc:
        log.info("client roots unavailable (%s: %s); the server's roots apply", type(exc).__name__, exc)
        return None
    uris = [urlparse(str(r.uri)) for r in listed.roots]
    return [Path(unquote(u.path)) for u in uris if u.scheme == "file" and u.netloc in ("", "localhost")]


# ------------------------------------------------------------------------------------- the worker process
WORKER_CODE = "import sys; from qkv.agent.mcp_worker import serve_worker; serve_worker(int(sys.argv[1]), " \
              "int(sys.argv[2]))"
POLL_S = 0.05  # how often the server looks for the worker's messages while a call runs
_LIVE_WORKERS: weakref.WeakSet[Worker] = weakref.WeakSet()


class WorkerTimeout(Exception):
    pass


class WorkerDied(Exception):
    pass


class Worker:
    """One child process (`serve_worker` in mcp_worker) that runs worker tools, kept warm between calls
    (torch and the tool modules stay imported) and killed — with its whole process group — when a call is
    cancelled or runs past its time limit; the next call starts a fresh one.

    It is started from the event loop's thread on purpose: the child asks the kernel for SIGKILL when the
    thread that forked it ends (PR_SET_PDEATHSIG), and that thread lives as long as the server."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.conn: Any = None  # multiprocessing.connection.Connection over a socketpair
        self.env: dict[str, str] = {}  # the environment it was started with

    def start(self) -> None:
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", WORKER_CODE, str(theirs.fileno()), str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=2,  # stdout: never the protocol
                start_new_session=True)  # its own process group: one killpg ends it and anything it started
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.env = dict(os.environ)
        _LIVE_WORKERS.add(self)
        log.debug("worker process %d started", self.proc.pid)

    def kill(self) -> None:
        proc, conn = self.proc, self.conn
        self.proc = self.conn = None
        if conn is not None:
            conn.close()
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
        try:
            proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:  # reaped in the background rather than blocking the event loop
            threading.Thread(target=proc.wait, daemon=True).start()
        log.debug("worker process %d ended", proc.pid)

    async def call(self, name: str, args: dict[str, Any], on_progress, limit: float | None) -> tuple:
        """Send one call and wait for its answer: ("ok", result) or ("error" | "invalid" | "crash", text).
        Raises WorkerTimeout after `limit` seconds and WorkerDied if the process ends; on those, on
        cancellation and on any other exception the process is killed before this returns."""
        if self.proc is None or self.proc.poll() is not None or self.env != os.environ:
            self.kill()  # gone, or started under another environment (QKV_HOME, HF_HUB_OFFLINE…): a fresh one
            self.start()
        conn, proc = self.conn, self.proc
        start = time.monotonic()
        try:
            try:
                conn.send((name, args))
                while True:
                    while conn.poll():
                        msg = conn.recv()
                        if msg[0] != "progress":
                            return msg
                        on_progress(msg[1], msg[2])
                    if proc.poll() is not None:
                        raise WorkerDied(proc.returncode)
                    if limit and time.monotonic() - start > limit:
                        raise WorkerTimeout(limit)
                    await anyio.sleep(POLL_S)
            except (EOFError, OSError) as exc:  # the socket closed under us: the process is gone
                raise WorkerDied(proc.poll()) from exc
        except BaseException:  # cancelled, timed out, died, or anything else: end the work now
            self.kill()
            raise


class WorkerSlot:
    """The worker process and the right to use it: worker tools run one at a time, first come first served.
    A caller waiting its turn still receives heartbeats, and a cancelled waiter leaves the queue."""

    def __init__(self) -> None:
        self.worker = Worker()
        self._queue: deque[object] = deque()
        self._busy = False

    @property
    def busy(self) -> bool:
        return self._busy

    @asynccontextmanager
    async def held(self) -> AsyncIterator[Worker]:
        me = object()
        self._queue.append(me)
        try:
            while self._busy or self._queue[0] is not me:
                await anyio.sleep(POLL_S)
        except BaseException:
            self._queue.remove(me)
            raise
        self._queue.popleft()
        self._busy = True
        try:
            yield self.worker
        finally:
            self._busy = False


@atexit.register
def _kill_workers() -> None:
    for worker in list(_LIVE_WORKERS):
        worker.kill()


async def _run_in_worker(tool: QkvTool, args: dict[str, Any], context: Context) -> CallToolResult:
    """Run a worker tool: wait for the slot, run it in the worker process, and report progress every
    HEARTBEAT_S meanwhile — the tool's own (done, total) when it reports one (bytes read, for the audit),
    else elapsed seconds. Cancellation (the client's notifications/cancelled, a closed session) kills the
    worker process and frees the slot; so does the time limit, which answers with a tool error."""
    bound: BoundTool = tool.bound
    name, limit = bound.spec.name, tool.timeout
    start = time.perf_counter()
    latest = [0, 0]
    sent = 0.0
    outcome: list[Any] = []

    def on_progress(done: int, total: int) -> None:
        latest[:] = [done, total]

    async def work() -> None:
        # The outcome is kept and acted on after the task group: raised inside it, an exception would
        # surface as an ExceptionGroup and a tool error would read as a crash.
        try:
            async with tool.slot.held() as worker:
                outcome.append(await worker.call(name, args, on_progress, limit))
        except Exception as exc:
            outcome.append(exc)
        tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(work)
        await _progress(context, 0.0, None, f"{name}: started")
        while True:
            await anyio.sleep(HEARTBEAT_S)
            elapsed = time.perf_counter() - start
            if bound.progress:
                done, total = latest
                if done > sent:  # progress must increase; nothing new, nothing sent
                    sent = float(done)
                    await _progress(context, sent, float(total) or None, f"{name}: {elapsed:.0f} s")
            else:
                sent = elapsed
                await _progress(context, elapsed, None, f"{name}: running, {elapsed:.0f} s")

    result = outcome[0]
    if isinstance(result, Exception) and not isinstance(result, WorkerTimeout | WorkerDied):
        raise result
    if isinstance(result, WorkerTimeout):
        raise ToolError(f"{name}: stopped after {limit:g} s, the server's time limit for this tool (qkv mcp "
                        "--tool-timeout); its worker process was ended and nothing was returned")
    if isinstance(result, WorkerDied):
        code = result.args[0]
        how = f"killed by signal {-code}" if isinstance(code, int) and code < 0 else f"exit status {code}"
        raise ToolError(f"{name}: the worker process ended unexpectedly ({how}; out of memory?); nothing was "
                        "returned")
    kind, payload = result
    if kind == "error":
        raise ToolError(f"{name}: {payload}")
    if kind == "invalid":
        raise ToolError(f"{name}: invalid arguments: {payload}")
    if kind == "crash":
        log.error("tool %s crashed in the worker process:\n%s", name, payload)
        raise UnexpectedToolError(f"Error executing tool {name}")
    if bound.progress:
        done, total = latest
        if max(done, total) > sent:
            await _progress(context, float(max(done, total)), float(total) or None, f"{name}: done")
    else:
        await _progress(context, time.perf_counter() - start, None, f"{name}: done")
    text, structured = payload
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


async def _progress(context: Context, progress: float, total: float | None, message: str) -> None:
    try:
        await context.report_progress(progress, total, message)
    except Exception:  # no request context (a direct Python call) or the client went away: not fatal
        log.debug("progress not delivered: %s", message)


# ------------------------------------------------------------------------------------------------ server
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


def make_tool(bound: BoundTool, sandbox: Sandbox, slot: WorkerSlot | None, *, timeout: float | None = None,
              use_client_roots: bool = True) -> QkvTool:
    """Wrap a bound qkv function as an SDK Tool: schemas from its pydantic models, our own `run`."""
    args_model = create_model(f"{bound.spec.name}Arguments", __base__=ArgModelBase)
    args_model.model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)
    meta = FuncMetadata(arg_model=args_model, output_schema=bound.output_schema(), output_model=bound.result)
    return QkvTool(
        fn=bound.fn, name=bound.spec.name, title=bound.spec.title, description=bound.description,
        parameters=bound.input_schema(), fn_metadata=meta, is_async=False, context_kwarg=None,
        annotations=ToolAnnotations(title=bound.spec.title, read_only_hint=True, destructive_hint=False,
                                    open_world_hint=False),
        bound=bound, sandbox=sandbox, slot=slot, timeout=timeout, use_client_roots=use_client_roots)


def build_server(sandbox: Sandbox | None = None, *, log_level: str = "WARNING",
                 tool_timeouts: Mapping[str, float | None] | None = None,
                 use_client_roots: bool = True) -> QkvServer:
    """The qkv MCP server: registry tools, the two catalog resources and the persona prompt.

    `tool_timeouts` maps a worker tool's name (or "*" for all of them) to its wall-clock limit in seconds
    (None or 0: no limit); default DEFAULT_TOOL_TIMEOUT_S. `use_client_roots`: narrow the roots to the
    client's MCP roots when it declares them."""
    sandbox = sandbox or Sandbox.from_dirs()
    limits = {"*": DEFAULT_TOOL_TIMEOUT_S, **(tool_timeouts or {})}
    ready, pending = bound_tools()
    slot = WorkerSlot()
    tools = []
    for b in ready:
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


# ------------------------------------------------------------------------------------------------- HTTP
class BearerAuth:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>` (else 401). The scheme
    is case-insensitive and may be followed by more than one space (RFC 6750 / RFC 9110); the token is
    compared in constant time."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.token = token.encode()

    def authorized(self, header: bytes) -> bool:
        scheme, _, credentials = header.strip().partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            got = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not self.authorized(got):
                body = b'{"error": "unauthorized", "detail": "missing or wrong bearer token"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer, *, host: str = "127.0.0.1", token: str | None = None,
             session_idle_timeout: float | None = DEFAULT_SESSION_IDLE_S,
             max_sessions: int | None = DEFAULT_MAX_SESSIONS):
    """The streamable-HTTP ASGI app at /mcp, behind the bearer check when a token is given. Sessions with
    no request in flight for `session_idle_timeout` seconds are closed (their id then answers 404)."""
    app = server.streamable_http_app(host=host, streamable_http_path="/mcp",
                                     session_idle_timeout=session_idle_timeout, max_sessions=max_sessions)
    return BearerAuth(app, token) if token else app


def serve_http(server: MCPServer, *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
               log_level: str = "warning", session_idle_timeout: float | None = DEFAULT_SESSION_IDLE_S,
               max_sessions: int | None = DEFAULT_MAX_SESSIONS) -> None:
    """Serve streamable HTTP until interrupted (uvicorn logs to stderr)."""
    import uvicorn

    app = http_app(server, host=host, token=token, session_idle_timeout=session_idle_timeout,
                   max_sessions=max_sessions)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level.lower(), lifespan="on")
    log.warning("qkv MCP server on http://%s:%d/mcp%s", host, port, " (bearer token required)" if token else "")
    uvicorn.Server(config).run()


# ------------------------------------------------------------------------------------------------ stdio
class AnswerUnparsable:
    """The stdio read stream, answering what the SDK would drop silently: a line that is not JSON (or that
    its parser refuses: integers of thousands of digits, nesting thousands deep) gets a -32700 parse error,
    and JSON that is not one JSON-RPC message (a batch array, a request without a method) gets a -32600
    invalid request, both with id null as JSON-RPC 2.0 asks. Without this the client waits forever."""

    def __init__(self, inner, write_stream) -> None:
        self._inner = inner
        self._write = write_stream

    @property
    def last_context(self):
        return getattr(self._inner, "last_context", None)

    async def receive(self):
        while True:
            item = await self._inner.receive()
            if not isinstance(item, Exception):
                return item
            await self._answer(item)

    async def _answer(self, exc: Exception) -> None:
        parse = isinstance(exc, ValidationError) and any(e["type"] == "json_invalid" for e in exc.errors())
        error = (ErrorData(code=PARSE_ERROR, message="Parse error: the line is not JSON this server can read")
                 if parse else ErrorData(code=INVALID_REQUEST, message="Invalid Request: not a JSON-RPC 2.0 "
                                         "request, notification or response (batches are not supported)"))
        log.info("unreadable message on stdin: %s", error.message)
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            await self._write.send(SessionMessage(JSONRPCError(jsonrpc="2.0", id=None, error=error)))

    def __aiter__(self):
        return self

    async def __anext__(self):
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.aclose()


async def _serve_stdio(server: MCPServer) -> None:
    from mcp.server.stdio import stdio_server

    lowlevel = server._lowlevel_server  # what MCPServer.run_stdio_async drives, with the read stream wrapped
    async with stdio_server() as (read_stream, write_stream):
        await lowlevel.run(AnswerUnparsable(read_stream, write_stream), write_stream,
                           lowlevel.create_initialization_options())


def serve_stdio(server: MCPServer) -> None:
    """Serve over stdin/stdout until the client closes stdin."""
    anyio.run(_serve_stdio, server)
