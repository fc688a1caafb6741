"""Architecture facts read from an HF `config.json`, normalised across families.

A `ModelSpec` is what the closed-form parameter counter, the memory estimator and the layer
profile reason over: widths, depths, heads, the norm and MLP kind, MoE routing, sliding windows
and the real module names (so LoRA targets can be checked against the model)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from qkv.tools.errors import BadInput

# model_type -> family whose layout the closed-form counter knows.
FAMILIES: dict[str, str] = {
    "llama": "llama",
    "mistral": "llama",
    "mixtral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "gemma": "llama",
    "gemma2": "llama",
    "gemma3_text": "llama",
    "phi3": "llama",
    "gpt2": "gpt2",
    "bert": "bert",
    "roberta": "bert",
    "t5": "t5",
}

# The family table: leaf-module names (path suffixes, as PEFT matches them) of each family's linear
# layers, attention then MLP, as transformers 5 builds them. Phi-3 fuses q/k/v and gate/up; GPT-2
# fuses q/k/v into `c_attn` (a Conv1D). An MoE block (Mixtral) has no MLP linears: transformers 5
# stores its experts as fused 3-D parameters and its router as a bare parameter. T5 v1.1 (gated) has
# wi_0/wi_1 where T5 has wi. The real names come from transformers (qkv.tools.catalog.linear_modules);
# this table stands in only when transformers cannot build a config, and a test holds it to them.
LINEAR_NAMES: dict[str, tuple[str, ...]] = {
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "llama-moe": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "phi3": ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
    "gpt2": ("c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"),
    "bert": ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"),
    "t5": ("q", "k", "v", "o", "wi", "wo"),
    "t5-gated": ("q", "k", "v", "o", "wi_0", "wi_1", "wo"),
}

# PEFT's default LoRA targets per model type (peft.utils.constants
# TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING; q_proj/v_proj for the Llama-like types). peft 0.21
# has no entry for phi3 (get_peft_model then needs explicit targets); qkv uses the fused attention input.
PEFT_DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "gpt2": ("c_attn",),
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
    "t5": ("q", "v"),
    "phi3": ("qkv_proj",),
}


class ModelSpec(BaseModel):
    """Normalised architecture of one model (sizes are element counts, not bytes)."""

    model_type: str
    family: str  # llama | gpt2 | bert | t5 (layout the counter knows)
    kind: Literal["decoder", "encoder", "encoder-decoder"]
    hidden: int
    layers: int  # decoder layers (encoder layers for an encoder-only model)
    encoder_layers: int = 0  # encoder-decoder only
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_positions: int | None  # the context window in tokens (None: relative positions, no hard limit)
    tied_embeddings: bool
    norm: Literal["rmsnorm", "layernorm"]
    norms_per_layer: int  # Gemma 2/3 add post-attention and post-MLP norms (4)
    qk_norm: bool = False  # per-head RMSNorm on q and k (Gemma 3, Qwen 3)
    gated_mlp: bool
    activation: str
    attn_qkv_bias: bool
    attn_out_bias: bool
    mlp_bias: bool
    position: Literal["rope", "learned", "relative", "alibi"]
    learned_positions: int = 0  # rows of a learned position table
    token_types: int = 0  # BERT segment embeddings
    pooler: bool = False  # BERT/RoBERTa base model pooler
    experts: int = 0  # MoE experts per layer (0 = dense)
    experts_per_token: int = 0
    sliding_window: int | None = None
    sliding_layers: int = 0  # how many layers use the sliding window (the rest attend globally)
    relative_buckets: int = 0  # T5 relative-attention buckets
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    rope_theta: float | None = None
    rope_scaling: dict[str, Any] | None = None

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def attention_type(self) -> str:
        if self.kv_heads == self.heads:
            return "MHA"
        return "MQA" if self.kv_heads == 1 else "GQA"

    @property
    def linear_names(self) -> tuple[str, ...]:
        """The family table's linear leaf names for this model (see LINEAR_NAMES)."""
        if self.model_type == "phi3":
            return LINEAR_NAMES["phi3"]
        if self.family == "llama" and self.experts:
            return LINEAR_NAMES["llama-moe"]
        if self.family == "t5" and self.gated_mlp:
            return LINEAR_NAMES["t5-gated"]
        return LINEAR_NAMES[self.family]

    @property
    def default_lora_targets(self) -> tuple[str, ...]:
        return PEFT_DEFAULT_TARGETS.get(self.model_type, ("q_proj", "v_proj"))


def _need(cfg: dict[str, Any], *keys: str) -> Any:
    """The first present key's value; a clear error naming the missing field otherwise."""
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    raise BadInput(
        f"config.json lacks '{keys[0]}'",
        expected=f"an HF config with {' or '.join(repr(k) for k in keys)} for model_type "
        f"'{cfg.get('model_type')}'",
    )


