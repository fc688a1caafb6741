"""Base-model choice by capability: language coverage, specialisation, size, effective context and
instruct variant filter the catalog before anything else, and every candidate that lost says why.

Order of the filters (each a published fact of the model, from the catalog's `capabilities`):
1. languages the request names must all be in the model's language table (a model trained on ~90%
   English is not a Hindi/Arabic model, whatever its size);
2. specialisation: code models for code tasks, general models otherwise;
3. size within 1.5x of the budget;
4. the effective context (RULER or the model card; the config's window when none is published)
   covers the need;
5. for chat and serving, an instruct variant where one survives;
then the survivors rank by pretraining tokens at a similar size (more data lowers the loss at a fixed
size: Hoffmann et al. 2022), then by closeness to the budget. A filter that would leave nothing is
relaxed, and the report says so."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

Kind = Literal["encoder", "decoder", "encoder-decoder"]
SIZE_BAND = 1.5  # a model within 1.5x of the stated size counts as "that size"


def within_size_band(params: float, budget: float) -> bool:
    """Whether `params` counts as a model of the stated size `budget` (within SIZE_BAND either way)."""
    return 1 / SIZE_BAND <= params / budget <= SIZE_BAND


class ChoiceRequest(BaseModel):
    """What the base model must do."""

    kind: Kind
    params: float | None = Field(None, description="size budget in parameters (None: any size)")
    need_tokens: int = Field(2048, description="tokens the task needs in one sequence")
    languages: list[str] = Field(default_factory=list, description="ISO 639-1 codes the model must cover")
    instruct: bool = Field(False, description="chat or serving: prefer an instruct variant")
    code: bool = Field(False, description="a code task: prefer code-specialised models")


class Candidate(BaseModel):
    model: str
    params: int
    context_window: int | None
    effective_context: int | None
    languages: list[str]
    variant: str
    licence: str
    pretraining_tokens: float | None
    verdict: Literal["chosen", "lost"]
    reasons: list[str] = Field(default_factory=list, description="why it lost (empty for the chosen model)")
    source: str


class ModelChoice(BaseModel):
    chosen: str
    rationale: str
    candidates: list[Candidate]
    warnings: list[str] = Field(default_factory=list, description="filters relaxed because nothing passed")
    sources: list[str] = Field(default_factory=list)


def _window(c: Candidate) -> int:
    # T5 has relative positions and was pre-trained on 512-token inputs (Raffel et al. 2020).
    return c.effective_context or c.context_window or 512


def _rows(kind: str) -> list[Candidate]:
    from qkv.tools.catalog.models import get_model
    from qkv.tools.catalog.summary import summarize_models

    out = []
    for r in summarize_models():
        if r.kind != kind:
            continue
        caps = get_model(r.name).capabilities
        out.append(Candidate(
            model=r.name, params=r.params, context_window=r.context,
            effective_context=caps.effective_context if caps else None,
            languages=list(caps.languages) if caps else [], variant=caps.variant if caps else "base",
            licence=caps.licence if caps else "unknown", pretraining_tokens=caps.pretraining_tokens if caps else None,
            verdict="lost", source=r.source.split(";")[0]))
    return out


def _spec(model: str) -> str:
    from qkv.tools.catalog.models import get_model

    caps = get_model(model).capabilities
    return caps.specialisation if caps else "general"


def _lang_source(model: str) -> str:
    from qkv.tools.catalog.models import get_model

    caps = get_model(model).capabilities
    return caps.languages_source.split(":")[0] if caps else "no language table in the catalog"


def _size(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def _tokens(n: float | None) -> str:
    return "unpublished" if not n else (f"{n / 1e12:g}T" if n >= 1e12 else f"{n / 1e9:g}B")


def _stage(alive: list[Candidate], warnings: list[str], kind: str, name: str, keep: Callable[[Candidate], bool],
           why: Callable[[Candidate], str]) -> list[Candidate]:
    """One filter: the candidates that pass, each loser given its reason; relaxed (all kept) when none pass."""
    passed = [c for c in alive if keep(c)]
    if not passed:
        warnings.append(f"no catalog {kind} model passes the {name} filter: it was relaxed")
        return alive
    for c in alive:
        if not keep(c):
            c.reasons.append(why(c))
    return passed


def _size_stage(alive: list[Candidate], budget: float, warnings: list[str]) -> list[Candidate]:
    """Models within 1.5x of the size budget (params); when none is, the single nearest in log-size."""
    within = [c for c in alive if within_size_band(c.params, budget)]
    if within:
        for c in alive:
            if c not in within:
                c.reasons.append(f"{_size(c.params)} is outside 1.5× of the {_size(budget)} size")
        return within
    near = min(alive, key=lambda c: abs(math.log(c.params / budget)))
    warnings.append(f"no capable model within 1.5× of {_size(budget)}: the nearest, {near.model} "
                    f"({_size(near.params)}), is used")
    for c in alive:
        if c is not near:
            c.reasons.append(f"{_size(c.params)} is further from {_size(budget)} than {near.model}")
    return [near]


def _filter(req: ChoiceRequest, rows: list[Candidate], warnings: list[str]) -> tuple[list[Candidate], bool]:
    """The survivors of the filters in the module's order, and whether any window covered the need."""
    alive = list(rows)
    if req.languages:
        def missing(c: Candidate) -> list[str]:
            return [lang for lang in req.languages if lang not in c.languages]
        alive = _stage(alive, warnings, req.kind, "language", lambda c: not missing(c),
                       lambda c: f"does not cover {', '.join(missing(c))} ({_lang_source(c.model)})")
    if req.code:
        alive = _stage(alive, warnings, req.kind, "code-specialisation", lambda c: _spec(c.model) == "code",
                       lambda c: "a general model; a code-specialised model of the kind exists")
    else:
        alive = _stage(alive, warnings, req.kind, "general-purpose", lambda c: _spec(c.model) != "code",
                       lambda c: "code-specialised; this is not a code task")
    if req.params:
        alive = _size_stage(alive, req.params, warnings)
    covered = any(_window(c) >= req.need_tokens for c in alive)
    alive = _stage(alive, warnings, req.kind, "context", lambda c: _window(c) >= req.need_tokens,
                   lambda c: f"{'effective' if c.effective_context else 'claimed'} window {_window(c):,} < the "
                             f"{req.need_tokens:,} tokens needed")
    if req.instruct:
        alive = _stage(alive, warnings, req.kind, "instruct-variant", lambda c: c.variant == "instruct",
                       lambda c: "a base (pretrained-only) model; an instruct variant of the same size is the start "
                                 "for chat and serving")
    return alive, covered


