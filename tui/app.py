"""The qkv TUI: a chat on the left (requests, follow-ups, questions; replies stream in), the graph's steps
and tabs on the right (report, memory, tokenizer audit, training, tool log).

Nothing slow runs on the UI thread: designs, answers and LLM wording run in thread workers, tracing and
training run as child processes (really cancellable with Esc). Every message is saved to SQLite as it
completes, so `qkv chat --resume` after a crash shows the conversation and the report where they were."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.lazy import Lazy
from textual.widgets import Footer, Header, Input, Static
from textual.worker import Worker

from qkv.tui import driver
from qkv.tui.app_design import DesignMixin
from qkv.tui.app_jobs import JobsMixin
from qkv.tui.app_session import SessionMixin
from qkv.tui.intents import EXAMPLES, Intent, classify, commands_help, help_for
from qkv.tui.sessions import SessionStore, new_thread_id
from qkv.tui.voice import Voice, VoiceConfig
from qkv.tui.widgets.chat import ChatMessage, ChatView
from qkv.tui.widgets.chat_input import ChatInput
from qkv.tui.widgets.steps import DEFAULT_STEPS, StepTracker
from qkv.tui.widgets.tabs import RightTabs

if TYPE_CHECKING:
    from qkv.agent.graph.schemas import DesignReport

GREETING = ("Hello — I'm qkv. Describe what you want to build and on what hardware, e.g.\n"
            f"“{EXAMPLES[0]}”.\nI'll walk the {len(DEFAULT_STEPS)} steps on the right with real tools and write a "
            "report whose every number is computed, traced or measured. F1 lists the keys; Ctrl+P finds any action.")
COMPACT_BELOW = 34  # terminal rows under which the step tracker collapses to wrapped icon runs
NARROW_BELOW = 100  # terminal columns under which the tabs take their short labels


class QkvApp(DesignMixin, JobsMixin, SessionMixin, App[None]):
    """`QkvApp(llm="none")` for the deterministic templates, `llm="local"` for the bundled model's wording."""

    CSS_PATH = "qkv.tcss"
    TITLE = "qkv"
    # The footer shows the first group at 80 columns; the rest are in F1 and the palette (Ctrl+P), and the
    # tab keys are on the tab labels.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "keys", priority=True),
        Binding("ctrl+s", "export('all')", "export", priority=True),
        Binding("ctrl+o", "sessions", "sessions", priority=True),
        Binding("ctrl+n", "new_session", "new", priority=True),
        Binding("ctrl+t", "trace", "trace", priority=True),
        Binding("escape", "cancel", "cancel"),
        Binding("ctrl+q", "quit", "quit", priority=True),
        Binding("ctrl+l", "choose_llm", "LLM", show=False, priority=True),
        Binding("ctrl+y", "copy_reply", "copy reply", show=False, priority=True),
        Binding("ctrl+r", "copy_report", "copy report", show=False, priority=True),
        Binding("f7", "focus_chat", "chat history", show=False, priority=True),
        Binding("f2", "tab('report')", "report", show=False),
        Binding("f3", "tab('memory')", "memory", show=False),
        Binding("f4", "tab('tokenizer')", "tokenizer", show=False),
        Binding("f5", "tab('training')", "training", show=False),
        Binding("f6", "tab('tools')", "tools", show=False),
    ]
    KEYS_HELP: ClassVar[list[tuple[str, str]]] = [
        ("Enter", "send the chat line"), ("Up / Down", "this session's earlier lines (in the input)"),
        ("Tab / Shift+Tab", "move focus: input, chat history, tabs, tab contents (the focused pane is marked)"),
        ("↑ ↓ PgUp PgDn Home End", "scroll the focused pane; typing anywhere goes to the input"),
        ("F1", "this help"), ("Ctrl+P", "command palette: every action by name"),
        ("Ctrl+S", "export the report: Markdown, JSON, HTML (absolute paths in the reply)"),
        ("Ctrl+O", "list and resume sessions"), ("Ctrl+N", "new session"),
        ("Ctrl+L", "choose the LLM backend and model"), ("Ctrl+T", "trace the recommended training step (job)"),
        ("Ctrl+Y / Ctrl+R", "copy the last reply / the report to the clipboard (OSC 52)"),
        ("F7", "focus the chat history"),
        ("Esc", "cancel the running design or job"), ("F2 … F6", "report · memory · tokenizer · training · tools"),
        ("Ctrl+Q", "quit (the session is saved; the resume command is printed)"),
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
        self.report: DesignReport | None = None  # the typed report every tab reads
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
                yield ChatInput(placeholder="describe a task, ask about the report, or /help", id="chat-input")
            with Vertical(id="right"):
                yield StepTracker(timings=self.timings, id="steps")
                yield Lazy(RightTabs(timings=self.timings, on_ready=self._tabs_ready, id="right-tabs"))
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._set_subtitle()
        self.query_one("#jobbar", Static).display = False
        self.set_interval(0.5, self._tick_jobbar)
        if self.resume_id and self.store.get(self.resume_id):
            self._restore(self.resume_id)
        else:
            self.chat.add("assistant", self.greeting)
        self._fit()
        if self.follow_path:
            self.on_tabs(lambda t: t.follow(Path(self.follow_path)))
        self.chat_input.focus()
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

    greeting = GREETING

    @property
    def chat(self) -> ChatView:
        return self.query_one("#chat", ChatView)

    @property
    def chat_input(self) -> ChatInput:
        return self.query_one("#chat-input", ChatInput)

    def on_resize(self, event: events.Resize) -> None:
        self._fit()

    def _fit(self) -> None:
        """Short terminals: the tracker collapses to wrapped runs so no step is hidden; narrow ones get the
        short tab labels so all five stay visible."""
        rows, cols = self.size.height, self.size.width
        self.steps.set_compact(rows < COMPACT_BELOW)
        self.set_class(rows < COMPACT_BELOW, "-short")
        self.on_tabs(lambda t: t.set_narrow(cols < NARROW_BELOW))

    def on_key(self, event: events.Key) -> None:
        """Typing while a pane has focus goes to the input instead of being dropped."""
        if len(self.screen_stack) > 1 or not event.is_printable or not event.character:
            return
        box = self.chat_input
        if self.focused is not box:
            box.focus()
            box.insert_text_at_cursor(event.character)
            event.stop()
            event.prevent_default()

    def action_focus_chat(self) -> None:
        self.chat.focus()

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
        if event.value.strip():
            self.chat_input.remember(event.value)
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

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # A worker that raised is reported in the chat; the app keeps running.
        if event.state.name == "ERROR" and event.worker.error is not None:
            self.reply(f"Internal error in {event.worker.group}: {event.worker.error}")


def run_app(*, llm: str = "local", model: str | None = None, resume: str | None = None,
            db_path: Path | None = None, runs_dir: Path | None = None, follow: Path | None = None,
            task: str | None = None, gpu: str | None = None, gpus: int | None = None,
            base_model: str | None = None, corpus: list[str] | None = None) -> None:
    """Open the TUI. `resume`: a thread id, or "latest" for the most recent session."""
    from qkv.tools.llm.setting import llm_kind

    llm_kind(llm)  # BadInput naming the valid forms
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
    app = QkvApp(llm=llm, model=model, thread_id=thread_id, db_path=store_path, runs_dir=runs_dir, follow=follow,
                 task=task, gpu=gpu, gpus=gpus, base_model=base_model, corpus=corpus)
    app.run()
    hint = app.resume_hint()
    if hint:
        print(f"Session saved. Resume it with:  {hint}")
