"""The closed-form tensor inventory of a model: every weight tensor (grouped across layers) with its
shape, its role and, for linear layers, the real module name and in/out features.

Parameter counts, LoRA trainable counts, QLoRA's quantised-vs-16-bit split, Adafactor's factored
state and ZeRO-3's largest gathered layer are all sums over this one list. Which groups are real
linear modules (LoRA-targetable) and which bitsandbytes quantises comes from transformers itself
(`apply_layout` with `qkv.tools.catalog.linear_modules`); without a layout the roles stand in."""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod
from typing import TYPE_CHECKING, Literal

from qkv.tools.arch import ModelSpec

if TYPE_CHECKING:
    from qkv.tools.catalog.linear_modules import LinearLayout

Role = Literal[
    "embedding", "position", "token_type", "attention", "mlp", "experts", "router",
    "norm", "bias", "lm_head", "pooler", "relative_bias",
]


@dataclass(frozen=True)
class TensorGroup:
    """`repeat` identical tensors of `shape` (e.g. one per layer). For linear weights `module` is
    the real leaf-module name, and shape is (out_features, in_features) or (experts, out, in)."""

    name: str
    shape: tuple[int, ...]
    role: Role
    repeat: int = 1
    module: str | None = None
    block: str | None = None  # "decoder" | "encoder" | None (outside the layer stack)
    linear: bool | None = None  # a real nn.Linear/Conv1D weight in the blocks (None: judged by role)
    quantised: bool | None = None  # converted by bitsandbytes 4/8-bit loading (None: = is_linear)

    @property
    def numel(self) -> int:
        return prod(self.shape) * self.repeat

    @property
    def is_linear(self) -> bool:
        """A 2-D weight of a linear module inside the layer stack: what LoRA on modules can adapt."""
        if self.linear is not None:
            return self.linear
        return self.role in ("attention", "mlp", "router") and len(self.shape) == 2

    @property
    def is_quantised(self) -> bool:
        """A weight bitsandbytes holds in 4 (or 8) bits: the linear modules it converts, nothing else
        (fused expert tensors, routers, embeddings, norms, biases and the LM head stay 16-bit)."""
        if self.quantised is not None:
            return self.quantised
        return self.is_linear

    @property
    def features(self) -> tuple[int, int]:
        """(in_features, out_features) of one linear tensor."""
        return self.shape[-1], self.shape[-2]


def inventory(spec: ModelSpec) -> list[TensorGroup]:
    """All weight tensors of the model class qkv counts for this family: the causal-LM model for
    decoders, the seq2seq-LM model for T5, the base model with pooler for BERT/RoBERTa."""
    return {"llama": _llama_like, "gpt2": _gpt2, "bert": _bert, "t5": _t5}[spec.family](spec)


def apply_layout(groups: list[TensorGroup], layout: LinearLayout) -> list[TensorGroup]:
    """The groups with `linear` and `quantised` set from the model's real layout (what transformers
    builds): a 2-D weight is linear when its module is a real nn.Linear/Conv1D inside the blocks, and
    quantised when bitsandbytes converts that module; every other tensor is neither."""
    out = []
    for g in groups:
        matrix = g.module is not None and len(g.shape) == 2 and g.role != "bias"
        linear = matrix and g.block is not None and layout.is_linear(g.module)  # type: ignore[arg-type]
        quantised = matrix and layout.is_quantised(g.module)  # type: ignore[arg-type]
        out.append(replace(g, linear=linear, quantised=quantised))
    return out


def _linear(name: str, out_f: int, in_f: int, role: Role, repeat: int, module: str, block: str,
            bias: bool) -> list[TensorGroup]:
    groups = [TensorGroup(name, (out_f, in_f), role, repeat, module, block)]
    if bias:
        groups.append(TensorGroup(name + ".bias", (out_f,), "bias", repeat, module, block))
    return groups


def _llama_like(s: ModelSpec) -> list[TensorGroup]:
    L, h, i = s.layers, s.hidden, s.intermediate
    out: list[TensorGroup] = [TensorGroup("embed_tokens", (s.vocab, h), "embedding")]
    if s.model_type == "phi3":
        out += _linear("qkv_proj", s.q_dim + 2 * s.kv_dim, h, "attention", L, "qkv_proj", "decoder", False)
    else:
        out += _linear("q_proj", s.q_dim, h, "attention", L, "q_proj", "decoder", s.attn_qkv_bias)
        out += _linear("k_proj", s.kv_dim, h, "attention", L, "k_proj", "decoder", s.attn_qkv_bias)
        out += _linear("v_proj", s.kv_dim, h, "attention", L, "v_proj", "decoder", s.attn_qkv_bias)
    out += _linear("o_proj", h, s.q_dim, "attention", L, "o_proj", "decoder", s.attn_out_bias)
    if s.qk_norm:
        out.append(TensorGroup("q_norm", (s.head_dim,), "norm", L, block="decoder"))
        out.append(TensorGroup("k_norm", (s.head_dim,), "norm", L, block="decoder"))
    out.append(TensorGroup("layer_norms", (s.norms_per_layer, h), "norm", L, block="decoder"))
    if s.experts:
        # transformers 5: the router (MixtralTopKRouter) holds a bare (experts, hidden) parameter, not an nn.Linear.
        out.append(TensorGroup("router", (s.experts, h), "router", L, "gate", "decoder", linear=False))
        # Expert weights are stored fused (experts, out, in) in transformers 5: gate+up, then down.
        out.append(TensorGroup("mlp.experts.gate_up_proj", (s.experts, 2 * i, h), "experts", L, "experts", "decoder"))
        out.append(TensorGroup("mlp.experts.down_proj", (s.experts, h, i), "experts", L, "experts", "decoder"))
    elif s.model_type == "phi3":
        out += _linear("gate_up_proj", 2 * i, h, "mlp", L, "gate_up_proj", "decoder", False)
        out += _linear("down_proj", h, i, "mlp", L, "down_proj", "decoder", False)
    else:
        out += _linear("gate_proj", i, h, "mlp", L, "gate_proj", "decoder", s.mlp_bias)
        out += _linear("up_proj", i, h, "mlp", L, "up_proj", "decoder", s.mlp_bias)
        out += _linear("down_proj", h, i, "mlp", L, "down_proj", "decoder", s.mlp_bias)
    out.append(TensorGroup("final_norm", (h,), "norm"))
    if not s.tied_embeddings:
        out.append(TensorGroup("lm_head", (s.vocab, h), "lm_head", module="lm_head"))
    return out