def _positive(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise BadInput(f"config field '{name}' is {value!r}", expected="a positive integer")
    return value


# The config fields of each family that are sizes or counts. Present (not null), each must be a positive
# integer: a 0 would divide by zero (hidden // heads) and a string or float would fail deep in the counter.
SIZE_FIELDS: dict[str, tuple[str, ...]] = {
    "llama": ("hidden_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers", "intermediate_size",
              "vocab_size", "head_dim", "max_position_embeddings", "sliding_window"),
    "gpt2": ("n_embd", "hidden_size", "n_head", "num_attention_heads", "n_layer", "num_hidden_layers", "n_positions",
             "max_position_embeddings", "n_inner", "vocab_size"),
    "bert": ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "vocab_size",
             "max_position_embeddings"),
    "t5": ("d_model", "num_heads", "num_layers", "num_decoder_layers", "d_kv", "d_ff", "vocab_size"),
}
# Counts that may be 0 (absent features): MoE experts, segment embeddings, relative-position buckets.
COUNT_FIELDS = ("num_local_experts", "num_experts", "num_experts_per_tok", "type_vocab_size",
                "relative_attention_num_buckets")


def _check_sizes(cfg: dict[str, Any], family: str) -> None:
    for key in SIZE_FIELDS[family]:
        if cfg.get(key) is not None:
            _positive(key, cfg[key])
    for key in COUNT_FIELDS:
        value = cfg.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise BadInput(f"config field '{key}' is {value!r}", expected="a non-negative integer")


def _head_dim(hidden: int, heads: int, hidden_key: str, heads_key: str) -> int:
    """hidden / heads, when the config states no head_dim: the width must split evenly over the heads."""
    if hidden % heads:
        raise BadInput(f"{hidden_key} {hidden} is not divisible by {heads_key} {heads}",
                       expected="a hidden size that is a multiple of the number of attention heads "
                                "(or an explicit head_dim)")
    return hidden // heads


def spec_from_config(cfg: dict[str, Any]) -> ModelSpec:
    """Normalise an HF config dict into a ModelSpec; BadInput for a partial, unknown or impossible config
    (a zero, negative or non-integer size, a width that does not split over the heads, …)."""
    from pydantic import ValidationError

    if not isinstance(cfg, dict):
        raise BadInput("config is not a JSON object", expected="the contents of an HF config.json")
    model_type = cfg.get("model_type")
    if not model_type or not isinstance(model_type, str):
        raise BadInput("config.json has no 'model_type'" if not model_type else
                       f"config field 'model_type' is {model_type!r}",
                       expected="an HF config.json with a model_type string (e.g. 'llama', 'gpt2')")
    family = FAMILIES.get(model_type)
    if family is None:
        raise BadInput(
            f"model_type '{model_type}' has no closed-form layout in qkv",
            expected="one of the known families",
            choices=sorted(FAMILIES),
        )
    _check_sizes(cfg, family)
    builder = {"llama": _llama_like, "gpt2": _gpt2, "bert": _bert, "t5": _t5}[family]
    try:
        spec = builder(cfg, model_type)
    except ValidationError as exc:  # a field of the wrong type (rope_scaling a string, a dropout a list, …)
        err = exc.errors()[0]
        raise BadInput(f"config.json does not describe a '{model_type}' model: {err['loc'][0]} is "
                       f"{err.get('input')!r} ({err['msg']})", expected="the fields of an HF config.json") from None
    except (TypeError, ValueError) as exc:
        raise BadInput(f"config.json does not describe a '{model_type}' model ({exc})",
                       expected="the fields of an HF config.json, with their usual types") from None
    for field in ("hidden", "layers", "heads", "kv_heads", "head_dim", "intermediate", "vocab"):
        _positive(field, getattr(spec, field))
    if spec.heads % spec.kv_heads:
        raise BadInput(
            f"num_attention_heads {spec.heads} is not a multiple of num_key_value_heads {spec.kv_heads}",
            expected="query heads divisible by KV heads (GQA groups)",
        )
    if spec.experts and not 1 <= spec.experts_per_token <= spec.experts:
        raise BadInput(f"num_experts_per_tok is {spec.experts_per_token} with {spec.experts} experts",
                       expected="between 1 and the number of experts")
    return spec


