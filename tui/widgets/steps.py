"""The step tracker: each graph step's status (pending / running / done / looped back / waiting for an
answer / error), the tools it called and how long they took."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

DEFAULT_STEPS = ("intake", "objective", "architecture", "context", "efficiency", "tokenization", "inference",
                 "report")
ICON = {"pending": ("○", "dim"), "running": ("◐", "bold yellow"), "done": ("✓", "green"),
        "looped": ("↺", "magenta"), "interrupt": ("?", "bold cyan"), "error": ("✗", "bold red"),
        "cancelled": ("■", "red"), "skipped": ("–", "dim"),
        "kept": ("·", "dim")}


@dataclass
class StepRow:
    status: str = "pending"
    tools: list[tuple[str, float]] = field(default_factory=list)
    loops: int = 0


class StepTracker(Static):
    """Rendered as a table; `timings=False` hides durations (reproducible screenshots)."""

    def __init__(self, steps: tuple[str, ...] = DEFAULT_STEPS, *, timings: bool = True, id: str | None = None):
        super().__init__("", id=id)
        self.timings = timings
        self.rows: dict[str, StepRow] = {}
        self.reset(steps)

    def reset(self, steps: tuple[str, ...] | None = None) -> None:
        names = steps or tuple(self.rows) or DEFAULT_STEPS
        self.rows = {s: StepRow() for s in names}
        self._draw()

    def mark(self, step: str, status: str, tools: list[tuple[str, float]] | None = None) -> None:
        row = self.rows.setdefault(step, StepRow())
        if status == "looped":
            row.loops += 1
        row.status = status
        if tools:
            row.tools.extend(tools)
        self._draw()

    def mark_all(self, status: str) -> None:
        for row in self.rows.values():
            row.status = status
        self._draw()

    def finish(self) -> None:
        """The run ended: steps never reached were not needed (e.g. context within the window)."""
        for row in self.rows.values():
            if row.status == "pending":
                row.status = "skipped"
        self._draw()

    def cancel_running(self) -> None:
        for row in self.rows.values():
            if row.status == "running":
                row.status = "cancelled"
        self._draw()

    def _draw(self) -> None:
        table = Table.grid(padding=(0, 1))
        table.add_column(width=1)
        table.add_column(min_width=12)
        table.add_column(ratio=1)
        for name, row in self.rows.items():
            icon, style = ICON.get(row.status, ("·", ""))
            label = Text(name, style=style if row.status != "pending" else "dim")
            if row.loops:
                label.append(f" ↺{row.loops}", style="magenta")
            tools = Text()
            seen: dict[str, float] = {}
            for tool, seconds in row.tools:
                seen[tool] = seen.get(tool, 0.0) + seconds
            for i, (tool, seconds) in enumerate(seen.items()):
                if i:
                    tools.append(", ", style="dim")
                tools.append(tool, style="cyan")
                if self.timings:
                    tools.append(f" {seconds * 1000:.0f} ms" if seconds < 1 else f" {seconds:.1f} s", style="dim")
            table.add_row(Text(icon, style=style), label, tools)
        self.update(table)
