"""Context rules (hard rule 1): the required length against the model's window and, when it is
exceeded, the options with their costs: RoPE scaling (linear, dynamic NTK, YaRN, Llama 3 type,
with the config block), a sliding window, an ALiBi model, chunking or retrieval, a long-context
base model. Each option's KV cache comes from the memory estimator (qkv.tools.memory.infer).

Whatever the option, models use the middle of a long context worst (Liu et al. 2023,
"Lost in the Middle"): put the facts that matter at the start or the end."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from qkv.tools.arch import ModelSpec
from qkv.tools.errors import BadInput, ContextExceeded
from qkv.tools.knowledge.schema import SEQ_ALIASES, Figure, also, analytic, cited, collect_sources, resolve_ref
from qkv.tools.memory.dtypes import KvFormat

Action = Literal["ok", "rope_scaling", "sliding_window", "chunking", "long_context_model"]
OptionKind = Literal["rope_scaling", "sliding_window", "alibi_model", "chunking", "long_context_model"]

# The rope_type values transformers' ROPE_INIT_FUNCTIONS understands ('default' is plain RoPE).
ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "longrope", "llama3")

# Largest extension factor each method has been shown to reach (× the original window).
ROPE_MAX_FACTOR = {
    "linear": 16,  # Chen et al. 2023: LLaMA 2,048 → 32,768 after ~1,000 fine-tuning steps
    "dynamic": 4,  # no fine-tuning; quality falls off beyond a few × (Peng et al. 2023 comparisons); qkv's bound
    "yarn": 32,  # Peng et al. 2023: Llama 2 4,096 → 131,072 (×32) with ~400 fine-tuning steps
    "llama3": 16,  # Llama 3.1: 8,192 → 131,072 with continued pre-training
}

LOST_IN_THE_MIDDLE = ("Lost in the middle (Liu et al. 2023): accuracy is highest when the relevant text is at the "
                      "start or the end of the context and drops when it sits in the middle, even within the window; "
                      "put instructions and key facts at the edges, or retrieve only what is needed.")
# T5 has relative positions and no hard window; it was pre-trained on 512-token inputs (Raffel et al. 2020).
RELATIVE_PRETRAIN_TOKENS = 512


class ContextRequest(BaseModel):
    """A model and the number of tokens the task must hold at once (prompt + generated)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="catalog name, config.json, model folder, .gguf, or hub id (online)")
    tokens: int = Field(validation_alias=AliasChoices("tokens", "seq", *SEQ_ALIASES), json_schema_extra={"minimum": 1},
                        description="tokens the task needs in context at once (prompt + output)"
                                    + also("seq", *SEQ_ALIASES))
    batch: int = Field(1, validation_alias=AliasChoices("batch", "batch_size"), json_schema_extra={"minimum": 1},
                       description="sequences decoded together (multiplies the KV cache)" + also("batch_size"))
    kv_dtype: KvFormat = Field("bf16", validation_alias=AliasChoices("kv_dtype", "kv_cache_dtype"),
                               description="KV-cache element format" + also("kv_cache_dtype"))
    need_full_attention: bool = Field(
        False, description="every token must attend to every other (rules out chunking and sliding windows)")
    config: dict[str, Any] | None = Field(
        None, description="an HF config.json object to check instead of resolving `model` (e.g. a proposed "
                          "architecture); `model` then only names it")
    online: bool = Field(False, description="allow fetching config.json from the hub")


class ContextOption(BaseModel):
    """One way to serve the required length, with its cost."""

    kind: OptionKind
    name: str
    applicable: bool
    reason: str = Field(description="why it applies (or why not)")
    max_tokens: int | None = Field(None, description="longest context the option supports (None: any length)")
    attends_whole_context: bool
    needs_finetuning: str
    config_block: dict[str, Any] | None = Field(None, description="rope_scaling block for config.json (4.x)")
    rope_parameters: dict[str, Any] | None = Field(None, description="the same for transformers 5 (rope_parameters)")
    model: str | None = Field(None, description="the model this option runs on, when it is another model")
    kv_cache: Figure | None = None
    sources: list[str] = Field(default_factory=list)


