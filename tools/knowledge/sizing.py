"""Architecture sizing from scratch: a parameter target (or a compute budget) → a decoder-only
Transformer's depth, width, heads, KV heads, FFN size, head dim, vocabulary, norm and position
encoding, counted exactly with the foundation's counter and compared with published models.

The rules, each from the models that worked:
- width/depth ("aspect ratio" d_model / n_layers): the median of the published models nearest in
  size (Kaplan et al. 2020 §3.1 found loss flat over a wide range of shapes, so the convention of
  successful models is the guide, not a law);
- head dim 64 below 1B parameters, 128 above (GPT-3 Table 2.1, Llama);
- grouped-query attention with query groups of ≥ 4 and at most 8 KV heads (Ainslie et al. 2023;
  Llama 3 uses 8 KV heads at 8B and 70B);
- SwiGLU FFN of 8/3·d_model rounded up to a multiple of 256 (Shazeer 2020; Llama's multiple_of);
- RMSNorm (Zhang & Sennrich 2019) and RoPE (Su et al. 2021) as in Llama, Mistral, Qwen, Gemma.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from qkv.tools.errors import BadInput
from qkv.tools.knowledge.schema import Figure, also, analytic, cited, collect_sources
from qkv.tools.knowledge.tables import gpt3_table21


class SizeRequest(BaseModel):
    """What to size: a parameter target or a training-compute budget (Chinchilla-optimal N)."""

    model_config = ConfigDict(extra="forbid")

    params: float | None = Field(None, json_schema_extra={"minimum": 1e6, "maximum": 1e13},
                                 description="target total parameters (e.g. 1e9)")
    flops: float | None = Field(None, json_schema_extra={"exclusiveMinimum": 0},
                                description="training budget in FLOPs; N is its Chinchilla optimum")
    vocab: int | None = Field(None, validation_alias=AliasChoices("vocab", "vocab_size"),
                              json_schema_extra={"minimum": 2},
                              description="vocabulary size (default: 32,000 below 3B params, 128,256 above)"
                                          + also("vocab_size"))
    context: int = Field(4096, validation_alias=AliasChoices("context", "context_length", "max_position_embeddings"),
                         json_schema_extra={"minimum": 16},
                         description="context window in tokens (sets max_position_embeddings, RoPE base)"
                                     + also("context_length", "max_position_embeddings"))
    attention: Literal["gqa", "mha", "mqa"] = Field("gqa", description="KV-head sharing: grouped-query, "
                                                                        "multi-head or multi-query attention")
    norm: Literal["rmsnorm", "layernorm"] = Field("rmsnorm", description="normalisation layer")
    position: Literal["rope", "alibi"] = Field("rope", description="position encoding")
    tie_embeddings: bool | None = Field(None, validation_alias=AliasChoices("tie_embeddings", "tie_word_embeddings"),
                                        description="share input and output embeddings (default: below 1.5B)"
                                                    + also("tie_word_embeddings"))

    @model_validator(mode="after")
    def _check(self) -> SizeRequest:
        given = [k for k in ("params", "flops") if getattr(self, k) is not None]
        if len(given) != 1:
            raise BadInput("give exactly one of --params or --flops", expected="e.g. --params 1e9 or --flops 1e21")
        value = getattr(self, given[0])
        if not (math.isfinite(value) and value > 0):
            raise BadInput(f"--{given[0]} is {value!r}", expected="a finite positive number")
        if self.params is not None and not 1e6 <= self.params <= 1e13:
            raise BadInput(f"--params is {self.params:g}", expected="between 1e6 and 1e13 parameters")
        if self.vocab is not None and self.vocab < 2:
            raise BadInput(f"--vocab is {self.vocab}", expected="a vocabulary of at least 2 tokens")
        if self.context < 16:
            raise BadInput(f"--context is {self.context}", expected="at least 16 tokens")
        return self


class PublishedShape(BaseModel):
    """A published model's shape, for comparison."""

    name: str
    params: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    ffn: int | None
    aspect_ratio: float = Field(description="d_model / n_layers")
    source: str


