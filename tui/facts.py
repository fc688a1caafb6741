"""Answers from a report's own facts: flatten the report into (path, value) pairs, match a question to
paths by keywords, quote the values verbatim. Nothing here invents a number: every figure in an answer
is a value read from the report, with its path, so the user can find it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from qkv.agent.graph.schemas import DesignReport

# Question words -> report path words they point at (report keys are snake_case; paths split on . and _).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "vram": ("vram", "peak", "memory", "fits", "breakdown"),
    "memory": ("vram", "peak", "memory", "fits", "breakdown"),
    "fit": ("fits", "vram", "peak"),
    "fits": ("fits", "vram", "peak"),
    "gib": ("vram", "gib"),
    "gb": ("vram", "gib"),
    "method": ("method", "strategy"),
    "lora": ("method", "lora", "rank", "alpha", "r"),
    "qlora": ("method", "quant", "nf4"),
    "strategy": ("method", "strategy"),
    "parameters": ("params", "parameters"),
    "params": ("params", "parameters"),
    "big": ("params",),
    "size": ("params",),
    "context": ("context", "window", "seq"),
    "window": ("context", "window"),
    "length": ("context", "window", "seq", "length"),
    "model": ("base", "model"),
    "base": ("base", "model"),
    "metric": ("metrics", "metric"),
    "metrics": ("metrics", "metric"),
    "evaluate": ("metrics", "ethics", "evaluation"),
    "rouge": ("metrics",),
    "bleu": ("metrics",),
    "perplexity": ("metrics", "perplexity"),
    "sampling": ("sampling", "temperature", "top", "p", "k"),
    "temperature": ("temperature",),
    "top": ("top",),
    "decode": ("sampling",),
    "decoding": ("sampling",),
    "quantization": ("quantization", "quant"),
    "quantize": ("quantization", "quant"),
    "quantisation": ("quantization", "quant"),
    "kv": ("kv", "cache"),
    "cache": ("kv", "cache"),
    "tokenizer": ("tokenization", "tokenizer", "vocab", "fertility"),
    "tokenization": ("tokenization", "tokenizer"),
    "vocabulary": ("vocab", "vocabulary"),
    "fertility": ("fertility",),
    "learning": ("learning", "rate", "lr"),
    "lr": ("learning", "rate", "lr"),
    "hyperparameters": ("hyperparameters", "learning", "rate", "warmup", "rank", "alpha", "dropout"),
    "rank": ("rank", "r"),
    "alpha": ("alpha",),
    "warmup": ("warmup",),
    "alternatives": ("alternatives",),
    "options": ("alternatives",),
    "checks": ("checks", "rule", "status"),
    "rules": ("checks", "rule"),
    "rule": ("checks", "rule"),
    "latency": ("latency",),
    "throughput": ("throughput", "tokens", "s"),
    "speed": ("throughput", "latency"),
    "ethics": ("ethics",),
    "bias": ("ethics", "bias"),
    "hallucination": ("ethics", "hallucination"),
    "layers": ("layers", "layer", "profile"),
    "heads": ("heads", "kv"),
    "attention": ("attention",),
    "gqa": ("attention", "kv", "heads"),
    "assumptions": ("assumptions",),
    "assume": ("assumptions",),
    "budget": ("resource", "budget"),
    "cost": ("resource", "budget", "hours"),
    "hours": ("hours",),
    "flops": ("flops",),
    "batch": ("batch",),
    "gpu": ("gpu", "gpus"),
    "gpus": ("gpu", "gpus"),
    "objective": ("objective", "kind", "architecture"),
    "architecture": ("architecture",),
    "epochs": ("epochs",),
    "optimizer": ("optimizer",),
    "precision": ("precision", "dtype"),
}
_STOP_TEXT = """
a an the is it my of for to in on and or what which how much many does do did will would should can could i we
you me this that be are was with at by from about use used
"""
STOP = frozenset(_STOP_TEXT.split())
# Keys holding provenance: shown next to a fact, never matched as a fact themselves.
PROVENANCE_KEYS = ("provenance", "source", "kind_of_number")


class Fact(BaseModel):
    """One leaf of the report: where it is, what it says, and where the number came from."""

    path: str
    value: str
    provenance: str | None = None

    @property
    def label(self) -> str:
        return " › ".join(p.replace("_", " ") for p in self.path.split("."))

    def line(self) -> str:
        prov = f" ({self.provenance})" if self.provenance else ""
        return f"{self.label}: {self.value}{prov}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        # A quote is the report's number exactly as the tool wrote it (17.508, not 17.51).
        return f"{value:,}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _provenance(node: dict) -> str | None:
    for key in PROVENANCE_KEYS:
        val = node.get(key)
        if isinstance(val, str) and val:
            return val
        if isinstance(val, dict):  # {"kind": "cited", "source": "..."}
            kind = val.get("kind") or val.get("type")
            src = val.get("source") or val.get("detail")
            return " · ".join(str(x) for x in (kind, src) if x) or None
    return None


def flatten(report: dict, prefix: str = "", inherited: str | None = None) -> list[Fact]:
    """Every scalar leaf of `report` (nested dicts and lists) as a Fact; lists of scalars become one fact.

    Provenance: a section's `provenance` map (`{"peak_vram_gib": "analytic: memory estimator"}`) labels
    its leaves by key; a `provenance`/`source` string labels every leaf below it."""
    out: list[Fact] = []
    prov_map = report.get("provenance") if isinstance(report.get("provenance"), dict) else {}
    node_prov = None if prov_map else _provenance(report)
    prov = node_prov or inherited
    for key, value in report.items():
        if key in PROVENANCE_KEYS:
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        leaf_prov = prov_map.get(key) if isinstance(prov_map.get(key), str) else prov
        if isinstance(value, dict):
            out.extend(flatten(value, path, leaf_prov))
        elif isinstance(value, list):
            if value and all(isinstance(v, dict) for v in value):
                for i, item in enumerate(value):
                    name = str(item.get("name") or item.get("rule") or item.get("field") or item.get("step") or i)
                    out.extend(flatten(item, f"{path}.{name}", leaf_prov))
            elif value:
                out.append(Fact(path=path, value=", ".join(_fmt(v) for v in value), provenance=leaf_prov))
        elif value is not None and value != "":
            out.append(Fact(path=path, value=_fmt(value), provenance=leaf_prov))
    return out


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP]


def query_terms(question: str) -> set[str]:
    terms: set[str] = set()
    for w in _words(question):
        terms.add(w)
        terms.update(SYNONYMS.get(w, ()))
        if w.endswith("s") and w[:-1] in SYNONYMS:
            terms.update(SYNONYMS[w[:-1]])
    return terms


def match_facts(report: dict, question: str, limit: int = 8) -> list[Fact]:
    """The report's facts that best match the question, best first (empty when nothing matches).

    A path word the user typed counts 1.5, one reached through a synonym 1; a match in the leaf's own
    key adds 1 (the leaf is what gets quoted); deeper paths lose a little."""
    direct = set(_words(question))
    terms = query_terms(question)
    if not terms:
        return []
    scored: list[tuple[float, int, Fact]] = []
    for order, fact in enumerate(flatten(report)):
        segments = fact.path.lower().split(".")
        parts = [w for seg in segments for w in re.split(r"[_\s-]+", seg)]
        hits = sum(1.5 if p in direct else 1.0 for p in parts if p in terms)
        if not hits:
            continue
        leaf = set(re.split(r"[_\s-]+", segments[-1]))
        score = hits + (1.0 if leaf & terms else 0.0) - 0.05 * len(parts)
        scored.append((score, order, fact))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [f for _, _, f in scored[:limit]]


def answer_from_report(report: DesignReport, question: str, limit: int = 8) -> tuple[str, list[Fact]]:
    """A paragraph for the questions a design raises (tui/explain.py), else the matching facts quoted verbatim;
    and the facts themselves (their provenance is shown with them)."""
    from qkv.tui.explain import explain

    data = report.model_dump(mode="json")  # facts are addressed by the JSON contract's dotted paths
    answered = explain(report, data, question)
    if answered is not None:
        text, facts = answered
        lines = "\n".join(f"• {f.line()}" for f in facts)
        return (text + (f"\n\nFrom the report:\n{lines}" if facts else "")), facts
    return answer_from_facts(data, question, limit)


def answer_from_facts(data: dict, question: str, limit: int = 8) -> tuple[str, list[Fact]]:
    """The facts of a report's JSON that match the question, quoted verbatim with their provenance."""
    facts = match_facts(data, question, limit)
    if not facts:
        sections = ", ".join(k for k, v in data.items() if isinstance(v, dict | list) and v)
        return ("I could not find that in the report, and I only answer from its facts. "
                f"Ask about one of its sections ({sections}) — e.g. 'what is the peak VRAM?', "
                "'which sampling settings?', 'why QLoRA?'."), []
    lines = "\n".join(f"• {f.line()}" for f in facts)
    return f"From the report:\n{lines}", facts