class ContextPlan(BaseModel):
    """Whether the required length fits the window, and if not, what to do about it."""

    request: ContextRequest
    model: str
    window: Figure
    required: int
    fits: bool
    factor: float = Field(description="required / window")
    action: Action
    kv_bytes_per_token: Figure
    kv_cache: Figure = Field(description="KV cache of the unchanged model at the required length")
    attention_type: str
    existing_rope_scaling: dict[str, Any] | None = None
    options: list[ContextOption] = Field(default_factory=list)
    recommended: ContextOption | None = None
    caveats: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


def _kv(spec: ModelSpec, name: str, tokens: int, req: ContextRequest, note: str | None = None) -> Figure:
    """KV-cache bytes of `spec` holding `tokens` tokens, from the memory estimator."""
    from qkv.tools.memory.infer import kv_cache_term
    from qkv.tools.memory.schema import MemoryRequest

    term = kv_cache_term(spec, MemoryRequest(model=name, method="inference", seq=tokens, batch=req.batch,
                                             kv_dtype=req.kv_dtype))
    if term is None:
        return analytic(0, "encoder-only: no KV cache", unit="bytes", note=note)
    return analytic(term.bytes, term.formula, unit="bytes", note=note or term.note)


def rope_block(rope_type: str, factor: float, window: int, theta: float | None) -> tuple[dict, dict]:
    """The `rope_scaling` block (config.json, transformers 4.x) and `rope_parameters` (5.x) for a type."""
    if rope_type not in ROPE_TYPES[1:]:
        raise BadInput(f"unknown rope_type '{rope_type}'", choices=ROPE_TYPES[1:])
    block: dict[str, Any] = {"rope_type": rope_type, "factor": float(factor)}
    if rope_type == "yarn":
        block.update(original_max_position_embeddings=window,
                     attention_factor=round(0.1 * math.log(factor) + 1.0, 6), beta_fast=32.0, beta_slow=1.0)
    elif rope_type == "llama3":
        block.update(low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=window)
    params = {"rope_theta": theta or 10_000.0, **block}
    return block, params


def _rope_options(spec: ModelSpec, name: str, window: int, req: ContextRequest) -> list[ContextOption]:
    need = req.tokens / window
    factor = float(math.ceil(need))
    kv = _kv(spec, name, req.tokens, req, note="RoPE scaling changes positions, not the cache size")
    if spec.position != "rope":
        why = (f"{name} has {spec.position} positions" +
               (f" (a learned table of {window:,} rows)" if spec.position == "learned" else ""))
        return [ContextOption(kind="rope_scaling", name=t, applicable=False, reason=why + "; RoPE scaling needs RoPE",
                              attends_whole_context=True, needs_finetuning="n/a", sources=["su2021"])
                for t in ("linear", "dynamic", "yarn", "llama3")]
    info = {
        "linear": ("Position Interpolation: positions divided by the factor", "yes, ~1,000 steps at the new length",
                   ["chen2023", "hf-rope"]),
        "dynamic": ("Dynamic NTK: RoPE base grows with the sequence once past the window", "no",
                    ["peng2023", "hf-rope"]),
        "yarn": ("YaRN: per-frequency interpolation + attention temperature 0.1·ln(factor)+1",
                 "works without; best after ~400 steps at the new length", ["peng2023", "hf-rope"]),
        "llama3": ("Llama 3.1 type: low frequencies interpolated, high kept, smooth between",
                   "yes, long-context continued pre-training (as Llama 3.1)",
                   ["llama31-config", "dubey2024", "hf-rope"]),
    }
    out = []
    for rope_type, (what, ft, srcs) in info.items():
        limit = window * ROPE_MAX_FACTOR[rope_type]
        ok = req.tokens <= limit
        block, params = rope_block(rope_type, factor, window, spec.rope_theta)
        reason = f"{what}; ×{factor:g} → {int(window * factor):,} tokens"
        if not ok:
            reason += f"; beyond the ×{ROPE_MAX_FACTOR[rope_type]} ({limit:,} tokens) it has been shown to reach"
        out.append(ContextOption(kind="rope_scaling", name=rope_type, applicable=ok, reason=reason, max_tokens=limit,
                                 attends_whole_context=True, needs_finetuning=ft, config_block=block,
                                 rope_parameters=params, kv_cache=kv, sources=srcs))
    return out


