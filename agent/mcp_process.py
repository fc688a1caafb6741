"""The worker process seen from the server: long tools run in one child process (`serve_worker` in
mcp_worker), one call at a time, with progress heartbeats meanwhile; a call that is cancelled, runs past its
time limit or loses its client kills the process (and its process group), so abandoned work never keeps
running. The next call starts a fresh one."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.mcpserver.context import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, TextContent

from qkv.agent.mcp_tools import TOOLS, BoundTool, ToolSpec

log = logging.getLogger("qkv.mcp")

HEARTBEAT_S = 1.0  # how often a long tool reports progress
DEFAULT_TOOL_TIMEOUT_S = 600.0  # wall-clock limit of one worker-tool call (`qkv mcp --tool-timeout`)

# Run in the worker process (killable) besides the long tools: scoring 64 MiB prediction files is not quick.
WORKER_TOOLS_EXTRA = frozenset({"evaluate"})


def runs_in_worker(spec: ToolSpec) -> bool:
    """Whether calls of this tool run in the killable worker process (one at a time, time-limited)."""
    return spec.long or spec.name in WORKER_TOOLS_EXTRA


def worker_tool_names() -> list[str]:
    return [s.name for s in TOOLS if runs_in_worker(s)]



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


async def run_in_worker(bound: BoundTool, slot: WorkerSlot, limit: float | None, args: dict[str, Any],
                        context: Context) -> CallToolResult:
    """Run a worker tool: wait for the slot, run it in the worker process, and report progress every
    HEARTBEAT_S meanwhile — the tool's own (done, total) when it reports one (bytes read, for the audit),
    else elapsed seconds. Cancellation (the client's notifications/cancelled, a closed session) kills the
    worker process and frees the slot; so does the time limit (`limit` seconds), which answers with a tool
    error."""
    name = bound.spec.name
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
            async with slot.held() as worker:
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

    text, structured = _answer(name, limit, outcome[0])
    if bound.progress:
        done, total = latest
        if max(done, total) > sent:
            await _progress(context, float(max(done, total)), float(total) or None, f"{name}: done")
    else:
        await _progress(context, time.perf_counter() - start, None, f"{name}: done")
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def _answer(name: str, limit: float | None, result: Any) -> tuple[str, Any]:
    """The worker's outcome as (text, structured content), or the tool error it stands for."""
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
    return payload


async def _progress(context: Context, progress: float, total: float | None, message: str) -> None:
    try:
        await context.report_progress(progress, total, message)
    except Exception:  # no request context (a direct Python call) or the client went away: not fatal
        log.debug("progress not delivered: %s", message)

