"""The right-hand tabs (report, memory, tokenizer, training, tool log), composed lazily: the app's first
screen (chat, steps, key bar) is drawn before Markdown, plotext and DataTable are even imported, which is
most of the time to first screen. The app queues calls until `ready`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical

NO_REPORT = "*No report yet.* Describe a task in the chat to start a design."


def _markdown(text: str):
    """Rich's Markdown in one Static: a long report is one widget to lay out, not hundreds (Textual's
    Markdown widget mounts a widget per block, and every step update would re-arrange them all)."""
    from rich.markdown import Markdown

    return Markdown(text, code_theme="ansi_dark", hyperlinks=False)


class RightTabs(Vertical):
    def __init__(self, *, timings: bool, on_ready: Callable[[], None], id: str | None = None) -> None:
        super().__init__(id=id)
        self.timings = timings
        self._on_ready = on_ready
        self.report_source = ""  # the Markdown text shown (the same text the export writes)

    def compose(self) -> ComposeResult:
        from textual.containers import VerticalScroll
        from textual.widgets import Static, TabbedContent, TabPane

        from qkv.tui.widgets.memory import MemoryPane
        from qkv.tui.widgets.tokenizer import TokenizerPane
        from qkv.tui.widgets.toollog import ToolLog
        from qkv.tui.widgets.training import TrainingPane

        with TabbedContent(initial="report", id="tabs"):
            with TabPane("Report", id="report"), VerticalScroll(id="report-scroll"):
                yield Static(_markdown(NO_REPORT), id="report-md")
            with TabPane("Memory", id="memory"):
                yield MemoryPane(id="memory-pane")
            with TabPane("Tokenizer", id="tokenizer"):
                yield TokenizerPane(id="tok-pane")
            with TabPane("Training", id="training"):
                yield TrainingPane(id="train-pane")
            with TabPane("Tools", id="tools"):
                yield ToolLog(timings=self.timings, id="toollog")

    def on_mount(self) -> None:
        self.call_after_refresh(self._on_ready)

    # -- what the app calls ------------------------------------------------------------------------------
    def show_report(self, markdown: str, report: dict[str, Any]) -> None:
        from qkv.tui.widgets.memory import MemoryPane
        from qkv.tui.widgets.tokenizer import TokenizerPane

        self.report_source = markdown
        self.query_one("#report-md").update(_markdown(markdown))
        self.query_one(MemoryPane).show(report)
        self.query_one(TokenizerPane).show(report)

    def clear_report(self) -> None:
        self.report_source = ""
        self.query_one("#report-md").update(_markdown(NO_REPORT))

    def log_call(self, step: str, tool: str, seconds: float | None, summary: str = "") -> None:
        self.query_one("#toollog").log_call(step, tool, seconds, summary)

    def follow(self, path: Path) -> Path:
        from qkv.tui.widgets.training import TrainingPane

        return self.query_one(TrainingPane).follow(path)

    def activate(self, name: str) -> None:
        self.query_one("#tabs").active = name
