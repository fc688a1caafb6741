"""Answers, not dumps: the questions a user asks about a design — why this method, why it does not fit, what
would make it fit, how much memory inference needs, how long training takes — answered in a short paragraph
built from the report's ladder, diagnosis and trade-off, every number quoted from the report (the facts
follow, with their provenance). A question the report cannot answer says so and names what would."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from qkv.tui.facts import Fact, flatten

if TYPE_CHECKING:
    from qkv.agent.graph.schemas import DesignReport

Answer = tuple[str, list[Fact]]


def _facts(data: dict, *prefixes: str, limit: int = 8) -> list[Fact]:
    return [f for f in flatten(data) if f.path.startswith(prefixes)][:limit]


def _why_method(r: DesignReport, data: dict) -> Answer:
    e = r.efficiency
    tried = [a for a in e.alternatives if a.name != e.strategy]
    failed = [a for a in tried if not a.fits or a.tight]
    stated = next((s for s in r.task.stated if s.field == "method"), None)
    lines = [f"The plan is {e.strategy} at {e.peak_vram_gib} GiB per GPU of {e.usable_gib} GiB usable"
             + (f", with the method you stated (“{stated.text}”)." if stated else ".")]
    if failed:
        shown = "; ".join(f"{a.name} {a.total_gib} GiB" for a in failed[-3:])
        lines.append(f"The rungs before it did not fit with the margin ({shown}).")
    if e.departures:
        lines.append("It departs from what you stated: " + "; ".join(e.departures) + ".")
    if e.tradeoffs:
        lines.append(e.tradeoffs["summary"])
    return " ".join(lines), _facts(data, "efficiency.strategy", "efficiency.peak", "efficiency.alternatives",
                                   "efficiency.tradeoffs")


def _why_not_fit(r: DesignReport, data: dict) -> Answer:
    e = r.efficiency
    verdict = "fits" if e.fits else "does not fit"
    lines = [f"The plan needs {e.peak_vram_gib} GiB per GPU against {e.usable_gib} GiB usable: it {verdict}."]
    if e.diagnosis and e.diagnosis.ranked:
        top = ", ".join(f"{t.name} {t.gib} GiB ({t.share:.0%})" for t in e.diagnosis.ranked[:3])
        lines.append(f"The largest terms: {top}.")
    return " ".join(lines) + _fixes(r), _facts(data, "efficiency.diagnosis.ranked", "efficiency.peak",
                                             "efficiency.usable")


def _fixes(r: DesignReport) -> str:
    e = r.efficiency
    out = ""
    if e.diagnosis and e.diagnosis.fixes:
        out += " Targeted fixes: " + "; ".join(f"{f.fix} saves {f.saving_gib} GiB (cost: {f.cost})"
                                                 for f in e.diagnosis.fixes[:3]) + "."
    if e.what_would_fit:
        out += " What would fit: " + "; ".join(e.what_would_fit[:3]) + "."
    return out


def _make_fit(r: DesignReport, data: dict) -> Answer:
    e = r.efficiency
    if e.fits and not e.what_would_fit:
        return (f"It already fits: {e.strategy} at {e.peak_vram_gib} GiB of {e.usable_gib} GiB usable."
                + _fixes(r), _facts(data, "efficiency.diagnosis.fixes", "efficiency.peak"))
    return _why_not_fit(r, data)


def _inference_memory(r: DesignReport, data: dict) -> Answer:
    i = r.inference
    text = (f"Serving needs {i.peak_vram_gib} GiB per GPU on {i.gpus} GPU(s): {i.quantization} weights "
            f"{i.weights_gib} GiB plus a {i.kv_cache_gib} GiB KV cache ({i.context_tokens:,} tokens × "
            f"{i.concurrency} sequences); it {'fits' if i.fits else 'does not fit'}.")
    return text, _facts(data, "inference.peak", "inference.weights", "inference.kv", "inference.quantization")


def _training_time(r: DesignReport, data: dict) -> Answer:
    pre = r.resource_budget.pretraining
    if pre and pre.training_days:
        return (f"Pre-training the compute-optimal budget takes about {pre.training_days:.1f} days "
                f"({pre.gpu_hours:,.0f} GPU-hours) at {pre.mfu:.0%} MFU, a bound from the GPU's peak.",
                _facts(data, "resource_budget.pretraining"))
    db = r.resource_budget.data_budget
    if db and db.hours:
        return (f"About {db.hours:.1f} h on the stated GPUs at the roofline bound: {db.steps:,} steps = "
                f"{db.epochs} epochs of {db.tokens_per_epoch:,.0f} tokens ({db.examples:,} examples × "
                f"{db.tokens_per_example:,} tokens, {db.length_basis}), {db.train_flops:.3g} FLOPs. A bound from "
                "the GPUs' peak at the planned MFU: the real run is slower; `qkv train` measures tokens/s.",
                _facts(data, *(f"resource_budget.data_budget.{k}" for k in (
                    "hours", "steps", "epochs", "tokens_per_epoch", "examples", "tokens_per_example", "train_flops")),
                    limit=11))
    return ("The report does not estimate fine-tuning time: that needs the number of training tokens (your "
            "examples × their length × epochs) and a measured throughput. `qkv train` with the report's config "
            "measures tokens/s on your hardware (the pilot runs a few steps), and tokens ÷ tokens/s bounds the "
            "run.", [])


# (question pattern, answer builder): the first that matches answers.
INTENTS: list[tuple[str, Callable[[DesignReport, dict], Answer]]] = [
    (r"\bhow long\b|\btraining time\b|\bhow many (?:hours|days)\b|\btime to train\b", _training_time),
    (r"\bwhat would (?:make|let) it fit\b|\bhow (?:can|do) i make it fit\b|\bmake it fit\b", _make_fit),
    (r"\bwhy\b.*(?:\bnot|n't)\s+(?:it\s+|this\s+)?fit\b|\bwhy\b.*\bso much memory\b|\bwhere does the memory go\b",
     _why_not_fit),
    (r"\bwhy\b.*\b(?:q?lora|full|method|fine-?tun\w*|strategy|checkpointing)\b", _why_method),
    (r"\b(?:how much|what)\b.*\bmemory\b.*\b(?:inference|serving|serve|deploy)\b|\binference memory\b",
     _inference_memory),
]


def explain(report: DesignReport, data: dict, question: str) -> Answer | None:
    """A paragraph answer for the questions above, or None (the keyword quote answers the rest). `data` is
    the report's JSON, where the quoted facts are found by their dotted paths."""
    for pattern, build in INTENTS:
        if re.search(pattern, question, re.I):
            return build(report, data)
    return None
