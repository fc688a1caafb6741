"""The memory tab: the report's training VRAM breakdown as a horizontal bar chart (GiB per term, the GPU's
usable memory marked), the peak against that memory, and the alternatives the efficiency ladder considered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from qkv.tui.widgets.bars import Bars

if TYPE_CHECKING:
    from qkv.agent.graph.schemas import DesignReport

EMPTY = "No report yet: the memory breakdown appears after the efficiency step."


class MemoryPane(VerticalScroll):
    def compose(self) -> ComposeResult:
        yield Static(EMPTY, id="memory-summary", markup=False)
        yield Static("", id="memory-plot")
        yield Static("", id="memory-alternatives")
        yield Static("", id="memory-serving")

    def clear(self) -> None:
        self.query_one("#memory-summary", Static).update(EMPTY)
        for part in ("#memory-plot", "#memory-alternatives", "#memory-serving"):
            self.query_one(part, Static).update("")

    def show(self, report: DesignReport) -> None:
        eff = report.efficiency
        items = sorted(((b.name, b.gib) for b in eff.breakdown if b.gib > 0), key=lambda t: -t[1])  # largest first
        peak, usable = eff.peak_vram_gib, eff.usable_gib
        verdict = "fits" if eff.fits else "does NOT fit"
        gpu = f"{eff.gpus}× {eff.gpu}" if eff.gpu else "no GPU named"
        summary = (f"{eff.strategy or eff.method}: peak {peak} GiB per GPU on {gpu} "
                   f"(usable {usable} GiB, marked │) — {verdict}") if peak is not None \
            else "no training peak in this report"
        self.query_one("#memory-summary", Static).update(summary)
        chart = Bars(items, unit="GiB", marker=float(usable) if usable else None) if items else ""
        title = Text("training VRAM per GPU, GiB (analytic)", style="bold")
        self.query_one("#memory-plot", Static).update(_stack(title, chart))
        alts = eff.alternatives
        if alts:
            table = Table(title="alternatives considered", show_edge=False, pad_edge=False)
            for col in ("strategy", "GiB", "fits"):
                table.add_column(col)
            for a in alts:
                fits = "tight" if a.tight else ("yes" if a.fits else "no")
                table.add_row(Text(a.name), Text(f"{a.total_gib}"), Text(fits))
            self.query_one("#memory-alternatives", Static).update(table)
        else:
            self.query_one("#memory-alternatives", Static).update("")
        self.query_one("#memory-serving", Static).update(serving_view(report.inference.serving))


def _stack(*renderables):
    from rich.console import Group

    return Group(*(r for r in renderables if r != ""))


def serving_view(plan: dict | None):
    """The serving plan (qkv.tools.serve) as one GPU's memory bars and the concurrency × context frontier."""
    if not plan:
        return ""
    head = Text(f"\nserving: {plan['engine']} on {plan['gpus_used']} × {plan['gpu']} · TP {plan['tensor_parallel']}"
                f"{' · PP ' + str(plan['pipeline_parallel']) if plan['pipeline_parallel'] > 1 else ''} · "
                f"{plan['weights']} weights · {plan['kv_dtype']} KV — {'fits' if plan['fits'] else 'does NOT fit'}",
                style="bold")
    items = [(m["name"], float(m["gib"])) for m in plan.get("per_gpu") or [] if m.get("gib")]
    bars = Bars(items, unit="GiB", marker=float(plan["usable_gib"]) if plan.get("usable_gib") else None)
    frontier = [(f"{p['context']:,} tokens", float(p["max_concurrency"])) for p in plan.get("frontier") or []]
    parts = [head, Text("one GPU, GiB (analytic)", style="dim"), bars]
    if frontier:
        parts += [Text("largest concurrency at each context", style="dim"), Bars(frontier, unit="users", digits=0)]
    lat = plan.get("latency") or {}
    if lat.get("tpot_ms"):
        parts.append(Text(f"time per output token ≥ {lat['tpot_ms']:.1f} ms · TTFT ≥ {lat.get('ttft_ms') or 0:.0f} ms "
                          "(roofline bounds)", style="dim"))
    return _stack(*parts)
