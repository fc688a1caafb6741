"""`qkv design --llm none` latency: the whole graph (intake → report) on the persona's
worked example, against a baseline measured in the same run: one bare `fit_report` call (the memory tool
the efficiency step calls), so the ratio says what the graph and the other tools add; then the same
graph run by LangGraph with a SQLite checkpoint after every step (the TUI's and `--session`'s path).

    QKV_HOME=/tmp/qkvhome .venv/bin/python bench/design_latency.py [--repeat 5]

Also times a cold `qkv design --json` process (imports included) — the figure the 3 s target is about."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKED = "Fine-tune a 7B parameter Transformer for legal document summarization on a consumer GPU with 24GB VRAM"


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from qkv.agent.graph.api import DesignRequest, design
    from qkv.tools.memory.schema import MemoryRequest
    from qkv.tools.memory.verdict import fit_report

    req = DesignRequest(task=WORKED)
    design(req)  # warm: imports, catalogs, caches
    base = timed(lambda: fit_report(MemoryRequest(model="llama-2-7b", gpu="rtx-4090", seq=2048)), args.repeat)
    graph = timed(lambda: design(req), args.repeat)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "s.sqlite"
        design(req, db_path=db)  # warm LangGraph
        ckpt = timed(lambda: design(req, db_path=db), args.repeat)
    repo = Path(__file__).resolve().parents[1]
    cold = timed(lambda: subprocess.run([sys.executable, "-m", "qkv.agent.cli", "design", WORKED, "--json"],
                                        cwd=repo, check=True, capture_output=True), max(1, args.repeat // 2))
    b, g, c = statistics.median(base), statistics.median(graph), statistics.median(cold)
    k = statistics.median(ckpt)
    print(f"baseline fit_report (median of {args.repeat}):      {b * 1000:8.1f} ms")
    print(f"design() whole graph, warm (median of {args.repeat}): {g * 1000:8.1f} ms   ratio {g / b:6.1f}x baseline")
    print(f"same graph on LangGraph + SQLite checkpoints:  {k * 1000:8.1f} ms   ratio {k / b:6.1f}x baseline")
    print(f"qkv design --json, cold process (median):   {c * 1000:8.1f} ms   ratio {c / b:6.1f}x baseline")
    print(f"target < 3 s for the cold CLI: {'met' if c < 3 else 'NOT met'}")


if __name__ == "__main__":
    main()
