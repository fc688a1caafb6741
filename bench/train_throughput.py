"""Training throughput: qkv's trainer vs a plain transformers Trainer + peft baseline, same model, same LoRA
config, same data, same steps, measured in the same run; plus the speed-up of packing on variable-length
data (qkv packed vs qkv unpacked with padding to the longest row).

    QKV_HOME=/tmp/qkvhome .venv/bin/python bench/train_throughput.py --steps 6 --seq 128 --batch 4

Throughput = non-padding tokens trained on / wall seconds, per step, median over steps after the first
(warm-up), measured by the same callback (qkv.tools.train.callbacks.MetricsCallback) for every variant.
The baseline is the common tutorial recipe: tokenize with padding='max_length' to seq_len and
DataCollatorForLanguageModeling(mlm=False); the same LoRA (r, alpha, dropout, targets), optimizer, LR.
Variants run in alternating order (ABC, CBA, ...) over --repeats to spread machine-load drift evenly."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path


def _cfg(out: Path, args, packing: bool):
    from qkv.tools.train.config import config_from_dict

    return config_from_dict({
        "model": {"name": "gemma3-270m"},
        "data": {"train": "bundled:licences-train.jsonl", "eval": None, "eval_fraction": 0.05,
                 "max_samples": args.rows},
        "method": {"kind": "lora", "r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "optim": {"lr": 2e-4, "schedule": "constant"},
        "train": {"micro_batch": args.batch, "seq_len": args.seq, "packing": packing, "max_steps": args.steps},
        "run": {"seed": 0, "eval_interval": 10_000, "checkpoint_interval": 10_000, "output_dir": str(out),
                "threads": args.threads},
    })


def _rates(metrics_path: Path) -> list[float]:
    from qkv.tools.train.metrics import read_metrics

    return [r["tokens_per_s"] for r in read_metrics(metrics_path) if "loss" in r][1:]  # drop warm-up step


def run_qkv(out: Path, args, packing: bool) -> float:
    from qkv.tools.train.run import execute, prepare

    run = prepare(_cfg(out, args, packing), progress=False)
    execute(run)
    return statistics.median(_rates(out / "metrics.jsonl"))


def run_baseline(out: Path, args) -> float:
    """Plain transformers Trainer + peft, padding to max_length (what most tutorials do)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments, set_seed

    from qkv.tools.hf_models import load_causal_lm
    from qkv.tools.train.callbacks import MetricsCallback
    from qkv.tools.train.data import load_split_rows

    torch.set_num_threads(args.threads)
    cfg = _cfg(out, args, True)
    set_seed(0)
    model, tok = load_causal_lm("gemma3-270m")
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                             target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.train()
    rows = load_split_rows(cfg.data, seed=0).train
    features = [tok(r["text"], truncation=True, max_length=args.seq, padding="max_length") for r in rows]
    dataset = [{"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]} for f in features]
    targs = TrainingArguments(output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch,
                              learning_rate=2e-4, lr_scheduler_type="constant", logging_steps=1, save_strategy="no",
                              report_to="none", use_cpu=True, include_num_input_tokens_seen="non_padding",
                              remove_unused_columns=False, disable_tqdm=True, seed=0)
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model=model, args=targs, train_dataset=dataset,
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
                      callbacks=[MetricsCallback(out / "metrics.jsonl")])
    trainer.train()
    return statistics.median(_rates(out / "metrics.jsonl"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rows", type=int, default=200, help="training rows (licence paragraphs, variable length)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    results: dict[str, list[float]] = {"baseline": [], "qkv_packed": [], "qkv_unpacked": []}
    order = list(results)
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for name in (order if rep % 2 == 0 else order[::-1]):
                out = Path(tmp) / f"{name}-{rep}"
                if name == "baseline":
                    rate = run_baseline(out, args)
                else:
                    rate = run_qkv(out, args, packing=name == "qkv_packed")
                results[name].append(rate)
                print(f"{name:>13}: {rate:8.1f} tokens/s", file=sys.stderr, flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    report = {
        "config": vars(args), "tokens_per_s": med,
        "qkv_vs_baseline": round(med["qkv_packed"] / med["baseline"], 3),
        "packing_speedup": round(med["qkv_packed"] / med["qkv_unpacked"], 3),
    }
    print(json.dumps(report, indent=2))
    print(f"qkv trainer vs plain Trainer+peft: x{report['qkv_vs_baseline']}   "
          f"packing vs padding to longest: x{report['packing_speedup']}")


if __name__ == "__main__":
    main()