def _llama_like(cfg: dict[str, Any], model_type: str) -> ModelSpec:
    hidden = _need(cfg, "hidden_size")
    heads = _need(cfg, "num_attention_heads")
    head_dim = cfg.get("head_dim") or _head_dim(hidden, heads, "hidden_size", "num_attention_heads")
    layers = _need(cfg, "num_hidden_layers")
    gemma = model_type.startswith("gemma")
    sliding = cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None
    layer_types = cfg.get("layer_types")
    if layer_types:
        sliding_layers = sum(1 for t in layer_types if t == "sliding_attention")
    elif model_type == "gemma2" and sliding:
        sliding_layers = layers // 2  # Gemma 2 alternates local and global layers
    elif sliding and model_type in ("mistral", "mixtral"):
        sliding_layers = layers
    else:
        sliding_layers = 0
    act = cfg.get("hidden_act") or cfg.get("hidden_activation") or "silu"
    return ModelSpec(
        model_type=model_type,
        family="llama",
        kind="decoder",
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=cfg.get("num_key_value_heads") or heads,
        head_dim=head_dim,
        intermediate=_need(cfg, "intermediate_size"),
        vocab=_need(cfg, "vocab_size"),
        max_positions=cfg.get("max_position_embeddings"),
        tied_embeddings=bool(cfg.get("tie_word_embeddings", gemma)),
        norm="rmsnorm",
        norms_per_layer=4 if model_type in ("gemma2", "gemma3_text") else 2,
        qk_norm=model_type in ("gemma3_text", "qwen3"),
        gated_mlp=True,
        activation=act,
        attn_qkv_bias=bool(cfg.get("attention_bias", model_type == "qwen2")),
        attn_out_bias=bool(cfg.get("attention_bias", False)) and model_type != "qwen2",
        mlp_bias=bool(cfg.get("mlp_bias", False)),
        position="rope",
        experts=cfg.get("num_local_experts") or cfg.get("num_experts") or 0,
        experts_per_token=cfg.get("num_experts_per_tok") or 0,
        sliding_window=sliding if sliding_layers else None,
        sliding_layers=sliding_layers,
        attention_dropout=float(cfg.get("attention_dropout", 0.0) or 0.0),
        rope_theta=cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta"),
        rope_scaling=cfg.get("rope_scaling"),
    )


def _gpt2(cfg: dict[str, Any], model_type: str) -> ModelSpec:
    hidden = _need(cfg, "n_embd", "hidden_size")
    heads = _need(cfg, "n_head", "num_attention_heads")
    positions = _need(cfg, "n_positions", "max_position_embeddings")
    return ModelSpec(
        model_type=model_type,
        family="gpt2",
        kind="decoder",
        hidden=hidden,
        layers=_need(cfg, "n_layer", "num_hidden_layers"),
        heads=heads,
        kv_heads=heads,
        head_dim=_head_dim(hidden, heads, "n_embd", "n_head"),
        intermediate=cfg.get("n_inner") or 4 * hidden,
        vocab=_need(cfg, "vocab_size"),
        max_positions=positions,
        tied_embeddings=bool(cfg.get("tie_word_embeddings", True)),
        norm="layernorm",
        norms_per_layer=2,
        gated_mlp=False,
        activation=cfg.get("activation_function", "gelu_new"),
        attn_qkv_bias=True,
        attn_out_bias=True,
        mlp_bias=True,
        position="learned",
        learned_positions=positions,
        hidden_dropout=float(cfg.get("resid_pdrop", 0.1)),
        attention_dropout=float(cfg.get("attn_pdrop", 0.1)),
    )


def _bert(cfg: dict[str, Any], model_type: str) -> ModelSpec:
    hidden = _need(cfg, "hidden_size")
    heads = _need(cfg, "num_attention_heads")
    positions = _need(cfg, "max_position_embeddings")
    # RoBERTa reserves padding_idx + 1 = 2 position rows, so 514 rows give a 512-token window.
    window = positions - 2 if model_type == "roberta" else positions
    return ModelSpec(
        model_type=model_type,
        family="bert",
        kind="encoder",
        hidden=hidden,
        layers=_need(cfg, "num_hidden_layers"),
        heads=heads,
        kv_heads=heads,
        head_dim=_head_dim(hidden, heads, "hidden_size", "num_attention_heads"),
        intermediate=_need(cfg, "intermediate_size"),
        vocab=_need(cfg, "vocab_size"),
        max_positions=window,
        tied_embeddings=True,
        norm="layernorm",
        norms_per_layer=2,
        gated_mlp=False,
        activation=cfg.get("hidden_act", "gelu"),
        attn_qkv_bias=True,
        attn_out_bias=True,
        mlp_bias=True,
        position="learned",
        learned_positions=positions,
        token_types=cfg.get("type_vocab_size", 2),
        pooler=True,
        hidden_dropout=float(cfg.get("hidden_dropout_prob", 0.1)),
        attention_dropout=float(cfg.get("attention_probs_dropout_prob", 0.1)),
    )


def _t5(cfg: dict[str, Any], model_type: str) -> ModelSpec:
    d_model = _need(cfg, "d_model")
    heads = _need(cfg, "num_heads")
    layers = _need(cfg, "num_layers")
    proj = cfg.get("feed_forward_proj", "relu")
    return ModelSpec(
        model_type=model_type,
        family="t5",
        kind="encoder-decoder",
        hidden=d_model,
        layers=cfg.get("num_decoder_layers") or layers,
        encoder_layers=layers,
        heads=heads,
        kv_heads=heads,
        head_dim=_need(cfg, "d_kv"),
        intermediate=_need(cfg, "d_ff"),
        vocab=_need(cfg, "vocab_size"),
        max_positions=None,
        tied_embeddings=bool(cfg.get("tie_word_embeddings", True)),
        norm="rmsnorm",
        norms_per_layer=2,
        gated_mlp=proj.startswith("gated"),
        activation=proj.removeprefix("gated-"),
        attn_qkv_bias=False,
        attn_out_bias=False,
        mlp_bias=False,
        position="relative",
        relative_buckets=cfg.get("relative_attention_num_buckets", 32),
        hidden_dropout=float(cfg.get("dropout_rate", 0.1)),
    )
