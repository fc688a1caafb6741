"""Cold start of `qkv vram` and `qkv serve` against `python -c pass`, measured in the same run.

    python bench/cli_cold_start.py [--runs 15]

Prints medians and the ratio; the target is under 0.6 s for vram and 0.5 s for serve on a 2-core
machine. No torch may load on either path (tests assert it); this benchmark shows what the remaining
imports cost."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

QKV = [str(Path(sys.executable).with_name("qkv")), "vram", "llama-2-7b", "--method", "qlora", "--gpu", "rtx-4090"]
SERVE = [str(Path(sys.executable).with_name("qkv")), "serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--gpus", "4",
         "--concurrency", "50", "--context", "8192", "--tpot-ms", "50"]
BASELINE = [sys.executable, "-c", "pass"]
# Python's default is to cache bytecode; a sandbox that sets PYTHONDONTWRITEBYTECODE would make every
# run recompile qkv's modules, which no installed user pays. Measure the default.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def median_seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    median_seconds(QKV, 2)  # warm the page cache and .pyc files: we measure interpreter start, not disk
    base = median_seconds(BASELINE, args.runs)
    cli = median_seconds(QKV, args.runs)
    print(f"python -c pass        median {base:.3f} s  (baseline, {args.runs} runs)")
    print(f"qkv vram (worked ex.) median {cli:.3f} s  = {cli / base:.1f}× baseline, +{cli - base:.3f} s")
    print(f"target < 0.6 s: {'met' if cli < 0.6 else 'NOT met'}")
    median_seconds(SERVE, 2)
    srv = median_seconds(SERVE, args.runs)
    print(f"qkv serve (70B/4×H100) median {srv:.3f} s  = {srv / base:.1f}× baseline, +{srv - base:.3f} s")
    print(f"target < 0.5 s: {'met' if srv < 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
