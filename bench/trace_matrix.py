"""Analytic vs traced peak memory over a matrix of settings (4 model families × full/LoRA/QLoRA ×
2 sequence lengths × gradient checkpointing off/on = 48), printing each relative error and the
median and worst. Both numbers come from this run; nothing is compared with a stored figure.

    python bench/trace_matrix.py [--quick] [--models a,b] [--seqs 256,1024]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

from qkv.tools.memory.estimate import estimate_memory
from qkv.tools.memory.schema import MemoryRequest
from qkv.tools.trace.run import trace_memory

MODELS = ["tinyllama-1.1b", "qwen2.5-0.5b", "gemma-3-270m", "mistral-7b-v0.1"]
METHODS = ["full", "lora", "qlora"]
SEQS = [256, 1024]


def rows(models: list[str], seqs: list[int], batch: int = 1):
    for model, method, seq, ckpt in itertools.product(models, METHODS, seqs, (False, True)):
        req = MemoryRequest(model=model, method=method, seq=seq, batch=batch, grad_checkpointing=ckpt)
        traced = trace_memory(req)
        analytic = estimate_memory(req)
        yield req, analytic.allocated_bytes, traced.peak_bytes, traced.peak_phase, traced.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seqs", default=",".join(map(str, SEQS)))
    args = parser.parse_args()
    errors = []
    start = time.perf_counter()
    print(f"{'model':16} {'method':6} {'seq':>5} {'ckpt':4} {'traced GB':>10} {'analytic GB':>11} {'error':>7}  phase")
    for req, analytic, traced, phase, _ in rows(args.models.split(","), [int(s) for s in args.seqs.split(",")]):
        err = analytic / traced - 1
        errors.append(abs(err))
        print(f"{req.model:16} {req.method:6} {req.seq:>5} {'on' if req.grad_checkpointing else 'off':4} "
              f"{traced / 1e9:>10.3f} {analytic / 1e9:>11.3f} {err:>+7.1%}  {phase}", flush=True)
    print(f"settings {len(errors)}  median |error| {statistics.median(errors):.1%}  worst {max(errors):.1%}  "
          f"(targets 5% / 12%)  in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
