"""Peak GPU memory of one training step (per GPU): weights, gradients, optimizer state,
activations, logits/loss, optimizer-step temporaries, data-parallel buffers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from qkv.tools.arch import ModelSpec
from qkv.tools.inventory import TensorGroup, apply_layout, inventory
from qkv.tools.memory.activations import LayerPlan, layer_bytes_per_token, logits_bytes_per_token
from qkv.tools.memory.dtypes import FLOAT_BYTES, NF4_BITS, NF4_DQ_BITS, activation_bytes, count
from qkv.tools.memory.loss import chunked_loss_terms
from qkv.tools.memory.offload import HOST, host_copies, offloaded
from qkv.tools.memory.optimizer import state_bytes, step_temporary_bytes
from qkv.tools.memory.paged import paged_states
from qkv.tools.memory.schema import MemoryRequest, MemoryTerm
from qkv.tools.memory.sharding import deepspeed_mixed_states, fsdp2_gathered, fsdp2_padding, sharded_states
from qkv.tools.memory.terms import dequantised_weight_term
from qkv.tools.memory.trainable import lora_param_groups, lora_targets

if TYPE_CHECKING:
    from qkv.tools.catalog.linear_modules import LinearLayout


@dataclass
class TrainResult:
    terms: list[MemoryTerm]
    phase: str
    trainable: int
    host_bytes: int = 0  # offloaded activations and paged optimizer state, in host RAM


def _param_bytes(precision: str) -> float:
    """Bytes of a trained weight: fp32 master weights for fp32 and AMP, 2 for pure 16-bit."""
    return 4.0 if precision == "fp32" or precision.endswith("-mixed") else 2.0


def largest_layer(groups: list[TensorGroup], spec: ModelSpec) -> int:
    """Params of the largest unit ZeRO-3/FSDP gathers at once: one layer, or an embedding table."""
    per_layer = sum(g.numel // g.repeat for g in groups if g.block == "decoder")
    per_enc = sum(g.numel // g.repeat for g in groups if g.block == "encoder")
    tables = [g.numel for g in groups if g.role in ("embedding", "lm_head")]
    return max([per_layer, per_enc, *tables])


def activation_terms(spec: ModelSpec, req: MemoryRequest, modules: frozenset[str],
                     layout: LinearLayout | None = None, groups: list[TensorGroup] | None = None) -> list[MemoryTerm]:
    """Saved activations (all layers, or checkpointed inputs + one recomputed layer) and logits."""
    groups = groups if groups is not None else inventory(spec)
    a = activation_bytes(req.precision)
    # QLoRA after prepare_model_for_kbit_training: fp32 embeddings and norms make the residual stream,
    # the norm outputs and the LM head's logits fp32; the 4-bit linears cast their input back to 16 bits.
    upcast = req.method == "qlora" and req.kbit_fp32_upcast
    stream = 4.0 if upcast else a
    # Fused expert tensors are not quantised, so the upcast makes them fp32 too, and transformers' grouped
    # expert matmul (not autocast) casts its input to the weight's dtype: the experts compute in fp32.
    fp32_experts = upcast and layout is not None and bool(layout.fused_expert_params)
    plan = LayerPlan(
        act_bytes=a, stream_bytes=stream, adapter_bytes=FLOAT_BYTES[req.adapter_dtype], full=req.method == "full",
        lora_modules=modules, lora_r=req.lora_r,
        lora_dropout=req.lora_dropout, quantized=req.method == "qlora" and req.bnb_saves_input,
        eager=req.attention == "eager", seq=req.seq, expert_bytes=4.0 if fp32_experts else None,
    )
    tokens = req.batch * req.seq
    terms: list[MemoryTerm] = []
    stacks = layer_bytes_per_token(spec, plan)
    per_tok = logits_bytes_per_token(spec)
    # Saved fp32 log-probs (a third) and the two fp32 gradients at the start of backward (two thirds).
    logits = [
        MemoryTerm(name="loss log-probs (saved)", bytes=int(tokens * per_tok / 3),
                   formula=f"{count(tokens)} tokens × {spec.vocab:,} vocab × 4 B (fp32 log-softmax)",
                   note="dominates at long context with large vocabularies"),
        MemoryTerm(name="loss gradients (transient)", bytes=int(tokens * per_tok * 2 / 3),
                   formula=f"{count(tokens)} tokens × {spec.vocab:,} vocab × 8 B (two fp32 gradients)",
                   note="live at the start of backward"),
    ]
    chunked = bool(req.loss_chunk and req.loss_chunk < tokens and per_tok)
    if chunked:
        logits = chunked_loss_terms(spec, req, tokens, stream, upcast)
    if req.grad_checkpointing:
        n_layers = sum(n for _, _, n in stacks)
        biggest = max(stacks, key=lambda s: sum(b for _, b in s[1]))
        per_layer = sum(b for _, b in biggest[1])
        saved = MemoryTerm(
            name="activations (checkpointed layer inputs)",
            bytes=int(n_layers * tokens * stream * spec.hidden),
            formula=f"{n_layers} layers × {count(tokens)} tokens × {spec.hidden} hidden × {stream:g} B")
        terms.append(offloaded(saved, req))
        # The loss's buffers are freed before the first layer is recomputed: only the larger counts.
        recompute = MemoryTerm(
            name="activations (one layer recomputed)", bytes=int(tokens * per_layer),
            formula=f"{count(tokens)} tokens × {count(per_layer)} B/token ({biggest[0]} layer)",
            note="not live together with the loss's buffers; the larger of the two is the peak")
        loss_bytes = sum(t.bytes for t in logits)
        terms += [recompute] if recompute.bytes > loss_bytes else logits
    else:
        for block, layer_terms, n_layers in stacks:
            per_layer = sum(b for _, b in layer_terms)
            top = ", ".join(f"{name} {b:,.0f}" for name, b in sorted(layer_terms, key=lambda t: -t[1])[:3])
            terms.append(offloaded(MemoryTerm(
                name=f"activations ({block} layers)",
                bytes=int(n_layers * tokens * per_layer),
                formula=f"{n_layers} layers × {count(tokens)} tokens × {count(per_layer)} B/token/layer",
                note=f"largest saved tensors per token (B): {top}"), req))
    # Final norm's fp32 copy, and the LM head's input when the head itself is trained.
    head_in = 4 * spec.hidden + (a * spec.hidden if req.method == "full" else 0)
    terms.append(offloaded(MemoryTerm(name="final norm / head input", bytes=int(tokens * head_in),
                                      formula=f"{count(tokens)} tokens × {count(head_in)} B"), req))
    if per_tok and not req.grad_checkpointing:
        terms += logits
    if req.offload_activations:
        logprobs = 0 if chunked or not per_tok else int(tokens * per_tok / 3)
        terms += host_copies(spec, req, groups, logprobs)
    if upcast and spec.kind != "encoder" and not chunked:
        # Under bf16 autocast the fp32-upcast LM head is cast to bf16 for its matmul, and that copy is
        # saved for the input gradient (it is frozen, so autocast does not cache it): V × h × 2 B. The chunked
        # loss runs its matmuls outside autocast, in the head's own fp32: no copy.
        terms.append(MemoryTerm(name="activations (LM head bf16 copy)", bytes=2 * spec.vocab * spec.hidden,
                                formula=f"{spec.vocab:,} vocab × {spec.hidden} hidden × 2 B (autocast cast, saved)"))
    return terms


def _qlora_weights(spec: ModelSpec, req: MemoryRequest, groups: list[TensorGroup], quantized: int, trainable: int,
                   adapter_bytes: float, layout: LinearLayout | None) -> tuple[str, str]:
    """(formula, note) of QLoRA's weights: which tensors are 4-bit and which stay 16-bit (or fp32)."""
    bits = NF4_DQ_BITS if req.quant_double else NF4_BITS
    names = list(dict.fromkeys(g.module.rsplit(".", 1)[-1] for g in groups if g.is_quantised and g.module))
    labels = {"experts": "fused experts", "router": "router", "lm_head": "lm_head", "embedding": "embeddings",
              "position": "embeddings", "token_type": "embeddings", "norm": "norms and biases",
              "bias": "norms and biases", "relative_bias": "relative position bias"}
    kept: dict[str, int] = {}
    for g in groups:
        if not g.is_quantised:
            label = "norms and biases" if len(g.shape) == 1 else labels.get(g.role, "linears kept out of quantisation")
            kept[label] = kept.get(label, 0) + g.numel
    other = "fp32 (prepare_model_for_kbit_training)" if req.kbit_fp32_upcast else "16-bit"
    other_b = 4.0 if req.kbit_fp32_upcast else 2.0
    total = sum(g.numel for g in groups)
    formula = (f"4-bit: {count(quantized)} params of the linear modules {', '.join(names)} × {bits:.3f} bits; "
               f"{other}: {count(total - quantized)} other params × {other_b:g} B ("
               + ", ".join(f"{k} {count(v)}" for k, v in sorted(kept.items(), key=lambda kv: -kv[1]))
               + f"); {count(trainable)} adapter params × {adapter_bytes:g} B")
    note = ("bitsandbytes converts only the nn.Linear/Conv1D modules transformers hands it (replace_with_bnb_linear): "
            "not the output embedding")
    skipped = [m for m in (layout.not_quantised if layout is not None else []) if m != "lm_head"]
    if skipped:
        note += f", nor {', '.join(skipped)} (_keep_in_fp32_modules)"
    if layout is not None and layout.fused_expert_params:
        fused = ", ".join(layout.fused_expert_names)
        kept_as = "16-bit, and prepare_model_for_kbit_training casts them to fp32" if req.kbit_fp32_upcast else "16-bit"
        note += (f"; {spec.model_type}'s experts are fused 3-D parameters ({fused}), not nn.Linear modules, so they "
                 f"stay {kept_as} ({count(kept.get('fused experts', 0))} params): only {', '.join(names)} are 4-bit")
    if layout is not None and not layout.from_transformers:
        note += f"; which modules are linear comes from {layout.source}"
    return formula, note