def invented_numbers(text: str, facts: Iterable[Fact], question: str = "") -> set[str]:
    """Numbers in `text` that appear neither in the given facts nor in the question: a model's wording
    that states such a number is discarded in favour of the template (words may vary, numbers may not).
    The numbers are read by the report wording gate's own reader (digits and number words)."""
    from qkv.agent.graph.wording_gate import numbers_in

    allowed = numbers_in(question)
    for f in facts:
        allowed |= numbers_in(f.value) | numbers_in(f.path)
    return {n for n in numbers_in(text) if n not in allowed and n not in {"1", "0"}}


class Change(BaseModel):
    path: str
    before: str | None
    after: str | None

    def line(self) -> str:
        label = " › ".join(p.replace("_", " ") for p in self.path.split("."))
        if self.before is None:
            return f"{label}: + {self.after}"
        if self.after is None:
            return f"{label}: − {self.before}"
        return f"{label}: {self.before} → {self.after}"


def diff_reports(before: dict, after: dict) -> list[Change]:
    """What a follow-up changed: every leaf whose value differs, in report order."""
    old = {f.path: f.value for f in flatten(before)}
    new = {f.path: f.value for f in flatten(after)}
    changes = [Change(path=p, before=old.get(p), after=v) for p, v in new.items() if old.get(p) != v]
    changes += [Change(path=p, before=v, after=None) for p, v in old.items() if p not in new]
    return changes


