"""Activation memory of one training step: what autograd saves per token in each layer, and the
logits/loss terms. Each saved tensor is listed by name so a breakdown can say where memory goes.

Model of record: HF transformers' implementations with PyTorch autograd, which saves an input of
an op only when some gradient needs it (a frozen linear keeps no copy of its input). bitsandbytes
0.50's MatMul4Bit keeps only the packed weight; older releases (0.41, as in litgpt's published
tables) also kept the input, which `quantized` models. Sizes are bytes per token of the micro-batch."""

from __future__ import annotations

from dataclasses import dataclass

from qkv.tools.arch import ModelSpec


@dataclass(frozen=True)
class LayerPlan:
    """Which parts of a layer are trainable or quantised; decides what autograd keeps."""

    act_bytes: float  # 2 for bf16/fp16 compute, 4 for fp32
    stream_bytes: float  # residual stream and norm outputs: 4 when QLoRA's upcast made embeddings/norms fp32
    adapter_bytes: float  # LoRA weights' dtype; PEFT casts each adapter's input to it
    full: bool  # every weight trainable (full fine-tune)
    lora_modules: frozenset[str]  # leaf names carrying a LoRA adapter
    lora_r: int
    lora_dropout: float
    quantized: bool  # base linears are 4-bit AND bitsandbytes keeps their input (releases before 0.50)
    eager: bool  # eager attention (materialises the scores)
    seq: int  # sequence length, for the eager scores (bytes per token grow with seq)
    expert_bytes: float | None = None  # MoE experts' activation bytes when not act_bytes (fp32-upcast experts)


def _needs_input(plan: LayerPlan, *modules: str) -> bool:
    """Whether the input shared by these linears is saved: for a weight gradient (full FT), a LoRA
    adapter's A matrix, or an older bitsandbytes 4-bit matmul (which kept its input regardless)."""
    # The adapter's A saves the shared input only when it uses it as is: no dropout, and no cast to
    # the adapter dtype (otherwise it saves its own dropped or cast copy, see _lora_extras).
    as_is = plan.lora_dropout == 0 and plan.adapter_bytes == plan.stream_bytes
    lora_needs = as_is and any(m in plan.lora_modules for m in modules)
    return plan.full or plan.quantized or lora_needs


def _lora_extras(plan: LayerPlan, in_features: dict[str, int]) -> list[tuple[str, float]]:
    """Per adapted module: PEFT casts the input to the adapter dtype (a copy when they differ, e.g. fp32
    adapters on bf16 activations), then dropout (a 1 B mask and the dropped copy when p > 0); A saves
    what it receives. Plus A's output (r values), saved by B."""
    terms = []
    for module, in_f in in_features.items():
        if module not in plan.lora_modules:
            continue
        if plan.lora_dropout > 0:
            terms.append((f"lora dropout ({module})", in_f * (1 + plan.adapter_bytes)))
        elif plan.adapter_bytes != plan.stream_bytes:
            terms.append((f"lora input cast ({module})", in_f * plan.adapter_bytes))
        terms.append((f"lora A output ({module})", plan.lora_r * plan.adapter_bytes))
    return terms


def decoder_layer_terms(spec: ModelSpec, plan: LayerPlan) -> list[tuple[str, float]]:
    """Saved bytes per token in one Llama-style decoder layer (RMSNorm in fp32, gated MLP, SDPA)."""
    a, h, i = plan.act_bytes, spec.hidden, spec.intermediate
    hq, hkv = spec.q_dim, spec.kv_dim
    # RMSNorm upcasts to fp32 and x.float() is saved (4 B). When the norm weight is trained its
    # normalised input is saved too: cast back to 16 bits first in Llama (a B), kept in fp32 by
    # Gemma, which multiplies by (1 + weight) in fp32 (4 B).
    normalised = 4.0 if spec.model_type.startswith("gemma") else a

    def norm(name: str, width: int) -> list[tuple[str, float]]:
        terms = [(f"{name} (fp32 copy)", 4 * width)]
        if plan.full:
            terms.append((f"{name} (normalised)", normalised * width))
        return terms

    t = norm("input norm", h)
    qkv = ("qkv_proj",) if spec.model_type == "phi3" else ("q_proj", "k_proj", "v_proj")
    if _needs_input(plan, *qkv):
        t.append(("attention input", plan.stream_bytes * h))
    t += _lora_extras(plan, dict.fromkeys(qkv, h))
    if spec.qk_norm:
        t += norm("q norm", hq) + norm("k norm", hkv)
    # RoPE'd q, k and v are saved by SDPA, with its output and the fp32 log-sum-exp per head.
    t.append(("q, k, v (after RoPE)", a * (hq + 2 * hkv)))
    t.append(("attention output", a * hq))
    t.append(("softmax log-sum-exp", 4 * spec.heads))
    if plan.eager:
        # softmax output in fp32 (saved by softmax) and its bf16 cast (saved by probs @ v).
        t.append(("attention scores (eager, fp32 + cast)", spec.heads * plan.seq * (4 + a)))
    t += _lora_extras(plan, {"o_proj": hq})
    if spec.norms_per_layer == 4:  # Gemma 2/3: a norm after attention and after the MLP as well
        t += norm("post-attention norm", h) + norm("pre-MLP norm", h) + norm("post-MLP norm", h)
    else:
        t += norm("post-attention norm", h)
    mlp_in = ("gate_up_proj",) if spec.model_type == "phi3" else ("gate_proj", "up_proj")
    experts = max(1, spec.experts_per_token)  # MoE: each token runs top-k experts
    e = plan.expert_bytes if spec.experts and plan.expert_bytes else a
    if _needs_input(plan, *mlp_in) or spec.experts:
        t.append(("MLP input", plan.stream_bytes * h))
    t += _lora_extras(plan, dict.fromkeys(mlp_in, h))
    # gate output (saved by the activation), activation output and up output (saved by the product).
    t.append(("MLP gate, act, up", experts * 3 * e * i))
    if _needs_input(plan, "down_proj") or spec.experts:
        t.append(("MLP product (down input)", experts * e * i))
    t += _lora_extras(plan, {"down_proj": i})
    if spec.experts:
        t.append(("router logits (fp32)", 4 * spec.experts * 2))
    return t