def _rank_key(req: ChoiceRequest, covered: bool) -> Callable[[Candidate], tuple]:
    """Sort key of the survivors: covering window, pretraining tokens, variant, closeness to the budget, name."""
    def rank(c: Candidate) -> tuple:
        size = abs(math.log(c.params / req.params)) if req.params else c.params
        longest = 0 if covered else -_window(c)  # nothing covers the need: the longest window first
        # Same data, base vs instruct: the base model is the start for task fine-tuning, the instruct one for chat.
        variant = (c.variant == "instruct") != req.instruct
        return (longest, -(c.pretraining_tokens or 0.0), variant, round(size, 1), c.model)

    return rank


def _ranked_below(c: Candidate, best: Candidate, req: ChoiceRequest, covered: bool) -> str:
    """Why a survivor ranked below the chosen model."""
    if not covered and _window(c) < _window(best):
        return f"ranked below {best.model}: window {_window(c):,} < {_window(best):,}"
    if c.pretraining_tokens == best.pretraining_tokens and c.variant != best.variant:
        return (f"same pretraining data as {best.model}; "
                + ("the instruct variant is the start for chat and serving" if req.instruct else
                   "the base model is the start for task fine-tuning"))
    if c.pretraining_tokens == best.pretraining_tokens:
        return (f"same pretraining data as {best.model}, which is "
                + ("closer to the size budget" if req.params else "smaller"))
    if best.pretraining_tokens:
        return (f"ranked below {best.model}: {_tokens(c.pretraining_tokens)} pretraining tokens vs "
                f"{_tokens(best.pretraining_tokens)} (more data at a similar size lowers the loss; "
                "Hoffmann et al. 2022)")
    return f"ranked below {best.model} by size and name"


def _rationale(req: ChoiceRequest, best: Candidate) -> str:
    """Why the chosen model: the filters it passed and its pretraining data, in one sentence."""
    parts = [f"the catalog {req.kind} model"]
    if req.languages:
        parts.append(f"covering {', '.join(req.languages)}")
    if req.params:
        parts.append(f"within 1.5× of {_size(req.params)}")
    parts.append(f"whose {'effective ' if best.effective_context else ''}window covers {req.need_tokens:,} tokens"
                 if _window(best) >= req.need_tokens else "(no model's window covers the need: the context step "
                 "extends it)")
    if req.instruct and best.variant == "instruct":
        parts.append("instruction-tuned (chat/serving)")
    if best.pretraining_tokens:
        parts.append(f"with the most pretraining data among those left ({_tokens(best.pretraining_tokens)} tokens)")
    return ", ".join(parts)


def choose_model(req: ChoiceRequest) -> ModelChoice:
    """The catalog model for a task's languages, domain, size, context need and use (chat/serving),
    with every other candidate and the reason it lost."""
    rows = _rows(req.kind)
    warnings: list[str] = []
    alive, covered = _filter(req, rows, warnings)
    alive.sort(key=_rank_key(req, covered))
    best = alive[0]
    best.verdict = "chosen"
    for c in alive[1:]:
        c.reasons.append(_ranked_below(c, best, req, covered))
    order = {c.model: i for i, c in enumerate(alive)}
    table = sorted(rows, key=lambda c: (c.verdict != "chosen", order.get(c.model, len(order)), c.model))
    return ModelChoice(chosen=best.model, rationale=_rationale(req, best), candidates=table, warnings=warnings,
                       sources=["hoffmann2022", "hsieh2024"])
