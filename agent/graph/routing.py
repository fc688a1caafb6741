"""Pure routing functions: state in, next node name out. No tool calls, no side effects."""

from __future__ import annotations

from typing import Any

# Steps in graph order, and which TaskSpec fields each step reads first. A revision re-runs from the
# earliest step that reads a changed field (every later step depends on the earlier ones).
ORDER = ("intake", "objective", "architecture", "context", "efficiency", "tokenization", "inference", "report")
FIELD_STEP = {
    "objective": "objective", "domain": "objective", "mode": "objective", "source_lang": "objective",
    "target_lang": "objective", "languages": "objective",
    "base_model": "architecture", "param_budget": "architecture", "doc_tokens": "architecture",
    "max_doc_tokens": "architecture", "compute_flops": "architecture", "data_tokens": "architecture",
    "method": "efficiency", "gpu": "efficiency", "gpus": "efficiency", "vram_gib": "efficiency",
    "data_examples": "efficiency",
    "constraints": "efficiency",
    "corpus": "tokenization",
    "latency_ms": "inference", "throughput_tok_s": "inference", "concurrency": "inference",
    "sampling": "inference", "deploy": "inference",
}


def after_architecture(state: dict[str, Any]) -> str:
    """Past the window → the context-extension step (hard rule 1); else on to efficiency."""
    arch = state.get("architecture") or {}
    window = arch.get("context_window")
    if window is not None and arch.get("required_tokens", 0) > window:
        return "context"
    return "efficiency"


def after_efficiency(state: dict[str, Any]) -> str:
    """Loop on the strategy ladder until a rung fits or the ladder is exhausted."""
    eff = state.get("efficiency") or {}
    if eff.get("settled"):
        return "tokenization"
    return "efficiency"


def first_affected_step(changed: set[str] | list[str]) -> str:
    """The earliest step reading any changed TaskSpec field ('report' when nothing upstream changed)."""
    steps = [FIELD_STEP.get(f, "objective") for f in changed]
    return min(steps, key=ORDER.index) if steps else "report"


def predecessor(step: str) -> str:
    """The node whose completion a revision pretends to be, so the graph continues at `step`.

    'context' is only reached through architecture's router, so a revision starting there starts at
    architecture instead."""
    if step == "context":
        step = "architecture"
    if step == "efficiency":
        return "context"  # context → efficiency is unconditional
    return ORDER[ORDER.index(step) - 1]
