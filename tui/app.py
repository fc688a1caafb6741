"""The qkv TUI: a chat on the left (requests, follow-ups, questions; replies stream in), the graph's steps
and tabs on the right (report, memory, tokenizer audit, training, tool log).

Nothing slow runs on the UI thread: designs, answers and LLM wording run in thread workers, tracing and
training run as child processes (really cancellable with Esc). Every message is saved to SQLite as it
completes, so `qkv chat --resume` after a crash shows the conversation and the report where they were."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.lazy import Lazy
from textual.widgets import Footer, Header, Input, Static
from textual.worker import Worker, get_current_worker

from qkv.tui import driver
from qkv.tui.facts import answer_from_report, changed_sections, diff_reports, summarize_changes
from qkv.tui.intents import EXAMPLES, QUESTION_START, Intent, classify, commands_help, help_for
from qkv.tui.sessions import SessionStore, new_thread_id
from qkv.tui.voice import Voice, VoiceConfig
from qkv.tui.widgets.chat import ChatMessage, ChatView
from qkv.tui.widgets.steps import StepTracker
from qkv.tui.widgets.tabs import RightTabs

TABS = ("report", "memory", "tokenizer", "training", "tools")
GREETING = ("Hello — I'm qkv. Describe what you want to build and on what hardware, e.g.\n"
            f"“{EXAMPLES[0]}”.\nI'll walk the five steps with real tools and write a report whose every number is "
            "computed, traced or measured. F1 lists the keys.")


class QkvApp(App[None]):
    """`QkvApp(llm="none")` for the deterministic templates, `llm="local"` for the bundled model's wording."""

    CSS_PATH = "qkv.tcss"
    TITLE = "qkv"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "help", priority=True),
        Binding("ctrl+s", "export('all')", "export", priority=True),
        Binding("ctrl+o", "sessions", "sessions", priority=True),
        Binding("ctrl+n", "new_session", "new", priority=True),
        Binding("ctrl+l", "choose_llm", "LLM", priority=True),
        Binding("ctrl+t", "trace", "trace", priority=True),
        Binding("escape", "cancel", "cancel"),
        Binding("f2", "tab('report')", "report", show=False),
        Binding("f3", "tab('memory')", "memory", show=False),
        Binding("f4", "tab('tokenizer')", "tokenizer", show=False),
        Binding("f5", "tab('training')", "training", show=False),
        Binding("f6", "tab('tools')", "tools", show=False),
        Binding("ctrl+q", "quit", "quit", priority=True),
    ]
    KEYS_HELP: ClassVar[list[tuple[str, str]]] = [
        ("Enter", "send the chat line"), ("F1", "this help"), ("Ctrl+S", "export the report: Markdown, JSON, HTML"),
        ("Ctrl+O", "list and resume sessions"), ("Ctrl+N", "new session"),
        ("Ctrl+L", "choose the LLM backend and model"), ("Ctrl+T", "trace the recommended training step (job)"),
        ("Esc", "cancel the running design or job"), ("F2 … F6", "report · memory · tokenizer · training · tools"),
        ("Ctrl+Q", "quit (the session is saved; `qkv chat --resume` brings it back)"),
    ]

    def __init__(self, *, llm: str = "none", model: str | None = None, thread_id: str | None = None,
                 db_path: Path | None = None, runs_dir: Path | None = None, follow: Path | None = None,
                 task: str | None = None, gpu: str | None = None, gpus: int | None = None,
                 base_model: str | None = None, corpus: list[str] | None = None, timings: bool = True) -> None:
        super().__init__()
        self.voice = Voice(VoiceConfig(llm=llm, model=model))
        self.store = SessionStore(db_path)
        self.cfg = driver.DriverConfig(llm=llm, model=model, db_path=self.store.path, gpu=gpu, gpus=gpus,
                                       base_model=base_model, corpus=corpus or [])
        self.runs_dir = Path(runs_dir) if runs_dir else Path("runs")
        self.resume_id = thread_id
        self.thread_id = thread_id or new_thread_id()
        self.follow_path = follow
        self.initial_task = task
        self.timings = timings
        self.report: Any = None  # DesignReport
        self.report_dict: dict | None = None
        self.awaiting: str | None = None  # the graph's open question
        self._last_question: str | None = None
        self._pending_task: str | None = None
        self.job_name: str | None = None
        self._job_started = 0.0
        self.exports: list[Path] = []
        self.tabs: RightTabs | None = None
        self._tab_calls: list[Callable[[RightTabs], Any]] = []

    # -- layout ----------------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="qkv")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield ChatView(id="chat")
                yield Static("", id="jobbar", markup=False)
                yield Input(placeholder="describe a task, ask about the report, or /help", id="chat-input")
            with Vertical(id="right"):
                yield StepTracker(timings=self.timings, id="steps")
                yield Lazy(RightTabs(timings=self.timings, on_ready=self._tabs_ready, id="right-tabs"))
        yield Footer()

    def on_mount(self) -> None:
        self._set_subtitle()
        self.query_one("#jobbar", Static).display = False
        self.set_interval(0.5, self._tick_jobbar)
        if self.resume_id and self.store.get(self.resume_id):
            self._restore(self.resume_id)
        else:
            self.chat.add("assistant", GREETING)
        if self.follow_path:
            self.on_tabs(lambda t: t.follow(Path(self.follow_path)))
        self.query_one("#chat-input", Input).focus()
        if self.initial_task:
            self.submit(self.initial_task)

    def _tabs_ready(self) -> None:
        self.tabs = self.query_one(RightTabs)
        queued, self._tab_calls = self._tab_calls, []
        for fn in queued:
            fn(self.tabs)

    def on_tabs(self, fn: Callable[[RightTabs], Any]) -> None:
        """Call fn(tabs) now, or as soon as the lazily mounted tabs exist."""
        if self.tabs is not None:
            fn(self.tabs)
        else:
            self._tab_calls.append(fn)

    @property
    def chat(self) -> ChatView:
        return self.query_one("#chat", ChatView)

    @property
    def steps(self) -> StepTracker:
        return self.query_one("#steps", StepTracker)

    def _set_subtitle(self) -> None:
        self.sub_title = f"{self.voice.config.describe()} · session {self.thread_id}"

    # -- chat ------------------------------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "chat-input":
            return
        event.input.value = ""
        self.submit(event.value)

    def submit(self, text: str) -> None:
        """Route one chat line (also the pilot tests' entry point)."""
        intent = classify(text, has_report=self.report is not None, awaiting_answer=self.awaiting is not None)
        if intent.kind in ("empty", "too_long", "nonsense", "no_report"):
            if intent.kind != "empty":
                shown = text if len(text) <= 300 else text[:300] + f"… [{len(text):,} characters]"
                self.chat.add("user", shown)
            self.reply(help_for(intent, has_report=self.report is not None), save=intent.kind != "empty")
            return
        self._say("user", intent.text)
        if intent.kind == "command":
            self.run_command(intent)
        elif self._busy("design") and intent.kind in ("task", "change", "answer"):
            self.reply("A design is running; wait for it or press Esc to cancel it, then try again.")
        elif intent.kind == "task":
            self.start_design(intent.text)
        elif intent.kind == "answer":
            self.answer_question(intent.text)
        elif intent.kind == "change":
            self.revise_design(intent.text)
        else:
            self.answer_about_report(intent.text)

    def _say(self, role: str, text: str) -> ChatMessage:
        self.store.ensure(self.thread_id, title=text if role == "user" else "new session", llm=self.voice.config.llm)
        self.store.add_message(self.thread_id, role, text)  # type: ignore[arg-type]
        return self.chat.add(role, text)

    def reply(self, text: str, *, save: bool = True) -> ChatMessage:
        if save:
            return self._say("assistant", text)
        return self.chat.add("assistant", text)

    def _busy(self, group: str) -> bool:
        return any(w.group == group and w.is_running for w in self.workers)

    # -- commands --------------------------------------------------------------------------------------
    def run_command(self, intent: Intent) -> None:
        cmd, arg = intent.command, intent.arg
        if cmd == "/help":
            self.reply("Commands:\n" + commands_help() + "\nF1 shows the keys.")
        elif cmd == "/new":
            self.action_new_session()
        elif cmd == "/sessions":
            self.action_sessions()
        elif cmd == "/export":
            self.action_export(arg or "all")
        elif cmd == "/trace":
            self.action_trace()
        elif cmd == "/train":
            self.start_training(Path(arg) if arg else None)
        elif cmd == "/follow":
            if not arg:
                self.reply("/follow needs a run folder (or a metrics.jsonl path): /follow runs/my-run")
                return
            target = Path(arg).expanduser()
            self.on_tabs(lambda t: t.follow(target))
            self.action_tab("training")
            self.reply(f"Following {target}; the loss curve updates once a second.")
        elif cmd == "/cancel":
            self.action_cancel()
        elif cmd == "/llm":
            self._set_llm(VoiceConfig(llm=arg or "none"))
        elif cmd == "/report":
            self.action_tab("report")
        else:
            self.reply(f"Unknown command {cmd}. Commands:\n" + commands_help())

    # -- design runs (worker threads) ----------------------------------------------------------------------
    def start_design(self, task: str) -> None:
        self.store.update(self.thread_id, title=task[:120])
        self._pending_task = task  # recorded once the graph has a checkpoint (its first event)
        self.steps.reset()
        self.reply("Designing… the steps on the right show each tool as it runs (Esc cancels).")
        self._run_graph("start", task)

    def answer_question(self, text: str) -> None:
        self.awaiting = None
        self.store.update(self.thread_id, pending_question=None)
        self._run_graph("answer", text)

    def revise_design(self, text: str) -> None:
        self.reply("Re-running only the steps this change affects…")
        if self.report is not None:
            self.steps.reset()
            self.steps.mark_all("kept")  # steps not re-run keep their previous results
        self._run_graph("revise", text)

    @work(thread=True, exclusive=True, group="design")
    def _run_graph(self, kind: str, text: str) -> None:
        worker = get_current_worker()
        before = self.report_dict
        ran: list[str] = []
        report = None
        try:
            if kind == "start":
                events = driver.start(text, self.thread_id, self.cfg)
            elif kind in ("answer", "resume"):
                events = driver.answer(self.thread_id, text if kind == "answer" else None, self.cfg)
            else:
                events = driver.revise(self.thread_id, text, self.cfg)
            for event in events:
                if worker.is_cancelled:
                    break
                if event.status in ("running", "done", "looped") and event.step not in ran:
                    ran.append(event.step)
                self.call_from_thread(self._apply_event, event)
                if event.report is not None:
                    report = event.report
        except Exception as exc:  # QkvError says what to fix; anything else is reported, never a crash
            from qkv.tools.errors import QkvError

            msg = str(exc) if isinstance(exc, QkvError) else f"{type(exc).__name__}: {exc}"
            question_like = text.rstrip().endswith("?") or QUESTION_START.search(text)
            if kind == "revise" and isinstance(exc, QkvError) and "no change found" in msg and before \
                    and question_like:
                # "what about the sampling?" reads like a change but names none: answer it as a question.
                self.call_from_thread(self.answer_about_report, text)
                return
            self.call_from_thread(self._design_failed, msg, kind)
            return
        if worker.is_cancelled:
            self.call_from_thread(self._design_cancelled)
            return
        if report is not None:
            self.call_from_thread(self._design_finished, kind, report, before, ran)

    def _apply_event(self, event: Any) -> None:
        if self._pending_task:
            self.store.update(self.thread_id, task=self._pending_task)
            self._pending_task = None
        tools = [(c.tool, c.seconds) for c in event.tool_calls]
        for c in event.tool_calls:
            self.on_tabs(lambda t, c=c: t.log_call(event.step, c.tool, c.seconds, c.summary))
        if event.status == "interrupt":
            self.steps.mark(event.step, "interrupt", tools)
            self.awaiting = self._last_question = event.question or "Please answer the question above."
            self.store.update(self.thread_id, pending_question=self.awaiting)
            self.reply(self.awaiting + "\n(answer in the chat; the design resumes from here)")
        elif event.status == "error":
            self.steps.mark(event.step, "error", tools)
            self.reply(f"The {event.step} step failed: {event.error}")
        elif event.report is None or event.status != "done" or event.step != "report":
            self.steps.mark(event.step, event.status, tools)
        else:
            self.steps.mark(event.step, "done", tools)

    def _design_failed(self, message: str, kind: str = "start") -> None:
        self.steps.cancel_running()
        if kind == "answer" and self._last_question:
            # The graph is still waiting at its question: ask again rather than leave it hanging.
            self.awaiting = self._last_question
            self.store.update(self.thread_id, pending_question=self.awaiting)
            self.reply(f"That answer did not work: {message}\n{self.awaiting}")
            return
        if kind == "revise":
            self.reply(f"I could not apply that change: {message}\nThe current report is unchanged.")
            self.steps.mark_all("done")
            return
        self.reply(f"I could not finish that design: {message}\nRephrase the request or change the setting "
                   "named above; the conversation is kept.")

    def _design_cancelled(self) -> None:
        self.steps.cancel_running()
        self.reply("Cancelled. The previous report (if any) is unchanged.")

    def _design_finished(self, kind: str, report: Any, before: dict | None, ran: list[str]) -> None:
        self._set_report(report)
        self.steps.finish()
        after = self.report_dict or {}
        if kind == "revise" and before is not None:
            changes = diff_reports(before, after)
            sections = changed_sections(changes)
            lines = "\n".join(summarize_changes(changes))
            text = (f"Re-ran: {', '.join(ran) or 'nothing'}.\n"
                    + (f"What changed ({', '.join(sections)}):\n{lines}\n" if changes
                       else "The report did not change.\n") + "\n" + summary_text(after))
        else:
            text = summary_text(after)
        self.stream_reply(text)

    def _set_report(self, report: Any) -> None:
        self.report = report
        self.report_dict = json.loads(report.model_dump_json())
        self.store.update(self.thread_id, report_json=report.model_dump_json())
        self._render_report()

    def _render_report(self) -> None:
        assert self.report is not None and self.report_dict is not None
        try:
            md = self.report.to_markdown()
        except Exception as exc:  # the renderer is the agent's; show the JSON rather than nothing
            md = f"*Markdown renderer unavailable ({exc}).*\n\n```json\n{json.dumps(self.report_dict, indent=1)}\n```"
        report = self.report_dict
        self.on_tabs(lambda t: t.show_report(md, report))

    # -- questions about the report ---------------------------------------------------------------------
    def answer_about_report(self, question: str) -> None:
        assert self.report_dict is not None
        template, facts = answer_from_report(self.report_dict, question)
        self._stream_answer(question, facts, template)

    @work(thread=True, group="answer")
    def _stream_answer(self, question: str, facts: list, template: str) -> None:
        msg = self.call_from_thread(self.chat.add, "assistant", "")
        worker = get_current_worker()
        # Tokens arrive faster than a terminal needs repainting: hand them to the UI at most every 50 ms
        # (call_from_thread waits for the UI, so one call per token would pace the model to the screen).
        buffer, last = "", 0.0
        for piece in self.voice.stream_answer(question, facts, template):
            if worker.is_cancelled:
                break
            buffer += piece
            if time.monotonic() - last >= 0.05:
                self.call_from_thread(msg.append, buffer)
                buffer, last = "", time.monotonic()
        if buffer:
            self.call_from_thread(msg.append, buffer)
        self.call_from_thread(self._finish_stream, msg)

    def stream_reply(self, text: str) -> None:
        self._stream_text(text)

    @work(thread=True, group="answer")
    def _stream_text(self, text: str) -> None:
        msg = self.call_from_thread(self.chat.add, "assistant", "")
        for piece in self.voice.phrase_summary(text):
            self.call_from_thread(msg.append, piece)
        self.call_from_thread(self._finish_stream, msg)

    def _finish_stream(self, msg: ChatMessage) -> None:
        self.store.ensure(self.thread_id, title="new session", llm=self.voice.config.llm)
        self.store.add_message(self.thread_id, "assistant", msg.text)
        self.chat.scroll_end(animate=False)

    # -- jobs: trace and training (child processes) ----------------------------------------------------------
    def action_trace(self) -> None:
        if self.report_dict is None:
            self.reply("Nothing to trace yet: design something first, then Ctrl+T traces its training step.")
            return
        if self._busy("job"):
            self.reply(f"A {self.job_name} job is running; Esc cancels it.")
            return
        try:
            req = memory_request(self.report_dict)
        except Exception as exc:
            self.reply(f"Cannot trace this design: {exc}")
            return
        self.reply(f"Tracing one {req['method']} step of {req['model']} (micro-batch {req['batch']}, seq "
                   f"{req['seq']}) on fake tensors in a child process; Esc cancels.")
        self._run_trace(json.dumps(req))

    @work(thread=True, exclusive=True, group="job")
    def _run_trace(self, request_json: str) -> None:
        from qkv.tui.jobs import run_job, trace_argv

        worker = get_current_worker()
        self.call_from_thread(self._job_started_ui, "trace")
        result = run_job("trace", trace_argv(request_json), is_cancelled=lambda: worker.is_cancelled,
                         on_line=lambda line: self.call_from_thread(self._job_line, line))
        self.call_from_thread(self._trace_done, result)

    def _trace_done(self, result: Any) -> None:
        self._job_finished_ui()
        status = "cancelled" if result.cancelled else f"exit {result.returncode}"
        self.on_tabs(lambda t: t.log_call("job", "trace (compare_trace)", result.seconds, status))
        if result.cancelled:
            self.reply("Trace cancelled (the child process was stopped).")
            return
        if result.returncode != 0:
            self.reply("The trace failed:\n" + result.stderr_tail[-600:])
            return
        data = json.loads(result.stdout)
        gib = 1024**3
        traced = data["traced"]["peak_bytes"] / gib
        analytic = data["analytic"]["estimate"]["allocated_bytes"] / gib
        rows = "\n".join(f"• {r['category']}: analytic {r['analytic_bytes'] / gib:.2f} GiB, traced "
                         f"{r['traced_bytes'] / gib:.2f} GiB" for r in data["rows"] if r["traced_bytes"] or
                         r["analytic_bytes"])
        self.reply(f"Traced peak of live tensors: {traced:.2f} GiB (traced) vs {analytic:.2f} GiB (analytic), "
                   f"relative error {data['relative_error']:+.1%}.\n{rows}")

    def start_training(self, config: Path | None) -> None:
        if self._busy("job"):
            self.reply(f"A {self.job_name} job is running; Esc cancels it.")
            return
        run_dir = self.runs_dir / self.thread_id / "train"
        if config is None:
            if self.report_dict is None or not self.report_dict.get("training_config"):
                self.reply("No training config yet: design something first, or give one: /train path/to/config.yaml")
                return
            tc = self.report_dict["training_config"]
            if tc.get("available") is False:
                self.reply("This report has no runnable training config (see its training section).")
                return
            run_dir.mkdir(parents=True, exist_ok=True)
            config = run_dir / "config.yaml"
            if isinstance(tc.get("yaml"), str):
                text = tc["yaml"]  # the agent's commented YAML, as `qkv design` writes it
            else:
                import yaml

                text = yaml.safe_dump(tc.get("config", tc), sort_keys=False)
            _atomic_write(config, text)
        self.on_tabs(lambda t: t.follow(run_dir))
        self.action_tab("training")
        self.reply(f"Training with {config} in a child process; the loss curve follows {run_dir}/metrics.jsonl. "
                   "Esc cancels (the trainer checkpoints on exit).")
        self._run_training(str(config), str(run_dir))

    @work(thread=True, exclusive=True, group="job")
    def _run_training(self, config: str, run_dir: str) -> None:
        from qkv.tui.jobs import run_job, train_argv

        worker = get_current_worker()
        self.call_from_thread(self._job_started_ui, "training")
        result = run_job("train", train_argv(Path(config), Path(run_dir)), is_cancelled=lambda: worker.is_cancelled,
                         on_line=lambda line: self.call_from_thread(self._job_line, line))
        self.call_from_thread(self._train_done, result)

    def _train_done(self, result: Any) -> None:
        self._job_finished_ui()
        status = "cancelled" if result.cancelled else f"exit {result.returncode}"
        self.on_tabs(lambda t: t.log_call("job", "train", result.seconds, status))
        if result.cancelled:
            self.reply("Training cancelled.")
        elif result.returncode != 0:
            self.reply("Training failed:\n" + result.stderr_tail[-600:])
        else:
            self.reply("Training finished; the curve shows the measured loss.\n" + result.stdout[-600:])

    def _job_started_ui(self, name: str) -> None:
        self.job_name = name
        self._job_started = time.monotonic()
        bar = self.query_one("#jobbar", Static)
        bar.display = True
        self._tick_jobbar()

    def _job_line(self, line: str) -> None:
        if line.strip():
            self._job_last = line.strip()[-120:]

    def _tick_jobbar(self) -> None:
        if not self.job_name:
            return
        elapsed = time.monotonic() - self._job_started
        last = getattr(self, "_job_last", "")
        self.query_one("#jobbar", Static).update(f"⏳ {self.job_name} {elapsed:4.0f} s  — Esc cancels   {last}")

    def _job_finished_ui(self) -> None:
        self.job_name = None
        self._job_last = ""
        self.query_one("#jobbar", Static).display = False

    # -- actions -------------------------------------------------------------------------------------------
    def action_cancel(self) -> None:
        running = [w for w in self.workers if w.is_running and w.group in ("design", "job", "answer")]
        for w in running:
            w.cancel()
        if running:
            self.notify(f"cancelling {', '.join(sorted({w.group for w in running}))}…")
            if any(w.group == "design" for w in running):
                self.steps.cancel_running()

    def action_help(self) -> None:
        from qkv.tui.screens.help import HelpScreen

        self.push_screen(HelpScreen(self.KEYS_HELP))

    def action_tab(self, name: str) -> None:
        self.on_tabs(lambda t: t.activate(name))

    def action_export(self, fmt: str = "all") -> None:
        if self.report is None:
            self.reply("Nothing to export yet: design something first.")
            return
        fmts = ("md", "json", "html") if fmt == "all" else (fmt,)
        bad = [f for f in fmts if f not in ("md", "json", "html")]
        if bad:
            self.reply(f"Unknown export format {bad[0]!r}; expected md, json, html or all.")
            return
        out = self.runs_dir / self.thread_id
        written = []
        for f in fmts:
            path = out / f"report.{f}"
            try:
                _atomic_write(path, export_text(self.report, f))
            except Exception as exc:
                self.reply(f"Could not write {path}: {exc}")
                return
            written.append(path)
        self.exports = written
        self.reply("Exported: " + ", ".join(str(p) for p in written))
        self.notify("exported " + ", ".join(p.name for p in written))

    def action_sessions(self) -> None:
        from qkv.tui.screens.sessions import SessionsScreen

        def chosen(thread_id: str | None) -> None:
            if thread_id and thread_id != self.thread_id:
                self._switch_to(thread_id)

        self.push_screen(SessionsScreen(self.store.list(), self.thread_id), chosen)

    def action_new_session(self) -> None:
        self._switch_to(None)

    def action_choose_llm(self) -> None:
        from qkv.tui.screens.llm import LLMScreen

        def chosen(cfg: VoiceConfig | None) -> None:
            if cfg is not None:
                self._set_llm(cfg)

        self.push_screen(LLMScreen(self.voice.config), chosen)

    def _set_llm(self, cfg: VoiceConfig) -> None:
        if cfg.kind not in ("none", "local", "openai"):
            self.reply(f"Unknown LLM {cfg.llm!r}; expected none, local, or an http(s):// URL.")
            return
        self.voice.close()
        self.voice = Voice(cfg)
        self.cfg = self.cfg.model_copy(update={"llm": cfg.llm, "model": cfg.model})
        self._set_subtitle()
        self.reply(f"{cfg.describe()}. Numbers and decisions do not depend on this; only the wording does.")

    def _switch_to(self, thread_id: str | None) -> None:
        for w in self.workers:
            if w.group in ("design", "answer"):
                w.cancel()
        self.chat.remove_children()
        self.report = self.report_dict = None
        self.awaiting = None
        self.steps.reset()
        self.on_tabs(lambda t: t.clear_report())
        if thread_id:
            self._restore(thread_id)
        else:
            self.thread_id = new_thread_id()
            self.chat.add("assistant", GREETING)
        self._set_subtitle()

    def _restore(self, thread_id: str) -> None:
        """Bring a saved session back: its transcript, its report, its open question."""
        self.thread_id = thread_id
        info = self.store.get(thread_id)
        for rec in self.store.messages(thread_id):
            self.chat.add(rec.role, rec.text)
        raw = self.store.report_json(thread_id)
        if raw:
            try:
                self.report = driver.report_from_json(raw)
                self.report_dict = json.loads(raw)
                self._render_report()
                self.steps.mark_all("done")
            except Exception as exc:
                self.chat.add("system", f"(the saved report could not be read: {exc})")
        if info and info.pending_question:
            self.awaiting = self._last_question = info.pending_question
        self.chat.add("system", f"resumed session {thread_id} ({info.messages if info else 0} messages)")
        self._set_subtitle()
        if info and info.task and not raw and not info.pending_question:
            # The process died mid-design: continue from the graph's last SQLite checkpoint.
            self.reply("This session's design did not finish; continuing from its last checkpoint…")
            self._run_graph("resume", "")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # A worker that raised is reported in the chat; the app keeps running.
        if event.state.name == "ERROR" and event.worker.error is not None:
            self.reply(f"Internal error in {event.worker.group}: {event.worker.error}")


