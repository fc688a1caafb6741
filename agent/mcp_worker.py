"""The MCP worker process: long tools (tracing, audit, evaluation, design) run in a child process that the
server kills to end a cancelled or timed-out call; a thread cannot be stopped. This module imports neither
the SDK nor any tool: `python -c "...serve_worker(...)"` starts in about 0.4 s instead of 1.6 s, and then
imports only the tools it is asked to run (kept warm for the next call)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from qkv.tools.errors import validation_summary

WORKER_IDLE_S = 600.0  # an idle worker exits after this long; the next long call starts a fresh one
WORKER_PROGRESS_S = 0.2  # at most this often a progress message goes to the server


def serve_worker(fd: int, parent: int) -> None:
    """The worker's loop: receive (tool name, checked arguments) on the socket `fd`, run the tool, send
    ("ok", (text, structured content)) or ("error" | "invalid" | "crash", text), with ("progress", done, total) messages
    in between. It exits on EOF (the server went away), on the kernel's parent-death signal, or after
    WORKER_IDLE_S without work. The server kills its process group to cancel a call, so nothing here has
    to be interruptible."""
    import traceback
    from multiprocessing.connection import Connection

    import pydantic_core
    from pydantic import ValidationError

    from qkv.tools.errors import QkvError

    _die_with_parent(parent)
    conn = Connection(fd)
    from qkv.agent.mcp_tools import TOOLS, bind

    specs = {s.name: s for s in TOOLS}
    tools: dict[str, Any] = {}
    sent = [0.0]  # when the last progress message went out

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - sent[0] >= WORKER_PROGRESS_S or (total and done >= total):
            sent[0] = now
            conn.send(("progress", int(done), int(total)))

    try:
        while conn.poll(WORKER_IDLE_S):
            name, args = conn.recv()
            sent[0] = 0.0
            try:
                if name not in specs:
                    raise QkvError(f"unknown tool {name}")
                tool = tools.get(name) or bind(specs[name])
                tools[name] = tool
                result = tool.call(tool.request.model_validate(args), progress=progress)
                # The wire form, as the SDK would make it in-process (a text block holding the JSON, and the
                # structured content): models built at run time for MCP do not pickle, JSON always does.
                text = pydantic_core.to_json(result, fallback=str, indent=2).decode()
                conn.send(("ok", (text, result.model_dump(mode="json", by_alias=True))))
            except QkvError as exc:
                conn.send(("error", str(exc)))
            except ValidationError as exc:
                conn.send(("invalid", validation_summary(exc)))
            except Exception:
                conn.send(("crash", traceback.format_exc()))
    except (EOFError, OSError):  # the server closed the socket or is gone
        return


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when the server dies (even by SIGKILL), so no worker outlives it."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the server died before the signal was armed
        os._exit(0)
