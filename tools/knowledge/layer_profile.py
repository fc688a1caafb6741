"""The layer profile of a model: per layer its attention (MHA/GQA/MQA and the query-group ratio,
global or sliding window), heads, KV heads, head dim, MoE experts and top-k; the model's parameter
shares (attention / MLP / embeddings); and the quadratic share at a sequence length.

FLOP convention (Hoffmann et al. 2022, Appendix F; Kaplan et al. 2020 §2.1): a forward pass spends
2 FLOPs per parameter per token in the linear layers, and 4·s·s_eff·(heads·head_dim) per layer on
the attention scores (QKᵀ and the weighted sum of V), with s_eff = min(s, window) for sliding
layers. The full score matrix is counted; a causal kernel that skips masked blocks halves it
(and doubles the crossover length)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from qkv.tools.arch import ModelSpec
from qkv.tools.errors import BadInput
from qkv.tools.knowledge.schema import SEQ_ALIASES, Figure, also, analytic, collect_sources, resolve_ref

SCORE_BYTES = 2  # bf16 attention scores when an eager kernel materialises them
ACT_BYTES = 2  # bf16 activations


class ProfileRequest(BaseModel):
    """A model and the sequence length of the task."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="catalog name, config.json, model folder, .gguf, or hub id (online)")
    seq: int = Field(2048, validation_alias=AliasChoices("seq", *SEQ_ALIASES), json_schema_extra={"minimum": 1},
                     description="tokens per sequence at which attention and linear cost are compared"
                                 + also(*SEQ_ALIASES))
    config: dict[str, Any] | None = Field(
        None, description="an HF config.json object to profile instead of resolving `model` (e.g. a proposed "
                          "architecture); `model` then only names it")
    online: bool = Field(False, description="allow fetching config.json from the hub")


class LayerInfo(BaseModel):
    """One Transformer block."""

    index: int
    block: Literal["decoder", "encoder"]
    attention: Literal["global", "sliding", "bidirectional"]
    window: int | None = Field(None, description="tokens a sliding layer attends to")
    attention_type: Literal["MHA", "GQA", "MQA"]
    heads: int
    kv_heads: int
    head_dim: int
    group_ratio: int = Field(description="query heads per KV head")
    cross_attention: bool = False
    experts: int = 0
    experts_per_token: int = 0
    params_attention: int
    params_mlp: int = Field(description="all experts for MoE")
    params_mlp_active: int = Field(description="the experts a token uses (router included)")
    linear_flops: float = Field(description="forward FLOPs of the layer's linear maps for one sequence")
    attention_score_flops: float = Field(description="forward FLOPs of QKᵀ and attention·V for one sequence")
    score_bytes_eager: int = Field(description="score matrix bytes if materialised (eager kernel), one sequence")
    linear_activation_bytes: int = Field(description="bytes of the layer's linear outputs for one sequence")
    kv_bytes_per_token: int = Field(description="K and V bytes per token in bf16 (0 for encoders)")


class LayerProfile(BaseModel):
    """Per-layer structure, parameter shares and the quadratic share at a sequence length."""

    request: ProfileRequest
    model: str
    layers: list[LayerInfo]
    pattern: str = Field(description="the layer pattern in words, e.g. 'sliding 512 ×5, global ×1; repeated 3×'")
    attention_type: str
    heads: int
    kv_heads: int
    head_dim: int
    experts: int
    experts_per_token: int
    params_total: int
    params_active: int
    share_attention: Figure
    share_mlp: Figure
    share_embeddings: Figure = Field(description="input embeddings, positions and an untied LM head")
    share_norm_bias: Figure
    attention_score_flops: Figure = Field(description="all layers, one sequence, forward")
    linear_flops: Figure = Field(description="all layers' linear maps, one sequence, forward (LM head excluded)")
    lm_head_flops: Figure
    attention_share: Figure = Field(description="score FLOPs / (score + linear FLOPs) over the layers")
    score_memory_ratio: Figure = Field(description="eager score-matrix bytes / linear activation bytes, per layer mean")
    crossover_seq: Figure = Field(description="sequence length where score FLOPs equal linear FLOPs (None: never)")
    notes: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


def layer_kinds(config: dict[str, Any], spec: ModelSpec) -> list[str]:
    """'sliding' or 'global' per decoder layer, from `layer_types` or the family's known pattern."""
    types = config.get("layer_types")
    if types and len(types) == spec.layers:
        return ["sliding" if t == "sliding_attention" else "global" for t in types]
    if not spec.sliding_window or not spec.sliding_layers:
        return ["global"] * spec.layers
    if spec.sliding_layers == spec.layers:
        return ["sliding"] * spec.layers
    if spec.model_type == "gemma2":
        return ["sliding" if i % 2 == 0 else "global" for i in range(spec.layers)]  # even layers are local
    period = round(spec.layers / (spec.layers - spec.sliding_layers))
    return ["global" if (i + 1) % period == 0 else "sliding" for i in range(spec.layers)]