# -- helpers (pure) ---------------------------------------------------------------------------------------
def summary_text(r: dict) -> str:
    """The reply after a design: the decisions with their numbers, quoted from the report."""
    arch, eff, inf = r.get("architecture", {}), r.get("efficiency", {}), r.get("inference", {})
    obj = r.get("objective", {})
    lines = [f"Base model: {arch.get('base_model')} ({arch.get('params', 0) / 1e9:.2f}B parameters, "
             f"context window {arch.get('context_window')}, action: {arch.get('context_action')})."]
    if eff:
        verdict = "fits" if eff.get("fits") else "does NOT fit"
        lines.append(f"Training: {eff.get('strategy')} — peak {eff.get('peak_vram_gib')} GiB per GPU on "
                     f"{eff.get('gpus')}× {eff.get('gpu')} (usable {eff.get('usable_gib')} GiB): {verdict}.")
    if obj:
        lines.append(f"Objective: {obj.get('kind')} with a {obj.get('architecture')} model; metrics: "
                     f"{', '.join(obj.get('metrics') or [])}.")
    if inf:
        lines.append(f"Inference: {inf.get('quantization')} weights, KV cache {inf.get('kv_cache_gib')} GiB, "
                     f"{inf.get('attention_kernel')}; sampling: {inf.get('sampling_policy')}.")
    checks = r.get("checks") or []
    if checks:
        lines.append("Checks: " + "; ".join(f"{c.get('rule')}: {c.get('status')}" for c in checks) + ".")
    lines.append("The full report is in the Report tab (F2); ask about any number, or change the task.")
    return "\n".join(lines)


