"""Analytic and traced peaks side by side, per category: how the estimator is held to the trace."""

from __future__ import annotations

from pydantic import BaseModel, Field

from qkv.tools.memory.schema import MemoryEstimate, MemoryRequest
from qkv.tools.memory.verdict import FitReport, fit_report
from qkv.tools.trace.schema import CATEGORIES, TraceResult

# Analytic term name (prefix) -> traced category.
_TERM_CATEGORY = {
    "weights": "parameters",
    "gradients": "gradients",
    "optimizer states": "optimizer state",
    "activations": "activations",
    "final norm": "activations",
    "loss log-probs": "activations",
    "autocast weight copies": "activations",
    "KV cache": "KV cache",
}


class CategoryRow(BaseModel):
    category: str
    analytic_bytes: int
    traced_bytes: int
    difference_bytes: int = Field(description="analytic - traced")


class TraceComparison(BaseModel):
    """`qkv vram --trace`: the analytic report, the trace, and their difference per category."""

    analytic: FitReport
    traced: TraceResult
    rows: list[CategoryRow]
    relative_error: float = Field(description="analytic / traced - 1, on the peak of live tensor bytes")


def analytic_categories(estimate: MemoryEstimate) -> dict[str, int]:
    """Sum the analytic terms into the tracer's categories (everything unnamed is a temporary)."""
    out = dict.fromkeys(CATEGORIES, 0)
    for term in estimate.terms:
        cat = next((c for prefix, c in _TERM_CATEGORY.items() if term.name.startswith(prefix)), "temporaries")
        out[cat] += term.bytes
    return out


def compare_trace(req: MemoryRequest) -> TraceComparison:
    """Run the analytic estimate and the trace for the same request and line them up."""
    from qkv.tools.trace.run import trace_memory

    report = fit_report(req)
    traced = trace_memory(req)
    analytic = analytic_categories(report.estimate)
    rows = [CategoryRow(category=c, analytic_bytes=analytic[c], traced_bytes=traced.categories.get(c, 0),
                        difference_bytes=analytic[c] - traced.categories.get(c, 0)) for c in CATEGORIES]
    return TraceComparison(analytic=report, traced=traced, rows=rows,
                           relative_error=report.estimate.allocated_bytes / traced.peak_bytes - 1)
