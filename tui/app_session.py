"""The app's per-session state and its housekeeping actions: new / resume / switch (every tab, the tracker,
the tool log and the input history follow the session), export, copy, sessions and LLM screens, and the
command palette's entries. A mixin of QkvApp."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import SystemCommand
from textual.screen import Screen

from qkv.tools.atomic import write_text
from qkv.tui import driver
from qkv.tui.sessions import new_thread_id
from qkv.tui.summary import export_text
from qkv.tui.voice import Voice, VoiceConfig
from qkv.tui.widgets.tabs import TAB_LABELS


class SessionMixin:
    """Session switching, export/copy, and the palette; the app provides chat, steps, store and reply()."""

    # -- the command palette (Ctrl+P) -------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Export report (Markdown, JSON, HTML)", "write runs/<session>/report.* (Ctrl+S)",
                            lambda: self.action_export("all"))
        for fmt, name in (("md", "Markdown"), ("json", "JSON"), ("html", "HTML")):
            yield SystemCommand(f"Export report as {name}", f"write runs/<session>/report.{fmt}",
                                lambda fmt=fmt: self.action_export(fmt), discover=False)
        yield SystemCommand("Trace the training step", "fake-tensor trace of the recommended step (Ctrl+T)",
                            self.action_trace)
        yield SystemCommand("Sessions: list and resume", "saved conversations (Ctrl+O)", self.action_sessions)
        yield SystemCommand("New session", "start a fresh design (Ctrl+N)", self.action_new_session)
        yield SystemCommand("Choose the LLM", "the chat's voice: none, local, or a URL (Ctrl+L)",
                            self.action_choose_llm)
        for tab, label in TAB_LABELS.items():  # "F3 Memory" → "Show the Memory tab", hint "F3"
            key, title = label.split(" ", 1)
            yield SystemCommand(f"Show the {title} tab", key, lambda tab=tab: self.action_tab(tab))
        yield SystemCommand("Copy the last reply", "to the clipboard (Ctrl+Y)", self.action_copy_reply)
        yield SystemCommand("Copy the report (Markdown)", "to the clipboard (Ctrl+R)", self.action_copy_report)
        yield SystemCommand("Focus the chat history", "scroll it with the arrow keys (F7)", self.action_focus_chat)
        yield SystemCommand("Cancel the running design or job", "Esc", self.action_cancel)
        yield SystemCommand("Keys", "every key binding (F1)", self.action_help)
        yield from super().get_system_commands(screen)  # theme, screenshot, quit, …

    # -- export and copy ---------------------------------------------------------------------------------------
    def action_export(self, fmt: str = "all") -> None:
        if self.report is None:
            self.reply("Nothing to export yet: design something first.")
            return
        fmts = ("md", "json", "html") if fmt == "all" else (fmt,)
        bad = [f for f in fmts if f not in ("md", "json", "html")]
        if bad:
            self.reply(f"Unknown export format {bad[0]!r}; expected md, json, html or all.")
            return
        out = (self.runs_dir / self.thread_id).resolve()  # absolute: the launch folder is long forgotten
        written = []
        for f in fmts:
            path = out / f"report.{f}"
            try:
                write_text(path, export_text(self.report, f))
            except Exception as exc:
                self.reply(f"Could not write {path}: {exc}")
                return
            written.append(path)
        self.exports = written
        self.reply("Exported: " + ", ".join(str(p) for p in written))
        self.notify("exported " + ", ".join(p.name for p in written))

    def _copy(self, text: str, what: str) -> None:
        """OSC 52 through the terminal (most terminals; tmux needs `set -g set-clipboard on`)."""
        self.copy_to_clipboard(text)
        self.notify(f"copied {what} ({len(text):,} characters) to the clipboard")

    def action_copy_reply(self) -> None:
        replies = [m for m in self.chat.messages() if m.role == "assistant" and m.text]
        if not replies:
            self.notify("no reply to copy yet", severity="warning")
            return
        self._copy(replies[-1].text, "the last reply")

    def action_copy_report(self) -> None:
        if self.report is None:
            self.notify("no report to copy yet: design something first", severity="warning")
            return
        self._copy(self.report.to_markdown(), "the report (Markdown)")

    # -- screens ---------------------------------------------------------------------------------------------
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
        from qkv.tools.llm.setting import EXPECTED, is_llm_setting

        if not is_llm_setting(cfg.llm):
            self.reply(f"Unknown LLM {cfg.llm!r}; expected {EXPECTED}.")
            return
        self.voice.close()
        self.voice = Voice(cfg)
        self.cfg = self.cfg.model_copy(update={"llm": cfg.llm, "model": cfg.model})
        self._set_subtitle()
        self.reply(f"{cfg.describe()}. Numbers and decisions do not depend on this; only the wording does.")

    # -- sessions ------------------------------------------------------------------------------------------
    def log_tool(self, step: str, tool: str, seconds: float | None, summary: str = "", *,
                 thread_id: str | None = None) -> None:
        """One tool call or job, in the tool log of session `thread_id` (default: the current one), kept with
        that session; shown on screen only while it is the current session (a job may outlive a switch)."""
        tid = thread_id or self.thread_id
        self.store.ensure(tid, title="new session", llm=self.voice.config.llm)
        self.store.add_tool_call(tid, step, tool, seconds, summary)
        if tid == self.thread_id:
            self.on_tabs(lambda t: t.log_call(step, tool, seconds, summary))

    def reply_in(self, thread_id: str, text: str) -> None:
        """A reply for session `thread_id`: shown and saved if it is the current session, otherwise only saved
        to that session's transcript (it appears when the session is resumed)."""
        if thread_id == self.thread_id:
            self.reply(text)
            return
        self.store.ensure(thread_id, title="new session", llm=self.voice.config.llm)
        self.store.add_message(thread_id, "assistant", text)

    def save_steps(self) -> None:
        self.store.update(self.thread_id, steps_json=self.steps.to_json())

    def _switch_to(self, thread_id: str | None) -> None:
        for w in self.workers:
            if w.group in ("design", "answer"):
                w.cancel()
        self.chat.remove_children()
        self.report = None
        self.awaiting = None
        self.steps.reset()
        self.on_tabs(lambda t: t.clear_report())
        self.chat_input.set_history([])
        if thread_id:
            self._restore(thread_id)
        else:
            self.thread_id = new_thread_id()
            self.chat.add("assistant", self.greeting)
        self._set_subtitle()

    def _restore(self, thread_id: str) -> None:
        """Bring a saved session back: transcript, report and every tab, tracker, tool log, open question."""
        self.thread_id = thread_id
        self.store.opened(thread_id)
        info = self.store.get(thread_id)
        for rec in self.store.messages(thread_id):
            self.chat.add(rec.role, rec.text)
        self.chat_input.set_history(self.store.user_lines(thread_id))
        calls = self.store.tool_calls(thread_id)
        self.on_tabs(lambda t: t.load_tool_calls(calls))
        run_dir = self.runs_dir / thread_id / "train"
        if (run_dir / "metrics.jsonl").is_file():
            self.on_tabs(lambda t: t.follow(run_dir.resolve()))
        raw = self.store.report_json(thread_id)
        if raw:
            try:
                self.report = driver.report_from_json(raw)
                self._render_report()
            except Exception as exc:
                self.chat.add("system", f"(the saved report could not be read: {exc})")
        steps = self.store.steps_json(thread_id)
        if steps:
            self.steps.load_json(steps)
        elif raw:
            self.steps.mark_all("done")  # a session saved before the tracker was kept
        if info and info.pending_question:
            self.awaiting = self._last_question = info.pending_question
        self.chat.add("system", f"resumed session {thread_id} ({info.messages if info else 0} messages)")
        self._set_subtitle()
        if info and info.task and not raw and not info.pending_question:
            # The process died mid-design: continue from the graph's last SQLite checkpoint.
            self.reply("This session's design did not finish; continuing from its last checkpoint…")
            self._run_graph("resume", "")

    def resume_hint(self) -> str | None:
        """What to type to come back to this session (printed at quit), or None if nothing was said."""
        info = self.store.get(self.thread_id)
        return f"qkv chat --resume {self.thread_id}" if info and info.messages else None
