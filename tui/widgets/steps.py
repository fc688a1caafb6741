"""The step tracker: each graph step's status (pending / running / done / looped back / waiting for an
answer / error), the tools it called and how long they took."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

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
    """Rendered as a table; `timings=False` hides durations (reproducible screenshots). `compact` (set by
    the app on short terminals) draws the steps as icon + name runs that wrap, without the tools column,
    so every step stays visible in three or four lines."""

    def __init__(self, steps: tuple[str, ...] = DEFAULT_STEPS, *, timings: bool = True, id: str | None = None):
        super().__init__("", id=id)
        self.timings = timings
        self.compact = False
        self.rows: dict[str, StepRow] = {}
        self.reset(steps)

    def set_compact(self, compact: bool) -> None:
        if compact != self.compact:
            self.compact = compact
            self._draw()

    def to_json(self) -> str:
        """The tracker's state (statuses, loop counts, tools), saved with the session."""
        return json.dumps({name: asdict(row) for name, row in self.rows.items()})

    def load_json(self, text: str) -> None:
        """Restore a saved state: loop and skip marks come back as they were."""
        data = json.loads(text)
        self.rows = {name: StepRow(status=r["status"], tools=[(t, float(s)) for t, s in r["tools"]],
                                   loops=int(r["loops"])) for name, r in data.items()}
        self._draw()

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
        if self.compact:
            line = Text()
            for i, (name, row) in enumerate(self.rows.items()):
                icon, style = ICON.get(row.status, ("·", ""))
                if i:
                    line.append("  ")
                line.append(f"{icon} ", style=style)
                line.append(name + (f" ↺{row.loops}" if row.loops else ""), style=style if row.status != "pending"
                            else "dim")
            self.update(line)
            return
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