class ArchitectureProposal(BaseModel):
    """A proposed decoder-only architecture with its exact parameter count and the reasons."""

    request: SizeRequest
    target_params: Figure
    layers: Figure
    hidden: Figure
    heads: Figure
    kv_heads: Figure
    head_dim: Figure
    intermediate: Figure
    vocab: Figure
    norm: Figure
    position: Figure
    activation: Figure
    tie_embeddings: Figure
    attention_type: str = Field(description="MHA | GQA | MQA")
    params: int = Field(description="exact count of the proposed config (qkv.tools.inventory)")
    params_breakdown: dict[str, int]
    relative_error: float = Field(description="params / target - 1")
    aspect_ratio: float = Field(description="d_model / n_layers")
    ffn_ratio: float = Field(description="intermediate / d_model")
    tokens: Figure = Field(description="Chinchilla-optimal training tokens for this size")
    config: dict[str, Any] = Field(description="an HF config.json (model_type llama) for this shape")
    compared_with: list[PublishedShape]
    notes: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


def published_shapes() -> list[PublishedShape]:
    """Dense decoder shapes from the model catalog and GPT-3 Table 2.1."""
    from qkv.tools.arch import spec_from_config
    from qkv.tools.catalog.models import list_models
    from qkv.tools.inventory import inventory

    rows = []
    for entry in list_models():
        spec = spec_from_config(entry.config)
        if spec.kind != "decoder" or spec.experts:
            continue
        rows.append(PublishedShape(
            name=entry.name, params=sum(g.numel for g in inventory(spec)), layers=spec.layers, hidden=spec.hidden,
            heads=spec.heads, kv_heads=spec.kv_heads, head_dim=spec.head_dim, ffn=spec.intermediate,
            aspect_ratio=spec.hidden / spec.layers, source="qkv-models"))
    for r in gpt3_table21():
        rows.append(PublishedShape(
            name=r["name"], params=r["params"], layers=r["n_layers"], hidden=r["d_model"], heads=r["n_heads"],
            kv_heads=r["n_heads"], head_dim=r["d_head"], ffn=4 * r["d_model"],
            aspect_ratio=r["d_model"] / r["n_layers"], source="brown2020"))
    return rows


def nearest_shapes(params: float, k: int = 5) -> list[PublishedShape]:
    """The k published models closest in log-parameters."""
    return sorted(published_shapes(), key=lambda s: abs(math.log(s.params / params)))[:k]


def swiglu_ffn(hidden: int, multiple_of: int = 256) -> int:
    """Llama's FFN width: 2/3 of 4·d_model (SwiGLU keeps the 4·d FFN's parameters), rounded up."""
    raw = int(8 * hidden / 3)
    return multiple_of * math.ceil(raw / multiple_of)


def kv_heads_for(heads: int, attention: str) -> int:
    """KV heads: MHA = heads, MQA = 1, GQA = the largest divisor ≤ 8 leaving groups of ≥ 4 queries."""
    if attention == "mha":
        return heads
    if attention == "mqa":
        return 1
    options = [d for d in range(1, 9) if heads % d == 0 and heads // d >= 4]
    return max(options) if options else heads


def _quick_count(layers: int, hidden: int, heads: int, kv: int, head_dim: int, ffn: int, vocab: int,
                 tied: bool) -> int:
    """Closed form of the Llama layout (equal to qkv.tools.inventory's sum; used inside the search)."""
    q, kvd = heads * head_dim, kv * head_dim
    per_layer = hidden * q * 2 + hidden * kvd * 2 + 3 * hidden * ffn + 2 * hidden
    return vocab * hidden * (1 if tied else 2) + layers * per_layer + hidden


def _config(layers: int, hidden: int, heads: int, kv: int, head_dim: int, ffn: int, vocab: int, tied: bool,
            context: int, rope_theta: float) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
        "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "head_dim": head_dim, "vocab_size": vocab, "max_position_embeddings": context,
        "rms_norm_eps": 1e-5, "rope_theta": rope_theta, "tie_word_embeddings": tied, "hidden_act": "silu",
        "attention_bias": False, "mlp_bias": False, "torch_dtype": "bfloat16",
    }


