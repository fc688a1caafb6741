"""The tool log: every tool call the graph made (step, tool, duration, summary) and every job run."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable


class ToolLog(DataTable):
    def __init__(self, *, timings: bool = True, id: str | None = None) -> None:
        super().__init__(id=id, zebra_stripes=True, cursor_type="row")
        self.timings = timings

    def on_mount(self) -> None:
        self.add_columns("step", "tool", "time", "summary")

    def reset(self, rows: list[tuple[str, str, float | None, str]] = ()) -> None:
        """Show one session's calls only (a new or resumed session replaces the table)."""
        self.clear()
        for step, tool, seconds, summary in rows:
            self.log_call(step, tool, seconds, summary)

    def log_call(self, step: str, tool: str, seconds: float | None, summary: str = "") -> None:
        if seconds is None or not self.timings:
            shown = "—"
        else:
            shown = f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
        self.add_row(Text(step), Text(tool), Text(shown), Text(summary[:200]))
        self.move_cursor(row=self.row_count - 1)
