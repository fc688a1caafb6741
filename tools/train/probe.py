"""One training step measured on its own: the peak memory of a single forward + backward through the
Trainer's loss (`QkvTrainer.compute_loss`, so `train.loss` and `train.offload_activations` apply), with the
load's own peak reset away, plus its time and loss. Run each variant in a fresh process, so one variant's
allocator state cannot leak into another's peak (bench/chunked_loss.py and the chunked-loss memory test do):

    python -m qkv.tools.train.probe CONFIG.yaml        # prints one JSON object

On CPU the peak is the process's VmHWM after a reset through /proc/self/clear_refs (`peak_reset` says whether
the kernel allowed it), minus nothing: `peak_bytes - rss_before_bytes` is what the step added."""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

from qkv.tools.train.config import TrainConfig, load_config


def probe_step(cfg: TrainConfig, *, base_dir: Path | None = None) -> dict[str, Any]:
    """Load as `qkv train` does, take the first micro-batch, run one forward + backward, measure."""
    from qkv.tools.train.data import IGNORE
    from qkv.tools.train.metrics import current_rss_bytes, peak_memory, reset_peak_memory
    from qkv.tools.train.run import prepare

    run = prepare(cfg, base_dir=base_dir, progress=False)
    trainer = run.trainer
    rows = [trainer.train_dataset[i] for i in range(min(cfg.train.micro_batch, len(trainer.train_dataset)))]
    batch = trainer.data_collator(rows)
    run.model.train()
    gc.collect()
    before = current_rss_bytes()
    reset = reset_peak_memory()
    t0 = time.perf_counter()
    loss = trainer.compute_loss(run.model, dict(batch))
    loss.backward()
    seconds = time.perf_counter() - t0
    peak, kind = peak_memory()
    return {
        "loss": float(loss.detach()), "seconds": round(seconds, 3), "tokens": int(batch["attention_mask"].sum()),
        "scored_tokens": int((batch["labels"][:, 1:] != IGNORE).sum()), "peak_bytes": peak, "peak_kind": kind,
        "rss_before_bytes": before, "step_bytes": peak - before if kind == "cpu_peak_rss" else peak,
        "peak_reset": reset, "loss_kind": cfg.train.loss, "loss_chunk_tokens": cfg.train.loss_chunk_tokens,
        "notes": run.notes,
    }


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m qkv.tools.train.probe CONFIG.yaml")
    path = Path(args[0])
    print(json.dumps(probe_step(load_config(path), base_dir=path.parent)))


if __name__ == "__main__":
    main()
