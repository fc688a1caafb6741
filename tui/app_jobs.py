"""The app's jobs: tracing the recommended training step and training, each in a child process that Esc
really stops, with a one-line job bar while it runs. A mixin of QkvApp (it uses the app's chat and tabs)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from textual import work
from textual.widgets import Static
from textual.worker import get_current_worker

from qkv.tools.atomic import write_text
from qkv.tui.summary import NotTraceable, memory_request


class JobsMixin:
    """Ctrl+T (trace) and /train; the app provides reply(), reply_in(), on_tabs(), log_tool(), _busy() and
    friends. A job belongs to the session that started it: its result goes to that session's transcript and
    tool log even if the user has switched sessions (Ctrl+N, Ctrl+O) meanwhile."""

    job_name: str | None = None
    _job_started = 0.0
    _job_last = ""

    def action_trace(self) -> None:
        if self.report is None:
            self.reply("Nothing to trace yet: design something first, then Ctrl+T traces its training step.")
            return
        if self._busy("job"):
            self.reply(f"A {self.job_name} job is running; Esc cancels it.")
            return
        try:
            req = memory_request(self.report)
        except NotTraceable as exc:
            self.reply(f"I can't trace this one: {exc}.")
            return
        gpus = self.report.efficiency.gpus
        share = f" — one GPU's share of the {gpus}-GPU data-parallel plan (each GPU holds the same)" \
            if gpus > 1 else ""
        self.reply(f"Tracing one {req['method']} step of {req['model']} (micro-batch {req['batch']}, seq "
                   f"{req['seq']}){share} on fake tensors in a child process; Esc cancels.")
        self._run_trace(json.dumps(req), self.thread_id)

    @work(thread=True, exclusive=True, group="job")
    def _run_trace(self, request_json: str, thread_id: str) -> None:
        from qkv.tui.jobs import run_job, trace_argv

        worker = get_current_worker()
        self.call_from_thread(self._job_started_ui, "trace")
        result = run_job("trace", trace_argv(request_json), is_cancelled=lambda: worker.is_cancelled,
                         on_line=lambda line: self.call_from_thread(self._job_line, line))
        self.call_from_thread(self._trace_done, result, thread_id)

    def _trace_done(self, result: Any, thread_id: str) -> None:
        self._job_finished_ui()
        tool = "trace (compare_trace)"
        if result.cancelled:
            self.log_tool("job", tool, result.seconds, "cancelled", thread_id=thread_id)
            self.reply_in(thread_id, "Trace cancelled (the child process was stopped).")
            return
        if result.returncode != 0:
            self.log_tool("job", tool, result.seconds, f"failed: exit {result.returncode}", thread_id=thread_id)
            self.reply_in(thread_id, "The trace failed:\n" + result.stderr_tail[-600:])
            return
        data = json.loads(result.stdout)
        gib = 1024**3
        traced = data["traced"]["peak_bytes"] / gib
        analytic = data["analytic"]["estimate"]["allocated_bytes"] / gib
        self.log_tool("job", tool, result.seconds,
                      f"traced {traced:.2f} GiB vs analytic {analytic:.2f} GiB ({data['relative_error']:+.1%})",
                      thread_id=thread_id)
        rows = "\n".join(f"• {r['category']}: analytic {r['analytic_bytes'] / gib:.2f} GiB, traced "
                         f"{r['traced_bytes'] / gib:.2f} GiB" for r in data["rows"] if r["traced_bytes"] or
                         r["analytic_bytes"])
        self.reply_in(thread_id, f"Traced peak of live tensors: {traced:.2f} GiB (traced) vs {analytic:.2f} GiB "
                      f"(analytic), relative error {data['relative_error']:+.1%}.\n{rows}")

    def start_training(self, config: Path | None) -> None:
        if self._busy("job"):
            self.reply(f"A {self.job_name} job is running; Esc cancels it.")
            return
        run_dir = (self.runs_dir / self.thread_id / "train").resolve()
        if config is None:
            if self.report is None:
                self.reply("No training config yet: design something first, or give one: /train path/to/config.yaml")
                return
            tc = self.report.training_config
            if not tc.available or tc.yaml is None:
                self.reply("This report has no runnable training config (see its training section).")
                return
            config = run_dir / "config.yaml"
            write_text(config, tc.yaml)  # the agent's commented YAML, as `qkv design` writes it
        self.on_tabs(lambda t: t.follow(run_dir))
        self.action_tab("training")
        self.reply(f"Training with {config.resolve()} in a child process; the loss curve follows "
                   f"{run_dir}/metrics.jsonl. Esc cancels (the trainer checkpoints on exit).")
        self._run_training(str(config), str(run_dir), self.thread_id)

    @work(thread=True, exclusive=True, group="job")
    def _run_training(self, config: str, run_dir: str, thread_id: str) -> None:
        from qkv.tui.jobs import run_job, train_argv

        worker = get_current_worker()
        self.call_from_thread(self._job_started_ui, "training")
        result = run_job("train", train_argv(Path(config), Path(run_dir)), is_cancelled=lambda: worker.is_cancelled,
                         on_line=lambda line: self.call_from_thread(self._job_line, line))
        self.call_from_thread(self._train_done, result, thread_id)

    def _train_done(self, result: Any, thread_id: str) -> None:
        self._job_finished_ui()
        status = "cancelled" if result.cancelled else f"exit {result.returncode}"
        self.log_tool("job", "train", result.seconds, status, thread_id=thread_id)
        if result.cancelled:
            self.reply_in(thread_id, "Training cancelled.")
        elif result.returncode != 0:
            self.reply_in(thread_id, "Training failed:\n" + result.stderr_tail[-600:])
        else:
            self.reply_in(thread_id, "Training finished; the curve shows the measured loss.\n" + result.stdout[-600:])

    def _job_started_ui(self, name: str) -> None:
        self.job_name = name
        self._job_started = time.monotonic()
        self.query_one("#jobbar", Static).display = True
        self._tick_jobbar()

    def _job_line(self, line: str) -> None:
        if line.strip():
            self._job_last = line.strip()[-120:]

    def _tick_jobbar(self) -> None:
        if not self.job_name:
            return
        elapsed = time.monotonic() - self._job_started
        self.query_one("#jobbar", Static).update(f"⏳ {self.job_name} {elapsed:4.0f} s  — Esc cancels   "
                                                 f"{self._job_last}")

    def _job_finished_ui(self) -> None:
        self.job_name = None
        self._job_last = ""
        self.query_one("#jobbar", Static).display = False