def _flat(terms: list) -> list[MemoryTerm]:
    out: list[MemoryTerm] = []
    for t in terms:
        out += t if isinstance(t, list) else [t]
    return out


def estimate_training(spec: ModelSpec, req: MemoryRequest, layout: LinearLayout | None = None) -> TrainResult:
    """One training step's peak. `layout` (the model's real linear modules, from transformers) decides
    the LoRA targets and QLoRA's 4-bit set; without it the inventory's roles stand in."""
    groups = inventory(spec)
    if layout is not None:
        groups = apply_layout(groups, layout)
    total = sum(g.numel for g in groups)
    pb = _param_bytes(req.precision)
    mixed = req.precision.endswith("-mixed")

    if req.method == "full":
        modules: frozenset[str] = frozenset()
        trainable_groups = groups
        frozen_bytes = 0.0
        train_w_bytes = pb
    else:
        modules = lora_targets(spec, groups, req.lora_targets, layout)
        trainable_groups = lora_param_groups(groups, modules, req.lora_r)
        train_w_bytes = FLOAT_BYTES[req.adapter_dtype]
        if req.method == "lora":
            frozen_bytes = total * pb
        else:
            quantized = sum(g.numel for g in groups if g.is_quantised)
            bits = NF4_DQ_BITS if req.quant_double else NF4_BITS
            other_b = 4.0 if req.kbit_fp32_upcast else 2.0
            frozen_bytes = quantized * bits / 8 + (total - quantized) * other_b
    trainable = sum(g.numel for g in trainable_groups)

    weights = frozen_bytes + trainable * train_w_bytes
    grads = trainable * train_w_bytes
    # State dtype follows the trained weight (fp32 masters under AMP; bf16 under pure bf16).
    states = state_bytes(trainable_groups, req.optimizer, train_w_bytes)
    temp = step_temporary_bytes(trainable_groups, req.optimizer, train_w_bytes, req.foreach)
    cache = 2.0 * trainable if mixed and req.method == "full" and req.sharding in ("none", "ddp") else 0.0
    ddp_buckets = grads if req.sharding == "ddp" else 0.0

    paged_host = 0.0
    lines: dict[str, tuple[float, str]] = {}
    notes: dict[str, str] = {}
    weight_formula = (
        f"{count(total)} params × {pb:g} B" if req.method == "full" else
        f"frozen base {count(frozen_bytes)} B + {count(trainable)} adapter params × {train_w_bytes:g} B")
    if req.method == "qlora":
        weight_formula, notes["weights"] = _qlora_weights(spec, req, groups, quantized, trainable, train_w_bytes,
                                                          layout)

    if req.sharding in ("zero1", "zero2", "zero3") and mixed:
        stage = int(req.sharding[-1])
        ll = largest_layer(groups, spec)
        model_states = deepspeed_mixed_states(total, trainable, ll, req.gpus, stage, req.offload,
                                              req.zero2_accounting)
        how = ("ZeRO paper (2P + 14P_t/N)" if stage == 2 and req.zero2_accounting == "paper" and req.offload == "none"
               else "DeepSpeed estimator")
        lines["model states (DeepSpeed ZeRO)"] = (
            model_states, f"{how}, stage {stage}, {req.gpus} GPUs, offload {req.offload}, "
            f"largest layer {count(ll)} params")
        temp = 0.0  # DeepSpeed's fused Adam updates in place
        weights = grads = states = 0.0
    else:
        ll_bytes = largest_layer(groups, spec) * (pb + pb) if req.sharding in ("zero3", "fsdp") else 0.0
        unsharded_states = states
        if req.sharding == "fsdp2":
            ll_bytes = fsdp2_gathered(largest_layer(groups, spec), largest_layer(trainable_groups, spec), pb,
                                      train_w_bytes)
        weights, grads, states, gathered = sharded_states(
            weights, grads, states, req.gpus, req.sharding, req.offload, ll_bytes)
        if req.sharding == "fsdp2":  # per-parameter dim-0 shards, each padded to ceil(rows / N)
            pad, pad_t = fsdp2_padding(groups, req.gpus), fsdp2_padding(trainable_groups, req.gpus)
            weights, grads, states = weights * pad, grads * pad_t, states * pad_t
        if req.sharding in ("zero3", "fsdp", "fsdp2"):
            temp /= req.gpus
        shard = f" / {req.gpus} GPUs ({req.sharding})" if req.sharding not in ("none", "ddp") else ""
        if req.optimizer.startswith("paged-") and unsharded_states:
            states, paged_host, notes["optimizer states"] = paged_states(trainable_groups, req, train_w_bytes,
                                                                         states / unsharded_states)
        lines["weights"] = (weights, weight_formula + shard)
        lines["gradients"] = (grads, f"{count(trainable)} trainable × {train_w_bytes:g} B" + shard)
        paged = " (paged: GPU-resident minimum, the rest in host RAM)" if paged_host or "optimizer states" in notes \
            else ""
        lines["optimizer states"] = (states, f"{req.optimizer}, {count(trainable)} trainable params" + shard + paged)
        if gathered and req.sharding == "fsdp2":
            lines["gathered layers (FSDP2)"] = (
                gathered, "2 × largest unit's params (current + prefetched all-gather) + 2 × its trainable params' "
                          "grads (unsharded + reduce-scatter in flight)")
        elif gathered:
            lines["gathered layer (ZeRO-3/FSDP)"] = (gathered, "largest layer's weights and grads, unsharded")
    if cache:
        lines["autocast weight copies"] = (cache, f"{count(trainable)} trainable × 2 B (AMP's cast cache)")
    if ddp_buckets:
        lines["DDP gradient buckets"] = (ddp_buckets, "a second copy of the gradients (gradient_as_bucket_view=False)")

    acts = _flat(activation_terms(spec, req, modules, layout, groups))
    host_bytes = sum(t.bytes for t in acts if t.name.endswith(HOST)) + paged_host
    acts = [t for t in acts if not t.name.endswith(HOST)]
    if req.optimizer_in_bwd:
        # Each parameter is stepped as soon as its gradient is ready and the gradient freed: at most the
        # largest tensor's gradient (and its update temporary) is live.
        biggest = largest_layer(trainable_groups, spec) * train_w_bytes
        grads, temp = min(grads, biggest), min(temp, biggest)
        lines["gradients"] = (grads, f"largest trainable tensor only, {count(int(biggest))} B (optimizer in backward)")
    if req.method == "qlora":
        acts.append(dequantised_weight_term(groups))
    act_total = sum(t.bytes for t in acts)
    state_total = sum(v for v, _ in lines.values())
    grad_now = grads if req.grad_accum > 1 else 0.0
    # Backward starts with every activation alive (and, under accumulation, last micro-step's
    # grads); it ends with the grads complete; the optimizer step then adds its temporaries.
    # A trained, tied embedding gets two gradients (LM head and lookup), which autograd sums out of
    # place before storing: both addends are live together at the end of backward.
    tied = 0.0
    if req.method == "full" and spec.tied_embeddings and spec.kind != "encoder":
        sharded = req.sharding in ("zero2", "zero3", "fsdp", "fsdp2")
        tied = 2.0 * spec.vocab * spec.hidden * train_w_bytes / (req.gpus if sharded else 1)
    phases = {
        "forward/backward": state_total - (0 if req.grad_accum > 1 else grads) + act_total,
        "end of backward": state_total - cache + tied,  # autocast's casts die with their saved tensors
        "optimizer step": state_total - cache + temp,
    }
    phase = max(phases, key=lambda k: phases[k])
    terms = [MemoryTerm(name=k, bytes=int(v), formula=f, note=notes.get(k)) for k, (v, f) in lines.items() if v > 0]
    if phase == "forward/backward":
        if grads and not grad_now:
            terms = [t for t in terms if t.name != "gradients"]
        terms += acts
    elif phase == "end of backward":
        terms = [t for t in terms if t.name != "autocast weight copies"]
        if tied:
            terms.append(MemoryTerm(name="tied embedding gradient sum (transient)", bytes=int(tied),
                                    formula=f"2 × {spec.vocab:,} vocab × {spec.hidden} hidden × {train_w_bytes:g} B"))
    elif phase == "optimizer step":
        terms = [t for t in terms if t.name != "autocast weight copies"]
        if temp:
            terms.append(MemoryTerm(name="optimizer step temporaries", bytes=int(temp),
                                    formula=f"{req.optimizer} {'foreach' if req.foreach else 'per-tensor'} "
                                            "sqrt(exp_avg_sq) buffer"))
    return TrainResult(terms=terms, phase=phase, trainable=trainable, host_bytes=int(host_bytes))
