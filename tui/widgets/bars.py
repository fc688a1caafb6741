"""A horizontal bar chart as a Rich renderable: one row per item, the label, the bar and the value on the
same line, so a label can never drift from its bar at any terminal size (a plot library that thins its
axis labels on a small canvas draws bars under the wrong names). The bar width follows the space given."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

BLOCKS = " ▏▎▍▌▋▊▉█"  # eighth-cell steps: sub-character resolution on narrow panes


class Bars:
    """`Bars([("weights", 3.2), ...], unit="GiB", marker=16.0)`: items as given (largest first reads best);
    `marker` draws a `│` at that value (e.g. the GPU's usable memory) when it is inside the scale."""

    def __init__(self, items: list[tuple[str, float]], *, unit: str = "", marker: float | None = None,
                 label_width: int = 24, digits: int = 3) -> None:
        self.items = items
        self.digits = digits
        self.unit = unit
        self.marker = marker
        self.label_width = label_width

    def _bar(self, value: float, top: float, cells: int) -> Text:
        eighths = round(max(value, 0.0) / top * cells * 8) if top > 0 else 0
        full, rest = divmod(eighths, 8)
        cells_text = list(("█" * full + (BLOCKS[rest] if rest else "")).ljust(cells))
        at = None
        if self.marker is not None and 0 < self.marker <= top:
            at = min(cells - 1, round(self.marker / top * cells))
            if cells_text[at] == " ":  # the marker shows where the bar stops short of it
                cells_text[at] = "│"
        text = Text("".join(cells_text), style="cyan")
        if at is not None and cells_text[at] == "│":
            text.stylize("bold red", at, at + 1)
        return text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        values = [f"{v:,.{self.digits}f} {self.unit}".rstrip() for _, v in self.items]
        labels = [n for n, _ in self.items]
        # the bars keep at least 10 cells; the labels get the rest, up to label_width
        lw = min(max((len(x) for x in labels), default=0), self.label_width, max(8, width - 10 - 2 - max(
            (len(x) for x in values), default=0)))
        vw = max((len(x) for x in values), default=0)
        cells = max(4, width - lw - vw - 2)
        top = max([v for _, v in self.items] + ([self.marker] if self.marker else []) + [1e-9])
        table = Table.grid(padding=(0, 1))
        table.add_column(width=lw, no_wrap=True, overflow="ellipsis")
        table.add_column(width=cells, no_wrap=True)
        table.add_column(width=vw, justify="right", no_wrap=True)
        for label, value, shown in zip(labels, (v for _, v in self.items), values, strict=True):
            table.add_row(Text(label), self._bar(value, top, cells), Text(shown, style="bold"))
        yield table
