"""The training tab: a live loss curve from a run folder's metrics.jsonl (one JSON object per line:
step, loss, eval_loss, learning_rate, tokens_per_s, peak_mem, ...), tailed once a second from the last
byte read, so a run that is still writing is followed as it goes."""

from __future__ import annotations

import json
from pathlib import Path

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot


class MetricsTail:
    """Incremental reader of metrics.jsonl: complete lines only (a half-written last line waits)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rows: list[dict] = []
        self.bad_lines = 0

    def poll(self) -> int:
        """Read what was appended since the last poll; return how many new rows arrived."""
        if not self.path.is_file():
            return 0
        size = self.path.stat().st_size
        if size < self.offset:  # file was replaced (a restarted run): start over
            self.offset, self.rows = 0, []
        if size == self.offset:
            return 0
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(size - self.offset)
        end = chunk.rfind(b"\n")
        if end < 0:
            return 0
        self.offset += end + 1
        added = 0
        for line in chunk[:end].splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(row, dict):
                self.rows.append(row)
                added += 1
        return added


def _summary(rows: list[dict], path: Path) -> str:
    last = rows[-1]
    bits = [f"{path}", f"step {last.get('step')}"]
    for key, label in (("loss", "loss"), ("eval_loss", "eval loss"), ("learning_rate", "lr"),
                       ("tokens_per_s", "tok/s"), ("peak_mem", "peak mem")):
        val = next((r[key] for r in reversed(rows) if r.get(key) is not None), None)
        if val is not None:
            bits.append(f"{label} {val:.4g}" if isinstance(val, float) else f"{label} {val}")
    return "  ·  ".join(bits)


NO_RUN = ("No run followed. /train runs the report's training config; /follow RUN_DIR plots an existing "
          "run's metrics.jsonl.")


class TrainingPane(Vertical):
    def compose(self) -> ComposeResult:
        yield Static(NO_RUN, id="train-status", markup=False)
        yield PlotextPlot(id="train-plot")

    def clear(self) -> None:
        """Follow nothing (a new session has no run)."""
        self.tail = None
        self.query_one("#train-status", Static).update(NO_RUN)
        plot = self.query_one("#train-plot", PlotextPlot)
        plot.plt.clear_data()
        plot.refresh()

    def on_mount(self) -> None:
        self.tail: MetricsTail | None = None
        self._timer = None

    def follow(self, run_dir: Path) -> Path:
        """Start tailing RUN_DIR/metrics.jsonl (or the file itself)."""
        path = run_dir / "metrics.jsonl" if run_dir.is_dir() or run_dir.suffix != ".jsonl" else run_dir
        self.tail = MetricsTail(path)
        self.query_one("#train-status", Static).update(f"following {path} (waiting for the first step)…")
        if self._timer is None:
            self._timer = self.set_interval(1.0, self.refresh_plot)
        self.refresh_plot()
        return path

    def refresh_plot(self) -> None:
        if self.tail is None or not self.tail.poll():
            return
        rows = self.tail.rows
        plot = self.query_one("#train-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        train = [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None and r.get("step") is not None]
        evals = [(r["step"], r["eval_loss"]) for r in rows
                 if r.get("eval_loss") is not None and r.get("step") is not None]
        if train:
            plt.plot([s for s, _ in train], [v for _, v in train], label="loss", marker="braille")
        if evals:
            plt.plot([s for s, _ in evals], [v for _, v in evals], label="eval loss", marker="braille")
        plt.title("loss (measured)")
        plt.xlabel("step")
        plot.refresh()
        self.query_one("#train-status", Static).update(_summary(rows, self.tail.path))
