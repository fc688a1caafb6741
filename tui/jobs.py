"""Long work as child processes (trace, training): the TUI process never imports torch, stays responsive
while a step is traced or a model trains, and a cancel really stops the work (terminate, then kill).

Also a tiny entry point that runs one tool function and prints its pydantic result as JSON:
`python -m qkv.tui.jobs trace '<MemoryRequest JSON>'` (the same `compare_trace` the CLI's
`qkv vram --trace` calls)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel


class JobResult(BaseModel):
    name: str
    returncode: int | None
    stdout: str
    stderr_tail: str
    cancelled: bool
    seconds: float


def trace_argv(request_json: str) -> list[str]:
    return [sys.executable, "-m", "qkv.tui.jobs", "trace", request_json]


def train_argv(config: Path, out: Path | None = None) -> list[str]:
    argv = [sys.executable, "-m", "qkv.agent.cli", "train", str(config)]
    return argv + (["--out", str(out)] if out else [])


def run_job(name: str, argv: list[str], *, on_line: Callable[[str], None] | None = None,
            is_cancelled: Callable[[], bool] = lambda: False, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> JobResult:
    """Run argv, feeding each stderr line (progress) to on_line; poll is_cancelled every 0.1 s."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    out_parts: list[str] = []
    tail: list[str] = []

    def pump_err() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            tail.append(line)
            del tail[:-40]
            if on_line:
                on_line(line.rstrip())

    def pump_out() -> None:
        assert proc.stdout is not None
        out_parts.append(proc.stdout.read())

    threads = [threading.Thread(target=pump_err, daemon=True), threading.Thread(target=pump_out, daemon=True)]
    for t in threads:
        t.start()
    cancelled = False
    while proc.poll() is None:
        if is_cancelled():
            cancelled = True
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            break
        time.sleep(0.1)
    for t in threads:
        t.join(timeout=2)
    return JobResult(name=name, returncode=proc.returncode, stdout="".join(out_parts), stderr_tail="".join(tail),
                     cancelled=cancelled, seconds=time.perf_counter() - start)


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "trace":
        sys.stderr.write("usage: python -m qkv.tui.jobs trace '<MemoryRequest JSON>'\n")
        return 2
    from qkv.tools.errors import QkvError
    from qkv.tools.memory.schema import MemoryRequest
    from qkv.tools.trace.compare import compare_trace

    try:
        req = MemoryRequest.model_validate_json(argv[1])
        sys.stderr.write(f"tracing one {req.method} step of {req.model} (batch {req.batch}, seq {req.seq}) "
                         "on fake tensors…\n")
        result = compare_trace(req)
    except QkvError as err:
        sys.stderr.write(f"qkv: error: {err}\n")
        return 2
    sys.stdout.write(result.model_dump_json() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