def _gpt2(s: ModelSpec) -> list[TensorGroup]:
    L, h, i = s.layers, s.hidden, s.intermediate
    out = [
        TensorGroup("wte", (s.vocab, h), "embedding"),
        TensorGroup("wpe", (s.learned_positions, h), "position"),
        TensorGroup("ln_1+ln_2", (2, 2, h), "norm", L, block="decoder"),  # weight and bias each
    ]
    out += _linear("c_attn", 3 * h, h, "attention", L, "c_attn", "decoder", True)
    out += _linear("attn.c_proj", h, h, "attention", L, "attn.c_proj", "decoder", True)
    out += _linear("c_fc", i, h, "mlp", L, "c_fc", "decoder", True)
    out += _linear("mlp.c_proj", h, i, "mlp", L, "mlp.c_proj", "decoder", True)
    out.append(TensorGroup("ln_f", (2, h), "norm"))
    if not s.tied_embeddings:
        out.append(TensorGroup("lm_head", (s.vocab, h), "lm_head", module="lm_head"))
    return out


def _bert(s: ModelSpec) -> list[TensorGroup]:
    L, h, i = s.layers, s.hidden, s.intermediate
    out = [
        TensorGroup("word_embeddings", (s.vocab, h), "embedding"),
        TensorGroup("position_embeddings", (s.learned_positions, h), "position"),
        TensorGroup("token_type_embeddings", (s.token_types, h), "token_type"),
        TensorGroup("embeddings.LayerNorm", (2, h), "norm"),
    ]
    for mod in ("query", "key", "value"):
        out += _linear(mod, h, h, "attention", L, mod, "encoder", True)
    out += _linear("attention.output.dense", h, h, "attention", L, "attention.output.dense", "encoder", True)
    out += _linear("intermediate.dense", i, h, "mlp", L, "intermediate.dense", "encoder", True)
    out += _linear("output.dense", h, i, "mlp", L, "output.dense", "encoder", True)
    out.append(TensorGroup("LayerNorms", (2, 2, h), "norm", L, block="encoder"))
    if s.pooler:
        out.append(TensorGroup("pooler.dense", (h, h), "pooler", module="pooler.dense"))
        out.append(TensorGroup("pooler.dense.bias", (h,), "pooler"))
    return out


def _t5(s: ModelSpec) -> list[TensorGroup]:
    h, i, inner = s.hidden, s.intermediate, s.q_dim
    out = [TensorGroup("shared", (s.vocab, h), "embedding")]

    def attention(prefix: str, repeat: int, block: str) -> list[TensorGroup]:
        groups: list[TensorGroup] = []
        for mod in ("q", "k", "v"):
            groups += _linear(f"{prefix}.{mod}", inner, h, "attention", repeat, mod, block, False)
        groups += _linear(f"{prefix}.o", h, inner, "attention", repeat, "o", block, False)
        return groups

    def ffn(prefix: str, repeat: int, block: str) -> list[TensorGroup]:
        ins = ("wi_0", "wi_1") if s.gated_mlp else ("wi",)
        groups: list[TensorGroup] = []
        for mod in ins:
            groups += _linear(f"{prefix}.{mod}", i, h, "mlp", repeat, mod, block, False)
        groups += _linear(f"{prefix}.wo", h, i, "mlp", repeat, "wo", block, False)
        return groups

    Le, Ld = s.encoder_layers, s.layers
    out += attention("encoder.SelfAttention", Le, "encoder")
    out += ffn("encoder.DenseReluDense", Le, "encoder")
    out.append(TensorGroup("encoder.layer_norms", (2, h), "norm", Le, block="encoder"))
    out.append(TensorGroup("encoder.relative_attention_bias", (s.relative_buckets, s.heads), "relative_bias"))
    out.append(TensorGroup("encoder.final_layer_norm", (h,), "norm"))
    out += attention("decoder.SelfAttention", Ld, "decoder")
    out += attention("decoder.EncDecAttention", Ld, "decoder")
    out += ffn("decoder.DenseReluDense", Ld, "decoder")
    out.append(TensorGroup("decoder.layer_norms", (3, h), "norm", Ld, block="decoder"))
    out.append(TensorGroup("decoder.relative_attention_bias", (s.relative_buckets, s.heads), "relative_bias"))
    out.append(TensorGroup("decoder.final_layer_norm", (h,), "norm"))
    if not s.tied_embeddings:
        out.append(TensorGroup("lm_head", (s.vocab, h), "lm_head", module="lm_head"))
    return out
