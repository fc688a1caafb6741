"""Chunked vs standard loss (train.loss) on Gemma 3 270M: training-step throughput in the same run, and one
step's peak memory against the estimator's prediction.

    QKV_HOME=/tmp/qkvhome .venv/bin/python bench/chunked_loss.py --seq 512 --chunk 128 --rounds 6 --memory

Throughput: one model, one batch, loaded once the way `qkv train` loads them; each round runs one training
step (forward + backward through QkvTrainer.compute_loss) with the standard loss and one with the chunked
loss, in alternating order (AB, BA, ...), after two warm-up steps of each. Tokens/s = non-padding tokens /
step seconds, median over rounds; the ratio is the median of the per-round ratios, so load drift on a shared
machine cancels pairwise. The optimizer step is left out: it is the same for both and negligible for LoRA.
Memory (--memory): `python -m qkv.tools.train.probe` in a fresh process per variant (one forward + backward,
peak RSS after a reset of VmHWM), with glibc's mmap threshold fixed at 1 MiB (MALLOC_MMAP_THRESHOLD_) so
freed tensors leave the resident set, and again with the default allocator; the drop is compared with the
estimator's loss terms for the same request (qkv vram ... --loss-chunk)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def _raw(out: Path, args, loss: str, steps: int) -> dict:
    return {
        "model": {"name": "gemma3-270m"},
        "data": {"train": "bundled:licences-train.jsonl", "eval": None, "eval_fraction": 0.05},
        "method": {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "optim": {"lr": 2e-4, "schedule": "constant"},
        "train": {"micro_batch": args.batch, "seq_len": args.seq, "packing": True, "max_steps": steps,
                  "loss": loss, "loss_chunk_tokens": args.chunk},
        "run": {"seed": 0, "eval_interval": 10_000, "checkpoint_interval": 10_000, "output_dir": str(out),
                "threads": args.threads},
    }


def throughput(tmp: Path, args) -> dict:
    """Paired step timings, standard vs chunked, on one loaded model and batch."""
    import time

    from qkv.tools.train.config import config_from_dict
    from qkv.tools.train.run import prepare

    run = prepare(config_from_dict(_raw(tmp / "throughput", args, "chunked", 1)), progress=False)
    trainer, model = run.trainer, run.model
    chunked = trainer.chunked_loss
    rows = [trainer.train_dataset[i] for i in range(args.batch)]
    batch = trainer.data_collator(rows)
    tokens = int(batch["attention_mask"].sum())

    def step(loss: str) -> tuple[float, float]:
        trainer.chunked_loss = chunked if loss == "chunked" else None
        t0 = time.perf_counter()
        value = trainer.compute_loss(model, dict(batch))
        value.backward()
        seconds = time.perf_counter() - t0
        model.zero_grad(set_to_none=True)
        return seconds, float(value.detach())

    for _ in range(2):
        step("standard"), step("chunked")
    times: dict[str, list[float]] = {"standard": [], "chunked": []}
    losses: dict[str, float] = {}
    for rnd in range(args.rounds):
        for loss in (["standard", "chunked"] if rnd % 2 == 0 else ["chunked", "standard"]):
            seconds, losses[loss] = step(loss)
            times[loss].append(seconds)
            print(f"{loss:>9} round {rnd + 1}: {tokens / seconds:8.1f} tokens/s", file=sys.stderr, flush=True)
    ratios = [s / c for s, c in zip(times["standard"], times["chunked"], strict=True)]
    return {"tokens_per_step": tokens,
            "median_tokens_per_s": {k: round(tokens / statistics.median(v), 2) for k, v in times.items()},
            "step_seconds": times, "chunked_over_standard": round(statistics.median(ratios), 3),
            "per_round_ratio": [round(r, 3) for r in ratios],
            "loss_diff": abs(losses["standard"] - losses["chunked"]), "notes": run.notes}


def probe(tmp: Path, args, loss: str, allocator: str) -> dict:
    from qkv.tools.train.config import config_from_dict, to_yaml

    path = tmp / f"probe-{loss}-{allocator}.yaml"
    path.write_text(to_yaml(config_from_dict(_raw(tmp / path.stem, args, loss, 1))))
    env = dict(os.environ)
    if allocator == "fixed-1MiB":
        env["MALLOC_MMAP_THRESHOLD_"] = str(2**20)
    out = subprocess.run([sys.executable, "-m", "qkv.tools.train.probe", str(path)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def predicted_drop(args) -> dict:
    """The estimator's loss terms for this request, standard vs --loss-chunk (qkv vram gemma-3-270m ...)."""
    from qkv.tools.memory.estimate import estimate_memory
    from qkv.tools.memory.schema import MemoryRequest

    terms = {}
    for chunk in (None, args.chunk):
        req = MemoryRequest(model="gemma-3-270m", method="lora", batch=args.batch, seq=args.seq, precision="fp32",
                            lora_targets=["q_proj", "v_proj"], foreach=False, cuda_context_gib=0.0, loss_chunk=chunk)
        est = estimate_memory(req)
        terms[chunk] = {"allocated": est.allocated_bytes,
                        "loss": sum(t.bytes for t in est.terms if t.name.startswith("loss"))}
    return {"standard_loss_bytes": terms[None]["loss"], "chunked_loss_bytes": terms[args.chunk]["loss"],
            "drop_bytes": terms[None]["allocated"] - terms[args.chunk]["allocated"],
            "command": f"qkv vram gemma-3-270m --method lora --precision fp32 --batch {args.batch} --seq {args.seq} "
                       f"--loss-chunk {args.chunk}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=6, help="timed rounds (one step of each variant per round)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", action="store_true", help="also measure one step's peak RSS per variant")
    args = ap.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    report: dict = {"config": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        report["throughput"] = thr = throughput(Path(tmp), args)
        if args.memory:
            pred = predicted_drop(args)
            mem = {"predicted": pred}
            for allocator in ("fixed-1MiB", "default"):
                std, chk = probe(Path(tmp), args, "standard", allocator), probe(Path(tmp), args, "chunked", allocator)
                drop = std["peak_bytes"] - chk["peak_bytes"]
                mem[allocator] = {"standard_peak_bytes": std["peak_bytes"], "chunked_peak_bytes": chk["peak_bytes"],
                                  "drop_bytes": drop, "drop_over_predicted": round(drop / pred["drop_bytes"], 3)}
                print(f"peak RSS ({allocator}): standard {std['peak_bytes'] / 2**30:.3f} GiB, chunked "
                      f"{chk['peak_bytes'] / 2**30:.3f} GiB, drop {drop / 2**30:.3f} GiB vs predicted "
                      f"{pred['drop_bytes'] / 2**30:.3f} GiB", file=sys.stderr, flush=True)
            report["memory"] = mem
    print(json.dumps(report, indent=2))
    med = thr["median_tokens_per_s"]
    print(f"chunked vs standard loss: x{thr['chunked_over_standard']} tokens/s "
          f"(median {med['chunked']:.1f} vs {med['standard']:.1f})")


if __name__ == "__main__":
    main()
