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
    full: bool  # every weight trainable (full fine-tune)
    lora_modules: frozenset[str]  # leaf names carrying a LoRA adapter
    lora_r: int
    lora_dropout: float
    quantized: bool  # base linears are 4-bit AND bitsandbytes keeps their input (releases before 0.50)
    eager: bool  # eager attention (materialises the scores)
    seq: int  # sequence length, for the eager scores (bytes per token grow with seq)


def _needs_input(plan: LayerPlan, *modules: str) -> bool:
    """Whether the input shared by these linears is saved: for a weight gradient (full FT), a LoRA
    adapter's A matrix, or an older bitsandbytes 4-bit matmul (which kept its input regardless)."""
    # With LoRA dropout > 0 the adapter's A sees (and saves) a dropped copy, not the shared input.
    lora_needs = plan.lora_dropout == 0 and any(m in plan.lora_modules for m in modules)
    return plan.full or plan.quantized or lora_needs


def _lora_extras(plan: LayerPlan, in_features: dict[str, int]) -> list[tuple[str, float]]:
    """Per adapted module: dropout mask (1 B) and dropped copy when dropout > 0, and A's output (r)."""
    terms = []
    for module, in_f in in_features.items():
        if module not in plan.lora_modules:
            continue
        if plan.lora_dropout > 0:
            terms.append((f"lora dropout ({module})", in_f * (1 + plan.act_bytes)))
        terms.append((f"lora A output ({module})", plan.lora_r * plan.act_bytes))
    return terms


def decoder_layer_terms(spec: ModelSpec, plan: LayerPlan) -> list[tuple[str, float]]:
    """Saved bytes per token in one Llama-style decoder layer (RMSNorm in fp32, gated MLP, SDPA)."""
    a, h, i = plan.act_bytes, spec.hidden, spec.intermediate
    hq, hkv = spec.q_dim, spec.kv_dim
    t: list[tuple[str, float]] = []
    # RMSNorm upcasts to fp32: x.float() is saved for pow/mul (4h); the normalised bf16 tensor only
    # when the norm weight is trained; its output when a following linear needs it.
    t.append(("input norm (fp32 copy)", 4 * h))
    if plan.full:
        t.append(("input norm (normalised)", a * h))
    qkv = ("qkv_proj",) if spec.model_type == "phi3" else ("q_proj", "k_proj", "v_proj")
    if _needs_input(plan, *qkv):
        t.append(("attention input", a * h))
    t += _lora_extras(plan, dict.fromkeys(qkv, h))
    if spec.qk_norm:
        t.append(("q/k norm (fp32)", 4 * (hq + hkv)))
    # RoPE'd q, k and v are saved by SDPA, with its output and the fp32 log-sum-exp per head.
    t.append(("q, k, v (after RoPE)", a * (hq + 2 * hkv)))
    t.append(("attention output", a * hq))
    t.append(("softmax log-sum-exp", 4 * spec.heads))
    if plan.eager:
        # softmax output in fp32 (saved by softmax) and its bf16 cast (saved by probs @ v).
        t.append(("attention scores (eager, fp32 + cast)", spec.heads * plan.seq * (4 + a)))
    t += _lora_extras(plan, {"o_proj": hq})
    t.append(("post-attention norm (fp32 copy)", 4 * h))
    if plan.full:
        t.append(("post-attention norm (normalised)", a * h))
    if spec.norms_per_layer == 4:  # Gemma 2/3: extra norms after attention and after the MLP
        t.append(("extra norms (fp32 copies)", 2 * 4 * h))
    mlp_in = ("gate_up_proj",) if spec.model_type == "phi3" else ("gate_proj", "up_proj")
    experts = max(1, spec.experts_per_token)  # MoE: each token runs top-k experts
    if _needs_input(plan, *mlp_in) or spec.experts:
        t.append(("MLP input", a * h))
    t += _lora_extras(plan, dict.fromkeys(mlp_in, h))
    # gate output (saved by the activation), activation output and up output (saved by the product).
    t.append(("MLP gate, act, up", experts * 3 * a * i))
    if _needs_input(plan, "down_proj") or spec.experts:
        t.append(("MLP product (down input)", experts * a * i))
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


def logits_bytes_per_token(spec: ModelSpec, act_bytes: float) -> float:
    """Loss-time bytes per token for an LM head: the logits (compute dtype) plus, as HF's
    ForCausalLMLoss does, an fp32 upcast whose log-softmax is saved (4 B/vocab entry) and, at the
    start of backward, two fp32 gradients of the same size. Peak = logits + 12 B per vocab entry;
    the fp32 upcast itself is freed once the log-softmax exists (it is a copy only for 16-bit)."""
    if spec.kind == "encoder":
        return 0.0  # the base model has no vocabulary projection
    return spec.vocab * (act_bytes + 12)