def changed_sections(changes: Iterable[Change]) -> list[str]:
    """Top-level report sections touched by a change, in order of first appearance."""
    return list(dict.fromkeys(c.path.split(".")[0] for c in changes))


# The decisions a reader looks for first in "what changed" (path prefixes, in this order).
KEY_PATHS = ("task.", "architecture.base_model", "architecture.params", "architecture.context_action",
             "architecture.train_seq", "efficiency.method", "efficiency.strategy", "efficiency.fits",
             "efficiency.peak_vram_gib", "efficiency.gpu", "efficiency.gpus", "efficiency.sharding",
             "efficiency.micro_batch", "efficiency.grad_accum", "efficiency.hyperparameters",
             "inference.quantization", "inference.peak_vram_gib", "inference.kv_cache_gib", "inference.fits",
             "inference.decode_tok_s_upper", "checks.")
DETAIL_SECTIONS = ("breakdown", "alternatives", "provenance", "narrative", "candidates", "layer_profile")


def summarize_changes(changes: list[Change], limit: int = 6) -> list[str]:
    """The headline changes (the decisions a reader looks for first), at most `limit`; every other changed
    value is counted, not listed (the Report tab has them)."""
    def rank(c: Change) -> int:
        return next((i for i, k in enumerate(KEY_PATHS) if c.path.startswith(k)), len(KEY_PATHS))

    headline = [c for c in changes if rank(c) < len(KEY_PATHS) and not c.path.startswith("task.stated")
                and not any(part in DETAIL_SECTIONS for part in c.path.split("."))]
    details = [c for c in changes if c not in headline]
    main = sorted(headline, key=rank)
    lines = [f"• {c.line()}" for c in main[:limit]]
    rest = len(main) - limit
    if rest > 0:
        lines.append(f"… and {rest} more value(s) (see the Report tab)")
    if details:
        lines.append(f"… plus {len(details)} other value(s) (breakdowns, alternatives, provenance: the Report tab)")
    return lines
