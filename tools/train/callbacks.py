"""Trainer callbacks: the metrics.jsonl writer and the progress bar (loss, tokens/s, ETA)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from qkv.tools.train.metrics import peak_memory


class MetricsCallback(TrainerCallback):
    """Appends a row to metrics.jsonl at every log and keeps the last values for the summary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last: dict[str, Any] = {}
        self.last_eval: float | None = None
        self.rates: list[float] = []
        self._t = time.perf_counter()
        self._t0 = self._t
        self._tokens: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._t = self._t0 = time.perf_counter()
        self._tokens = int(state.num_input_tokens_seen or 0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        row: dict[str, Any] = {"step": state.global_step, "time": round(time.time(), 3)}
        if "loss" in logs:
            now, seen = time.perf_counter(), int(state.num_input_tokens_seen or 0)
            rate = (seen - (self._tokens or 0)) / max(now - self._t, 1e-9)
            self._t, self._tokens = now, seen
            peak, kind = peak_memory()
            row.update(loss=float(logs["loss"]), learning_rate=float(logs.get("learning_rate", 0.0)),
                       grad_norm=float(logs["grad_norm"]) if logs.get("grad_norm") is not None else None,
                       tokens_seen=seen, tokens_per_s=round(rate, 2), peak_memory_bytes=peak,
                       peak_memory_kind=kind, elapsed_s=round(now - self._t0, 3))
            self.rates.append(rate)
            self.last = row
        elif "eval_loss" in logs:
            row["eval_loss"] = float(logs["eval_loss"])
            self.last_eval = row["eval_loss"]
            self._t = time.perf_counter()  # eval time is not training throughput
        else:
            return
        if not state.is_world_process_zero:  # every rank logs the same (already all-reduced) values: one row each
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            os.fsync(fh.fileno())


class ProgressBar(TrainerCallback):
    """One tqdm bar on stderr: steps, loss, tokens/s, ETA (replaces transformers' ProgressCallback)."""

    def __init__(self, metrics: MetricsCallback, enabled: bool = True) -> None:
        self.metrics = metrics
        self.enabled = enabled
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step",
                            file=sys.stderr, dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and self.metrics.last:
            post = {"loss": f"{self.metrics.last['loss']:.4f}", "tok/s": f"{self.metrics.last['tokens_per_s']:.0f}"}
            if self.metrics.last_eval is not None:
                post["eval"] = f"{self.metrics.last_eval:.4f}"
            self.bar.set_postfix(post, refresh=True)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
