"""Analytic vs traced peak memory over a matrix of settings (4 model families × full/LoRA/QLoRA ×
2 sequence lengths × gradient checkpointing off/on = 48), printing each relative error and the
median and worst. Both numbers come from this run; nothing is compared with a stored figure.

`--techniques` runs instead the rows of issue 18's techniques (chunked cross-entropy, save_on_cpu activation
offload, optimizer step in backward, QLoRA without the fp32 upcast) per model at each sequence length, with
the traced and analytic host RAM of the offload rows; target |error| ≤ 3% (docs/memory-model.md §14).

    python bench/trace_matrix.py [--models a,b] [--seqs 256,1024] [--techniques]
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


# Issue 18's techniques: (label, request fields). Each is traced through the code that runs it
# (tools/trace/techniques.py).
TECHNIQUES = [
    ("chunked loss 256", dict(method="lora", loss_chunk=256)),
    ("chunked loss 256", dict(method="qlora", loss_chunk=256)),
    ("chunked loss 256", dict(method="full", loss_chunk=256)),
    ("offload (save_on_cpu)", dict(method="lora", offload_activations=True)),
    ("offload + ckpt", dict(method="lora", offload_activations=True, grad_checkpointing=True)),
    ("optimizer in bwd", dict(method="full", optimizer_in_bwd=True)),
    ("bf16 embeddings", dict(method="qlora", kbit_fp32_upcast=False)),
]


def rows(models: list[str], seqs: list[int], batch: int = 1):
    for model, method, seq, ckpt in itertools.product(models, METHODS, seqs, (False, True)):
        req = MemoryRequest(model=model, method=method, seq=seq, batch=batch, grad_checkpointing=ckpt)
        traced = trace_memory(req)
        analytic = estimate_memory(req)
        yield req, analytic.allocated_bytes, traced.peak_bytes, traced.peak_phase, traced.seconds


def technique_rows(models: list[str], seqs: list[int]) -> None:
    """Print one line per model × technique × sequence: traced and analytic GB, error, host RAM."""
    errors = []
    start = time.perf_counter()
    print(f"{'model':16} {'technique':22} {'method':6} {'seq':>5} {'traced GB':>10} {'analytic GB':>11} {'error':>7}"
          f"  phase       host traced/analytic GB")
    for model, (label, fields), seq in itertools.product(models, TECHNIQUES, seqs):
        req = MemoryRequest(model=model, seq=seq, **fields)
        traced, analytic = trace_memory(req), estimate_memory(req)
        err = analytic.allocated_bytes / traced.peak_bytes - 1
        errors.append(abs(err))
        host = f"{traced.host_bytes / 1e9:.3f}/{analytic.host_bytes / 1e9:.3f}" if req.offload_activations else ""
        print(f"{model:16} {label:22} {req.method:6} {seq:>5} {traced.peak_bytes / 1e9:>10.3f} "
              f"{analytic.allocated_bytes / 1e9:>11.3f} {err:>+7.1%}  {traced.peak_phase:10}  {host}", flush=True)
    print(f"settings {len(errors)}  median |error| {statistics.median(errors):.1%}  worst {max(errors):.1%}  "
          f"(target 3%)  in {time.perf_counter() - start:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seqs", default=",".join(map(str, SEQS)))
    parser.add_argument("--techniques", action="store_true", help="issue 18's technique rows instead")
    args = parser.parse_args()
    if args.techniques:
        technique_rows(args.models.split(","), [int(s) for s in args.seqs.split(",")])
        return
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