def describe_pattern(kinds: list[str], window: int | None) -> str:
    """Collapse per-layer kinds into runs and find their period."""
    runs: list[tuple[str, int]] = []
    for k in kinds:
        if runs and runs[-1][0] == k:
            runs[-1] = (k, runs[-1][1] + 1)
        else:
            runs.append((k, 1))

    def word(k: str, n: int) -> str:
        return f"{k} {window:,} ×{n}" if k == "sliding" and window else f"{k} ×{n}"

    for p in range(1, len(runs) + 1):
        if len(runs) % p == 0 and runs == runs[:p] * (len(runs) // p):
            body = ", ".join(word(k, n) for k, n in runs[:p])
            reps = len(runs) // p
            return body + (f"; repeated {reps}×" if reps > 1 else "")
    return ", ".join(word(k, n) for k, n in runs)


def _per_layer_params(spec: ModelSpec) -> dict[str, dict[str, int]]:
    """{block: {role: params of ONE layer}} from the foundation's inventory (biases join their linear)."""
    from qkv.tools.inventory import inventory

    groups = inventory(spec)
    role_of = {g.name: g.role for g in groups}
    out: dict[str, dict[str, int]] = {}
    for g in groups:
        if g.block is None:
            continue
        role = role_of.get(g.name.removesuffix(".bias"), g.role) if g.role == "bias" else g.role
        one = g.numel // g.repeat
        out.setdefault(g.block, {})
        out[g.block][role] = out[g.block].get(role, 0) + one
    return out


def _crossover(per_layer: list[tuple[int, int | None, float]]) -> int | None:
    """Smallest s with Σ 2·s_eff·q_dim ≥ Σ P_linear (FLOPs per token); None when sliding windows cap it."""
    need = sum(p for _, _, p in per_layer)

    def lhs(s: float) -> float:
        return sum(2 * (min(s, w) if w else s) * q for q, w, _ in per_layer)

    if all(w for _, w, _ in per_layer) and lhs(1e18) < need:
        return None
    lo, hi = 1, 1
    while lhs(hi) < need:
        hi *= 2
        if hi > 1e15:
            return None
    while lo < hi:
        mid = (lo + hi) // 2
        if lhs(mid) >= need:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _layer_plan(config: dict[str, Any], spec: ModelSpec) -> list[tuple[str, str]]:
    """(block, attention kind) per layer, encoder layers first."""
    if spec.kind == "encoder-decoder":
        return [("encoder", "bidirectional")] * spec.encoder_layers + [("decoder", "global")] * spec.layers
    if spec.kind == "encoder":
        return [("encoder", "bidirectional")] * spec.layers
    return [("decoder", k) for k in layer_kinds(config, spec)]


def _layer_info(i: int, block: str, kind: str, spec: ModelSpec, p: dict[str, int],
                s: int) -> tuple[LayerInfo, tuple[int, int | None, float]]:
    """One layer's row at sequence length `s` (tokens), and its (q_dim, window, linear params) for the crossover."""
    q_dim = spec.q_dim
    cross = spec.kind == "encoder-decoder" and block == "decoder"
    attn = p.get("attention", 0)
    mlp_all = p.get("mlp", 0) + p.get("experts", 0) + p.get("router", 0)
    if spec.experts:
        active = p.get("router", 0) + p.get("experts", 0) * spec.experts_per_token // spec.experts
    else:
        active = mlp_all
    window = spec.sliding_window if kind == "sliding" else None
    s_eff = min(s, window) if window else s
    n_attn = 2 if cross else 1  # T5 decoder: self- and cross-attention (encoder length taken = s)
    score_flops = 4.0 * s * s_eff * q_dim * n_attn
    linear_flops = 2.0 * s * (attn + active)
    # Output widths of the linear maps (elements per token): q, k, v, o per attention, then the MLP's.
    lin_out = (q_dim + 2 * spec.kv_dim + spec.hidden) * n_attn + (
        (2 if spec.gated_mlp else 1) * spec.intermediate * max(1, spec.experts_per_token) + spec.hidden)
    info = LayerInfo(
        index=i, block=block, attention=kind, window=window, attention_type=spec.attention_type,
        heads=spec.heads, kv_heads=spec.kv_heads, head_dim=spec.head_dim, group_ratio=spec.heads // spec.kv_heads,
        cross_attention=cross, experts=spec.experts, experts_per_token=spec.experts_per_token,
        params_attention=attn, params_mlp=mlp_all, params_mlp_active=active, linear_flops=linear_flops,
        attention_score_flops=score_flops, score_bytes_eager=int(spec.heads * s * s_eff * SCORE_BYTES * n_attn),
        linear_activation_bytes=int(s * lin_out * ACT_BYTES),
        kv_bytes_per_token=0 if block == "encoder" else 2 * spec.kv_dim * 2 * n_attn)
    return info, (q_dim * n_attn, window, float(attn + active))


def _profile_notes(spec: ModelSpec, layers: list[LayerInfo], crossover: int | None, active: int,
                   total: int) -> list[str]:
    """What the reader should know: where attention overtakes, sliding and MoE caveats, eager scores."""
    notes: list[str] = []
    if crossover is None:
        notes.append("Sliding windows cap every layer's score cost: attention never overtakes the linear layers.")
    else:
        notes.append(f"Attention-score FLOPs overtake the linear layers at {crossover:,} tokens (full score matrix; "
                     f"a causal kernel that skips masked blocks moves this to ~{2 * crossover:,}).")
    if spec.sliding_window and any(x.attention == "global" for x in layers):
        notes.append("Only the global layers keep growing quadratically; the sliding layers' cost is linear in s "
                     "beyond the window.")
    if spec.experts:
        notes.append(f"MoE: {spec.experts} experts, top-{spec.experts_per_token} per token; linear FLOPs count the "
                     f"active experts ({active / 1e9:.2f}B of {total / 1e9:.2f}B parameters).")
    notes.append("Eager attention materialises the score matrix (score_bytes_eager); SDPA/flash kernels keep "
                 "O(s) memory instead.")
    return notes


def _extra_sources(spec: ModelSpec) -> list[str]:
    """Sources for the attention type, the sliding-window family and MoE, beyond the figures' own."""
    extra = ["ainslie2023"] if spec.attention_type == "GQA" else (["shazeer2019"] if spec.attention_type == "MQA"
                                                                  else [])
    if spec.sliding_window:
        extra += ["jiang2023"] if spec.model_type in ("mistral", "mixtral") else ["gemma2024", "gemma2025"]
    if spec.experts:
        extra.append("jiang2024")
    return extra


def layer_profile(req: ProfileRequest) -> LayerProfile:
    """Per-layer attention type, heads, KV heads, head dim, window pattern and MoE routing; parameter
    shares; attention-score vs linear FLOPs and memory at `seq`; the length where attention dominates."""
    from qkv.tools.arch import spec_from_config
    from qkv.tools.params import count_params

    if req.seq <= 0:
        raise BadInput(f"--seq is {req.seq}", expected="a positive number of tokens")
    resolved = resolve_ref(req.model, req.config, req.online)
    spec = spec_from_config(resolved.config)
    count = count_params(resolved)
    blocks = _per_layer_params(spec)
    s = req.seq
    rows = [_layer_info(i, block, kind, spec, blocks[block], s)
            for i, (block, kind) in enumerate(_layer_plan(resolved.config, spec))]
    layers = [info for info, _ in rows]
    cross_terms = [terms for _, terms in rows]

    total_score = sum(x.attention_score_flops for x in layers)
    total_linear = sum(x.linear_flops for x in layers)
    lm_head = 2.0 * s * spec.vocab * spec.hidden if spec.kind != "encoder" else 0.0
    total = count.total
    emb = count.embedding + count.lm_head
    crossover = _crossover(cross_terms)
    mem_ratio = sum(x.score_bytes_eager / x.linear_activation_bytes for x in layers) / len(layers)
    conv = ("hoffmann2022", "kaplan2020")
    notes = _profile_notes(spec, layers, crossover, count.active, total)
    kinds = [x.attention for x in layers if x.block == "decoder"] or [x.attention for x in layers]
    profile = LayerProfile(
        request=req, model=resolved.name, layers=layers,
        pattern=describe_pattern(kinds, spec.sliding_window), attention_type=spec.attention_type,
        heads=spec.heads, kv_heads=spec.kv_heads, head_dim=spec.head_dim, experts=spec.experts,
        experts_per_token=spec.experts_per_token, params_total=total, params_active=count.active,
        share_attention=analytic(count.attention / total, "attention params / total (qkv params)", unit="fraction"),
        share_mlp=analytic(count.mlp / total, "MLP (all experts) params / total", unit="fraction"),
        share_embeddings=analytic(emb / total, "(embeddings + untied LM head) / total", unit="fraction"),
        share_norm_bias=analytic(count.norm_and_bias / total, "norms and biases / total", unit="fraction"),
        attention_score_flops=analytic(total_score, "Σ_layers 4·s·s_eff·heads·head_dim", *conv, unit="FLOPs"),
        linear_flops=analytic(total_linear, "Σ_layers 2·s·(attention + active MLP params)", *conv, unit="FLOPs"),
        lm_head_flops=analytic(lm_head, "2·s·vocab·hidden", *conv, unit="FLOPs"),
        attention_share=analytic(total_score / (total_score + total_linear), "score / (score + linear)", *conv,
                                 unit="fraction"),
        score_memory_ratio=analytic(mem_ratio, "heads·s·s_eff·2 B / (s·linear output width·2 B), mean over layers",
                                    unit="ratio"),
        crossover_seq=analytic(crossover, "smallest s with Σ 2·s_eff·heads·head_dim ≥ Σ linear params per layer",
                               *conv, unit="tokens"),
        notes=notes,
    )
    profile.sources = collect_sources(profile, *_extra_sources(spec))
    return profile