def _sliding_option(spec: ModelSpec, name: str, window: int, req: ContextRequest) -> ContextOption:
    w = spec.sliding_window or window
    windowed = spec.model_copy(update={"sliding_window": w, "sliding_layers": spec.layers})
    native = spec.sliding_window is not None and spec.sliding_layers == spec.layers
    reason = (f"every layer attends to the last {w:,} tokens; information travels further only through depth "
              f"(~{w * spec.layers:,} tokens over {spec.layers} layers); keep attention-sink tokens when streaming")
    if not native:
        reason = ("not trained with a window: needs StreamingLLM-style attention sinks or fine-tuning; " + reason)
    return ContextOption(
        kind="sliding_window", name=f"sliding window {w:,}", applicable=not req.need_full_attention,
        reason=reason if not req.need_full_attention else "the task needs full attention over every token",
        max_tokens=None, attends_whole_context=False, needs_finetuning="no" if native else "recommended",
        kv_cache=_kv(windowed, name, req.tokens, req, note=f"a rolling buffer of {w:,} tokens per layer"),
        sources=["jiang2023", "beltagy2020", "xiao2023"])


def _alibi_option(spec: ModelSpec, name: str, window: int, req: ContextRequest) -> ContextOption:
    alibi = spec.model_copy(update={"position": "alibi"})
    limit = 2 * window  # Press et al. 2022: trained on L tokens, perplexity holds to ~2L and gains nothing beyond
    return ContextOption(
        kind="alibi_model", name="a model with ALiBi positions (MPT, BLOOM)", applicable=req.tokens <= limit,
        reason="linear attention biases extrapolate past the training length (Press et al. 2022): a model trained "
               f"on this window ({window:,}) holds its perplexity to about twice that ({limit:,}); far beyond, the "
               "bias makes attention effectively local. The cache grows like full attention (this model's shape).",
        max_tokens=limit, attends_whole_context=True, needs_finetuning="no (switching models)",
        kv_cache=_kv(alibi, name, req.tokens, req, note="same shape as this model, ALiBi positions"),
        sources=["press2022"])


def _chunking_option(spec: ModelSpec, name: str, window: int, req: ContextRequest) -> ContextOption:
    chunk = max(1, int(window * 0.75))  # leave a quarter of the window for instructions and the answer
    n = math.ceil(req.tokens / chunk)
    return ContextOption(
        kind="chunking", name=f"chunking / retrieval ({n} chunks of {chunk:,})",
        applicable=not req.need_full_attention,
        reason=(f"map-reduce over {n} chunks (summarisation) or retrieve the relevant chunks (QA, RAG): any length, "
                "no cross-chunk attention, n model calls" if not req.need_full_attention
                else "the task needs full attention over every token"),
        max_tokens=None, attends_whole_context=False, needs_finetuning="no",
        kv_cache=_kv(spec, name, min(window, req.tokens), req, note=f"one window of {window:,} tokens at a time"),
        sources=["lewis2020rag"])


def _long_context_models(spec: ModelSpec, params: int, req: ContextRequest) -> list[ContextOption]:
    from qkv.tools.arch import spec_from_config
    from qkv.tools.catalog.models import list_models
    from qkv.tools.inventory import inventory

    rows = []
    for entry in list_models():
        s = spec_from_config(entry.config)
        if s.kind != "decoder" or not s.max_positions or s.max_positions < req.tokens:
            continue
        n = sum(g.numel for g in inventory(s))
        rows.append((abs(math.log(n / params)), entry.name, s, n))
    out = []
    for _, other, s, n in sorted(rows)[:3]:
        out.append(ContextOption(
            kind="long_context_model", name=other, model=other, applicable=True,
            reason=f"a {n / 1e9:.2f}B-parameter base model trained for {s.max_positions:,} tokens "
                   f"({s.attention_type}, {s.kv_heads} KV heads)",
            max_tokens=s.max_positions, attends_whole_context=True, needs_finetuning="re-fine-tune on your task",
            kv_cache=_kv(s, other, req.tokens, req), sources=["qkv-models"]))
    return out


