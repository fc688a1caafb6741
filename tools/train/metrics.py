"""metrics.jsonl: one JSON object per logged step (written by callbacks.MetricsCallback; the TUI plots it).

Row fields: step, loss, learning_rate, grad_norm, tokens_seen, tokens_per_s (non-padding tokens / wall
second since the previous row), peak_memory_bytes and peak_memory_kind ('cuda_max_allocated' =
torch.cuda.max_memory_allocated, comparable to the estimator's allocated bytes; 'cpu_peak_rss' = the
process's peak resident set from getrusage, which also holds Python, torch and the tokenizer), elapsed_s,
time (unix seconds).
Eval rows carry step and eval_loss."""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any


def peak_memory() -> tuple[int, str]:
    """(bytes, kind): CUDA max allocated on a GPU, else this process's peak RSS."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return int(torch.cuda.max_memory_allocated()), "cuda_max_allocated"
    return _peak_rss_bytes(), "cpu_peak_rss"


def _peak_rss_bytes() -> int:
    """This process's own RSS high-water mark. /proc's VmHWM first: getrusage's ru_maxrss survives exec on
    Linux, so a run started by a large parent (the TUI, pytest) would report the parent's RSS at fork."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Rows of a metrics.jsonl (a torn last line from a SIGKILL is skipped)."""
    rows = []
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def truncate_after(path: Path, step: int) -> None:
    """Drop rows past `step` (a resumed run re-logs them), atomically."""
    from qkv.tools.train.checkpoints import write_text_atomic

    if path.is_file():
        keep = [r for r in read_metrics(path) if r.get("step", 0) <= step]
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in keep))


def reset_peak_memory() -> bool:
    """Start a new peak: CUDA's max-allocated counter, or this process's VmHWM (Linux >= 4.0: writing 5 to
    /proc/self/clear_refs resets it), so a later peak_memory() measures only what ran since. False when the
    kernel refused (the next peak then still includes everything before)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()
        return True
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def current_rss_bytes() -> int:
    """This process's resident set now (VmRSS), 0 where /proc is missing."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
