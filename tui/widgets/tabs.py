"""The right-hand tabs (report, memory, tokenizer, training, tool log), composed lazily: the app's first
screen (chat, steps, key bar) is drawn before Markdown, plotext and DataTable are even imported, which is
most of the time to first screen. The app queues calls until `ready`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical

if TYPE_CHECKING:
    from qkv.agent.graph.schemas import DesignReport

NO_REPORT = "*No report yet.* Describe a task in the chat to start a design."
TAB_LABELS = {"report": "F2 Report", "memory": "F3 Memory", "tokenizer": "F4 Tokenizer", "training": "F5 Training",
              "tools": "F6 Tools"}
# Under 100 columns the five labels must fit ~45 cells (each tab pads one cell each side).
SHORT_LABELS = {"report": "F2 Rep", "memory": "F3 Mem", "tokenizer": "F4 Tok", "training": "F5 Train",
                "tools": "F6 Tools"}


def keep_comments(markdown: str, width: int) -> str:
    """Re-wrap long `# comment` lines inside fenced code blocks to `width`, each piece starting with the
    comment's own indent and `# `: a terminal wraps long lines without the `#`, and a YAML config copied
    off the screen would then break."""
    import textwrap

    out: list[str] = []
    fenced = False
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced and len(line) > width and line.lstrip().startswith("#"):
            indent = line[: len(line) - len(line.lstrip())]
            body = line.lstrip().lstrip("#").strip()
            out.extend(textwrap.wrap(body, width=max(20, width), initial_indent=indent + "# ",
                                     subsequent_indent=indent + "# ", break_on_hyphens=False))
            continue
        out.append(line)
    return "\n".join(out)


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
            with TabPane(TAB_LABELS["report"], id="report"), VerticalScroll(id="report-scroll"):
                yield Static(_markdown(NO_REPORT), id="report-md")
            with TabPane(TAB_LABELS["memory"], id="memory"):
                yield MemoryPane(id="memory-pane")
            with TabPane(TAB_LABELS["tokenizer"], id="tokenizer"):
                yield TokenizerPane(id="tok-pane")
            with TabPane(TAB_LABELS["training"], id="training"):
                yield TrainingPane(id="train-pane")
            with TabPane(TAB_LABELS["tools"], id="tools"):
                yield ToolLog(timings=self.timings, id="toollog")

    def on_mount(self) -> None:
        self.call_after_refresh(self._on_ready)

    # -- what the app calls ------------------------------------------------------------------------------
    def show_report(self, markdown: str, report: DesignReport) -> None:
        from qkv.tui.widgets.memory import MemoryPane
        from qkv.tui.widgets.tokenizer import TokenizerPane

        self.report_source = markdown
        self._draw_report()
        self.query_one(MemoryPane).show(report)
        self.query_one(TokenizerPane).show(report)

    def _draw_report(self) -> None:
        width = self.query_one("#report-scroll").content_size.width or 80
        # Rich pads a code block by one cell each side; one more for the scrollbar.
        self.query_one("#report-md").update(_markdown(keep_comments(self.report_source or NO_REPORT, width - 4)))

    def on_resize(self) -> None:
        if self.report_source:
            self.call_after_refresh(self._draw_report)

    def clear_report(self) -> None:
        """A new or switched session: every tab forgets the previous design."""
        from qkv.tui.widgets.memory import MemoryPane
        from qkv.tui.widgets.tokenizer import TokenizerPane
        from qkv.tui.widgets.training import TrainingPane

        self.report_source = ""
        self.query_one("#report-md").update(_markdown(NO_REPORT))
        self.query_one(MemoryPane).clear()
        self.query_one(TokenizerPane).clear()
        self.query_one(TrainingPane).clear()
        self.query_one("#toollog").reset()

    def load_tool_calls(self, rows: list[tuple[str, str, float | None, str]]) -> None:
        self.query_one("#toollog").reset(rows)

    def log_call(self, step: str, tool: str, seconds: float | None, summary: str = "") -> None:
        self.query_one("#toollog").log_call(step, tool, seconds, summary)

    def follow(self, path: Path) -> Path:
        from qkv.tui.widgets.training import TrainingPane

        return self.query_one(TrainingPane).follow(path)

    def set_narrow(self, narrow: bool) -> None:
        from textual.widgets import TabbedContent

        tabs = self.query_one("#tabs", TabbedContent)
        for pane, label in (SHORT_LABELS if narrow else TAB_LABELS).items():
            tabs.get_tab(pane).label = label

    def activate(self, name: str) -> None:
        self.query_one("#tabs").active = name