def _recommend(plan_fits: bool, options: list[ContextOption], spec: ModelSpec, factor: float, params: int,
               ) -> ContextOption | None:
    usable = [o for o in options if o.applicable]
    if plan_fits:
        return None

    def pick(kind: str, name: str | None = None) -> ContextOption | None:
        return next((o for o in usable if o.kind == kind and (name is None or o.name == name)), None)

    similar = [o for o in usable if o.kind == "long_context_model" and o.model]
    if factor <= 4 and (choice := pick("rope_scaling", "yarn")):
        return choice
    if similar:
        return similar[0]
    if choice := pick("rope_scaling", "yarn"):
        return choice
    if spec.sliding_window and (choice := pick("sliding_window")):
        return choice
    return pick("chunking") or pick("rope_scaling") or (usable[0] if usable else None)


def context_plan(req: ContextRequest) -> ContextPlan:
    """Does the required length fit the model's window? If not: the options (RoPE scaling with the
    config block, sliding window, ALiBi, chunking/retrieval, a long-context model), their KV caches,
    and a recommended action. ContextExceeded when no option reaches the length."""
    from qkv.tools.arch import spec_from_config
    from qkv.tools.inventory import inventory

    if req.tokens <= 0:
        raise BadInput(f"--tokens is {req.tokens}", expected="a positive number of tokens")
    if req.batch <= 0:
        raise BadInput(f"--batch is {req.batch}", expected="a positive integer")
    resolved = resolve_ref(req.model, req.config, req.online)
    spec = spec_from_config(resolved.config)
    name = resolved.name
    params = sum(g.numel for g in inventory(spec))
    if spec.max_positions is None:
        window = RELATIVE_PRETRAIN_TOKENS
        window_fig = analytic(window, "relative positions: no hard limit; pre-trained on 512-token inputs",
                              unit="tokens")
    else:
        window = spec.max_positions
        window_fig = (cited(window, "qkv-models", unit="tokens", note=f"max_position_embeddings of {name}")
                      if resolved.origin == "catalog" else
                      analytic(window, f"max_position_embeddings read from {resolved.source}", unit="tokens"))
    fits = req.tokens <= window
    per_token = _kv(spec, name, 1, req.model_copy(update={"batch": 1}))
    per_token = per_token.model_copy(update={
        "note": f"{spec.attention_type}: {spec.heads} query heads share {spec.kv_heads} KV heads "
                f"(×{spec.heads // spec.kv_heads} smaller than MHA)" if spec.kv_heads != spec.heads else "MHA",
        "sources": ["ainslie2023", "pope2022"] if spec.kv_heads != spec.heads else ["pope2022"]})
    plan = ContextPlan(
        request=req, model=name, window=window_fig, required=req.tokens, fits=fits, factor=req.tokens / window,
        action="ok", kv_bytes_per_token=per_token, kv_cache=_kv(spec, name, req.tokens, req),
        attention_type=spec.attention_type, existing_rope_scaling=spec.rope_scaling,
        caveats=[LOST_IN_THE_MIDDLE],
    )
    if spec.sliding_window:
        plan.caveats.append(f"{name} already uses a {spec.sliding_window:,}-token sliding window on "
                            f"{spec.sliding_layers} of {spec.layers} layers; those layers hold at most that many "
                            "tokens.")
    if not fits:
        if spec.rope_scaling:
            plan.caveats.append(f"{name} already applies rope_scaling {spec.rope_scaling}; further factors are "
                                "relative to its extended window and compound with it.")
        options = _rope_options(spec, name, window, req)
        options.append(_sliding_option(spec, name, window, req))
        options.append(_alibi_option(spec, name, window, req))
        options.append(_chunking_option(spec, name, window, req))
        options += _long_context_models(spec, params, req)
        plan.options = options
        plan.recommended = _recommend(fits, options, spec, plan.factor, params)
        if plan.recommended is None:
            longest = max((o.max_tokens or 0) for o in options)
            raise ContextExceeded(
                f"{req.tokens:,} tokens exceed {name}'s {window:,}-token window and every option qkv knows "
                f"(the longest reaches {longest:,} tokens with full attention)",
                expected=f"--tokens ≤ {longest:,}, or allow chunking/retrieval (drop --need-full-attention)",
                choices=[o.name for o in options if o.kind == "rope_scaling"])
        kind = plan.recommended.kind
        plan.action = "long_context_model" if kind in ("long_context_model", "alibi_model") else kind  # type: ignore[assignment]
    plan.sources = collect_sources(plan, "liu2023")
    return plan