def _target(req: SizeRequest) -> tuple[float, Figure]:
    """The target parameter count: given, or the Chinchilla optimum of the FLOP budget."""
    from qkv.tools.knowledge.scaling import chinchilla_optimal

    if req.flops is not None:
        target = chinchilla_optimal(req.flops).params
        return target, analytic(target, "Chinchilla-optimal N for the budget (Approach 1)", "hoffmann2022",
                                unit="params")
    return float(req.params), analytic(float(req.params), "given", unit="params")  # type: ignore[arg-type]


def _vocab(req: SizeRequest, target: float) -> tuple[int, Figure]:
    """Vocabulary size: given, else Llama 3's 128K from 3B params up and Llama 2's 32K below."""
    big = target >= 3e9
    vocab = req.vocab or (128_256 if big else 32_000)
    fig = (analytic(vocab, "given") if req.vocab else
           cited(vocab, "dubey2024" if big else "touvron2023b",
                 note="Llama 3's 128K tokenizer" if big else "Llama 2's 32K SentencePiece vocabulary; a larger "
                 "vocabulary would spend too much of a small model on embeddings"))
    return vocab, fig


def _tied(req: SizeRequest, target: float) -> tuple[bool, Figure]:
    """Whether input and output embeddings are shared: given, else below 1.5B params."""
    tied = req.tie_embeddings if req.tie_embeddings is not None else target < 1.5e9
    fig = (analytic(tied, "given") if req.tie_embeddings is not None else
           cited(tied, "gemma2025", "qkv-models",
                 note="small models tie embeddings (Gemma 3, Qwen2.5-0.5B, SmolLM2); large ones do not"))
    return tied, fig


def _search_shape(target: float, ratio_star: float, head_dim: int, vocab: int, tied: bool,
                  attention: str) -> tuple[int, int, int, int, int]:
    """(layers, hidden, heads, kv_heads, ffn) closest to the target params and to the aspect ratio `ratio_star`."""
    # Head counts in multiples of 8 from 10B up (tensor-parallel and GQA friendly), 4 from 1B, 2 from 100M.
    step = 8 if target >= 1e10 else (4 if target >= 1e9 else (2 if target >= 1e8 else 1))
    best: tuple[float, tuple[int, int, int, int, int]] | None = None
    for layers in range(1, 257):
        centre = max(step, step * round(ratio_star * layers / head_dim / step))
        for heads in range(max(step, centre - 3 * step), centre + 3 * step + 1, step):
            hidden = heads * head_dim
            kv = kv_heads_for(heads, attention)
            ffn = swiglu_ffn(hidden)
            n = _quick_count(layers, hidden, heads, kv, head_dim, ffn, vocab, tied)
            # Squared log-errors in units of the tolerances: 2% on params, 25% on the aspect ratio.
            score = (math.log(n / target) / 0.02) ** 2 + (math.log(hidden / layers / ratio_star) / 0.25) ** 2
            if best is None or score < best[0]:
                best = (score, (layers, hidden, heads, kv, ffn))
    assert best is not None
    return best[1]


def _breakdown(config: dict[str, Any], norm: str, layers: int, hidden: int, notes: list[str]) -> dict[str, int]:
    """Params per role of the config, exact (qkv.tools.inventory), plus LayerNorm's biases when asked for."""
    from qkv.tools.arch import spec_from_config
    from qkv.tools.inventory import inventory

    breakdown: dict[str, int] = {}
    for g in inventory(spec_from_config(config)):
        breakdown[g.role] = breakdown.get(g.role, 0) + g.numel
    if norm == "layernorm":
        extra = layers * 2 * hidden + hidden  # LayerNorm adds a bias vector beside each RMSNorm weight
        breakdown["norm"] = breakdown.get("norm", 0) + extra
        notes.append(f"LayerNorm adds {extra:,} bias parameters over RMSNorm; the config is a Llama layout, so "
                     "build the model with LayerNorm in your own code.")
    return breakdown


