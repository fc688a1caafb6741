"""The app's design work: starting, answering and revising a design in a worker thread (the graph's
StepEvents drive the tracker and the tool log), rendering the report into the tabs, and answering questions
about the report from its facts, streamed. A mixin of QkvApp."""

from __future__ import annotations

import time
from typing import Any

from textual import work
from textual.worker import get_current_worker

from qkv.tui import driver
from qkv.tui.facts import answer_from_report, changed_sections, diff_reports, summarize_changes
from qkv.tui.intents import QUESTION_START
from qkv.tui.summary import in_app_words, summary_text
from qkv.tui.widgets.chat import ChatMessage


class DesignMixin:
    """Design runs and report questions; the app provides chat, steps, store, voice, cfg and reply()."""

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
        before = self.report_json()
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

            msg = in_app_words(exc) if isinstance(exc, QkvError) else f"{type(exc).__name__}: {exc}"
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
            self.log_tool(event.step, c.tool, c.seconds, c.summary)
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
        self.save_steps()
        after = self.report_json() or {}
        if kind == "revise" and before is not None:
            changes = diff_reports(before, after)
            sections = changed_sections(changes)
            lines = "\n".join(summarize_changes(changes))
            text = (f"Re-ran: {', '.join(ran) or 'nothing'}.\n"
                    + (f"What changed ({', '.join(sections)}):\n{lines}\n" if changes
                       else "The report did not change.\n") + "\n" + summary_text(report))
        else:
            text = summary_text(report)
        self.stream_reply(text)

    def report_json(self) -> dict | None:
        """The report as JSON data: questions are answered from its facts and a revision's changes are found
        by its dotted paths, both defined on the JSON contract (`qkv design --json`)."""
        return None if self.report is None else self.report.model_dump(mode="json")

    def _set_report(self, report: Any) -> None:
        self.report = report
        self.store.update(self.thread_id, report_json=report.model_dump_json())
        self._render_report()

    def _render_report(self) -> None:
        report = self.report
        assert report is not None
        md = report.to_markdown()
        self.on_tabs(lambda t: t.show_report(md, report))

    # -- questions about the report ---------------------------------------------------------------------
    def answer_about_report(self, question: str) -> None:
        assert self.report is not None
        template, facts = answer_from_report(self.report, question)
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
