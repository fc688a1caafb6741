"""The tokenizer tab: the report's tokenization section — the audit's results when a corpus was given,
else the audit plan and the domain terms to check."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from qkv.tui.facts import flatten

if TYPE_CHECKING:
    from qkv.agent.graph.schemas import DesignReport

EMPTY = "No report yet: the tokenizer audit appears after the tokenization step."


class TokenizerPane(VerticalScroll):
    def compose(self):
        yield Static(EMPTY, id="tok-body", markup=False)

    def clear(self) -> None:
        self.query_one("#tok-body", Static).update(EMPTY)

    def show(self, report: DesignReport) -> None:
        tok = report.tokenization
        parts: list = [Text(f"tokenizer: {tok.tokenizer}  ·  audited: {'yes' if tok.audited else 'no (plan only)'}",
                            style="bold")]
        if tok.corpus:
            parts.append(Text("corpus: " + ", ".join(tok.corpus)))
        if tok.results:
            title = "audit results" if tok.audited else "auditor settings (no corpus audited yet)"
            table = Table(title=title, show_edge=False, pad_edge=False)
            table.add_column("measure")
            table.add_column("value", justify="right")
            table.add_column("provenance", style="dim")
            for fact in flatten(tok.results)[:40]:
                prov = tok.provenance.get(fact.path.split(".")[0], "")
                table.add_row(Text(fact.label), Text(fact.value), Text(prov))
            parts.append(table)
        if tok.recommendation:  # the decision first; it refers to the plan below it
            parts.append(Text("\n" + tok.recommendation, style="italic"))
        if tok.plan:
            parts.append(Text("\nwhat to audit:", style="bold"))
            parts.extend(Text(f"• {p}") for p in tok.plan)
        if tok.domain_terms:
            parts.append(Text("\ndomain terms to check: " + ", ".join(tok.domain_terms)))
        self.query_one("#tok-body", Static).update(Group(*parts))