def size_architecture(req: SizeRequest) -> ArchitectureProposal:
    """Propose depth, width, heads, KV heads, FFN, head dim, vocab, norm and positions for a target
    size or budget; the count is exact and the shape is compared with published models."""
    from qkv.tools.knowledge.scaling import optimal_for_params

    target, target_fig = _target(req)
    vocab, vocab_fig = _vocab(req, target)
    tied, tied_fig = _tied(req, target)
    head_dim = 64 if target < 1e9 else 128
    near = nearest_shapes(target)
    ratio_star = median(s.aspect_ratio for s in near)
    layers, hidden, heads, kv, ffn = _search_shape(target, ratio_star, head_dim, vocab, tied, req.attention)
    rope_theta = 10_000.0 if req.context <= 8192 else 500_000.0
    config = _config(layers, hidden, heads, kv, head_dim, ffn, vocab, tied, req.context, rope_theta)
    notes: list[str] = []
    breakdown = _breakdown(config, req.norm, layers, hidden, notes)
    total = sum(breakdown.values())
    attention_type = "MHA" if kv == heads else ("MQA" if kv == 1 else "GQA")
    if req.position == "alibi":
        notes.append("ALiBi adds no parameters; transformers' Llama has no ALiBi, so the config's rope_theta is "
                     "unused and the model needs an ALiBi implementation (as in MPT/BLOOM).")
    notes.append(f"d_model/n_layers = {hidden / layers:.1f} against a median of {ratio_star:.1f} for "
                 f"{', '.join(s.name for s in near)}.")
    srcs = ["qkv-models", "brown2020", "kaplan2020"]
    proposal = ArchitectureProposal(
        request=req, target_params=target_fig,
        layers=analytic(layers, "search: params within ~2% of target, aspect ratio near the published median",
                        *srcs),
        hidden=analytic(hidden, f"heads × head_dim = {heads} × {head_dim}", *srcs),
        heads=analytic(heads, "d_model / head_dim", *srcs),
        kv_heads=analytic(kv, f"{req.attention}: groups of ≥ 4 queries, ≤ 8 KV heads" if req.attention == "gqa"
                          else req.attention, "ainslie2023", "dubey2024" if req.attention == "gqa" else "shazeer2019"),
        head_dim=cited(head_dim, "brown2020", "touvron2023b",
                       note="64 below 1B params (GPT-3 Small/Medium), 128 above (GPT-3 6.7B+, Llama)"),
        intermediate=analytic(ffn, "256·ceil((8/3)·d_model / 256)", "shazeer2020", "touvron2023a"),
        vocab=vocab_fig,
        norm=cited(req.norm, "zhang2019" if req.norm == "rmsnorm" else "ba2016"),
        position=cited(req.position, "su2021" if req.position == "rope" else "press2022",
                       note=f"rope_theta {rope_theta:g}" if req.position == "rope" else "linear biases, no table"),
        activation=cited("silu (SwiGLU)", "shazeer2020", "touvron2023a"),
        tie_embeddings=tied_fig, attention_type=attention_type, params=total, params_breakdown=breakdown,
        relative_error=total / target - 1, aspect_ratio=hidden / layers, ffn_ratio=ffn / hidden,
        tokens=analytic(optimal_for_params(total).tokens, "Chinchilla-optimal D for N (Approach 1)",
                        "hoffmann2022", unit="tokens"),
        config=config, compared_with=near, notes=notes,
    )
    proposal.sources = collect_sources(proposal, *{s.source for s in near})
    return proposal