def memory_request(r: dict) -> dict:
    """The training step the report recommends, as a MemoryRequest payload for the tracer."""
    arch, eff = r["architecture"], r["efficiency"]
    method = eff.get("method") if eff.get("method") in ("full", "lora", "qlora") else "inference"
    req = {"model": arch["base_model"], "method": method, "batch": eff.get("micro_batch") or 1,
           "seq": arch.get("train_seq") or 2048, "grad_checkpointing": bool(eff.get("grad_checkpointing")),
           "gpus": eff.get("gpus") or 1, "gpu": eff.get("gpu")}
    hp = eff.get("hyperparameters") or {}
    if method in ("lora", "qlora") and isinstance(hp.get("lora_r"), int):
        req["lora_r"] = hp["lora_r"]
    if eff.get("sharding") and eff["sharding"] != "none":
        req["sharding"] = eff["sharding"]
    return req


def export_text(report: Any, fmt: str) -> str:
    if fmt == "md":
        return report.to_markdown()
    if fmt == "html":
        return report.to_html()
    return report.model_dump_json(indent=2) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_app(*, llm: str = "local", model: str | None = None, resume: str | None = None,
            db_path: Path | None = None, runs_dir: Path | None = None, follow: Path | None = None,
            task: str | None = None, gpu: str | None = None, gpus: int | None = None,
            base_model: str | None = None, corpus: list[str] | None = None) -> None:
    """Open the TUI. `resume`: a thread id, or "latest" for the most recent session."""
    if VoiceConfig(llm=llm).kind not in ("none", "local", "openai"):
        from qkv.tools.errors import BadInput

        raise BadInput(f"--llm {llm!r}", expected="none, local, or an http(s):// URL of an OpenAI-compatible server")
    store_path = db_path
    thread_id = None
    if resume:
        store = SessionStore(store_path)
        info = store.latest() if resume == "latest" else store.get(resume)
        if info is None:
            from qkv.tools.errors import BadInput, closest

            names = [s.thread_id for s in store.list()]
            raise BadInput(f"no saved session '{resume}'", expected="a thread id from `qkv chat --list`",
                           choices=closest(resume, names) if names else [])
        thread_id = info.thread_id
    QkvApp(llm=llm, model=model, thread_id=thread_id, db_path=store_path, runs_dir=runs_dir, follow=follow,
           task=task, gpu=gpu, gpus=gpus, base_model=base_model, corpus=corpus).run()