def classic_layer_terms(spec: ModelSpec, plan: LayerPlan, cross_attention: bool = False) -> list[tuple[str, float]]:
    """Saved bytes per token in one GPT-2/BERT/T5-style layer: LayerNorm or RMSNorm, non-gated or
    gated MLP, dropout masks (1 byte each) where the model trains with dropout."""
    a, h, i = plan.act_bytes, spec.hidden, spec.intermediate
    drop = spec.hidden_dropout > 0
    t: list[tuple[str, float]] = []
    blocks = [("self-attention", ("q", "k", "v", "query", "key", "value", "c_attn"))]
    if cross_attention:
        blocks.append(("cross-attention", ("q", "k", "v")))
    for label, qkv in blocks:
        t.append((f"{label} norm input", a * h + 8))
        if _needs_input(plan, *qkv):
            t.append((f"{label} input", a * h))
        t += _lora_extras(plan, {m: h for m in qkv if m in plan.lora_modules})
        t.append((f"{label} q, k, v", a * (spec.q_dim + 2 * spec.kv_dim)))
        t.append((f"{label} output", a * spec.q_dim + 4 * spec.heads))
        if plan.eager:
            t.append((f"{label} scores (eager)", spec.heads * plan.seq * (4 + a + (1 + a if drop else 0))))
        if drop:
            t.append((f"{label} residual dropout mask", h))
    t.append(("MLP norm input", a * h + 8))
    if _needs_input(plan, "c_fc", "intermediate.dense", "wi", "wi_0", "wi_1"):
        t.append(("MLP input", a * h))
    n_in = 2 if spec.gated_mlp else 1
    t.append(("MLP hidden (pre- and post-activation)", (n_in + 1) * a * i))
    if drop:
        # Residual dropout after the MLP everywhere; T5 also drops the hidden activations.
        t.append(("MLP dropout masks", (i if spec.family == "t5" else 0) + h))
    return t


def layer_bytes_per_token(spec: ModelSpec, plan: LayerPlan) -> list[tuple[str, list[tuple[str, float]], int]]:
    """(block name, per-token terms of one layer, number of such layers) for each layer stack."""
    if spec.family == "llama":
        return [("decoder", decoder_layer_terms(spec, plan), spec.layers)]
    if spec.family == "t5":
        return [
            ("encoder", classic_layer_terms(spec, plan), spec.encoder_layers),
            ("decoder", classic_layer_terms(spec, plan, cross_attention=True), spec.layers),
        ]
    return [(spec.kind, classic_layer_terms(spec, plan), spec.layers)]


def logits_bytes_per_token(spec: ModelSpec) -> float:
    """Loss-time bytes per token for an LM head, as HF's ForCausalLMLoss runs when the model's
    output is dropped before backward (HF Trainer): the logits are upcast to fp32 and their
    log-softmax (4 B per vocabulary entry) is saved; at the start of backward two fp32 gradients of
    the same size are live with it: 12 B per vocabulary entry. The 16-bit logits and the upcast copy
    (≤ 8 B) are freed by then, and the forward's own peak (logits + copy + log-softmax ≤ 12 B) is no
    higher. Traced: equal to the fake-tensor trace within 1% on Qwen2.5-0.5B."""
    if spec.kind == "encoder":
        return 0.0  # the base model has no vocabulary projection
    return spec.vocab * 12.0
