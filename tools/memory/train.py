"""Peak GPU memory of one training step (per GPU): weights, gradients, optimizer state,
activations, logits/loss, optimizer-step temporaries, data-parallel buffers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from qkv.tools.arch import ModelSpec
from qkv.tools.inventory import TensorGroup, apply_layout, inventory
from qkv.tools.memory.activations import LayerPlan, layer_bytes_per_token, logits_bytes_per_token
from qkv.tools.memory.dtypes import FLOAT_BYTES, NF4_BITS, NF4_DQ_BITS, activation_bytes, count, trained_weight_bytes
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


def largest_layer(groups: list[TensorGroup], spec: ModelSpec) -> int:
    """Params of the largest unit ZeRO-3/FSDP gathers at once: one layer, or an embedding table."""
    per_layer = sum(g.numel // g.repeat for g in groups if g.block == "decoder")
    per_enc = sum(g.numel // g.repeat for g in groups if g.block == "encoder")
    tables = [g.numel for g in groups if g.role in ("embedding", "lm_head")]
    return max([per_layer, per_enc, *tables])


def _layer_terms(spec: ModelSpec, req: MemoryRequest, stacks: list[tuple[str, list[tuple[str, float]], int]],
                 tokens: int, stream: float, logits: list[MemoryTerm]) -> list[MemoryTerm]:
    """The layers' saved activations: every layer's, or (checkpointed) their inputs plus one recomputed layer."""
    terms: list[MemoryTerm] = []
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
    return terms


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
    # qkv's trainer (and the tracer) chunk the loss of causal decoders only: an encoder-decoder's loss is the
    # model's own, over full logits.
    chunked = bool(req.loss_chunk and req.loss_chunk < tokens and per_tok and spec.kind == "decoder")
    if chunked:
        logits = chunked_loss_terms(spec, req, tokens, stream, upcast)
    terms += _layer_terms(spec, req, stacks, tokens, stream, logits)
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


@dataclass
class _Trainable:
    """What one step trains: the LoRA target modules, the trained tensor groups and the frozen base's bytes."""

    modules: frozenset[str]
    groups: list[TensorGroup]
    params: int  # trained parameters
    w_bytes: float  # B per trained weight: the training precision's, or the adapter dtype's
    frozen_bytes: float  # B of the frozen base (0 under full fine-tuning)
    quantized: int = 0  # params of the frozen base held in 4-bit (QLoRA)


@dataclass
class _Step:
    """Per-GPU bytes of one step's buffers, and the report lines (name → (B, formula)) built from them."""

    weights: float
    grads: float
    states: float
    temp: float  # optimizer-step temporaries
    cache: float  # AMP's cast cache of the trained weights
    ddp_buckets: float
    paged_host: float = 0.0  # paged optimizer state that lives in host RAM
    lines: dict[str, tuple[float, str]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def _trainable(spec: ModelSpec, req: MemoryRequest, groups: list[TensorGroup], layout: LinearLayout | None,
               total: int, pb: float) -> _Trainable:
    """Split the model into its trained part and its frozen base, for req.method."""
    if req.method == "full":
        return _Trainable(modules=frozenset(), groups=groups, params=sum(g.numel for g in groups), w_bytes=pb,
                          frozen_bytes=0.0)
    modules = lora_targets(spec, groups, req.lora_targets, layout)
    trainable_groups = lora_param_groups(groups, modules, req.lora_r)
    quantized = 0
    if req.method == "lora":
        frozen_bytes = total * pb
    else:  # QLoRA: the quantised linears at NF4's bits per param, the rest 16-bit (or fp32 when upcast)
        quantized = sum(g.numel for g in groups if g.is_quantised)
        bits = NF4_DQ_BITS if req.quant_double else NF4_BITS
        other_b = 4.0 if req.kbit_fp32_upcast else 2.0
        frozen_bytes = quantized * bits / 8 + (total - quantized) * other_b
    return _Trainable(modules=modules, groups=trainable_groups, params=sum(g.numel for g in trainable_groups),
                      w_bytes=FLOAT_BYTES[req.adapter_dtype], frozen_bytes=frozen_bytes, quantized=quantized)


def _unsharded_step(req: MemoryRequest, tr: _Trainable) -> _Step:
    """Each buffer's bytes as one GPU would hold it before sharding, offload or paging."""
    grads = tr.params * tr.w_bytes
    # AMP keeps a 16-bit (2 B) cast of every trained weight; sharded runs cast per gathered unit instead.
    amp_full = req.precision.endswith("-mixed") and req.method == "full" and req.sharding in ("none", "ddp")
    return _Step(
        weights=tr.frozen_bytes + tr.params * tr.w_bytes, grads=grads,
        # State dtype follows the trained weight (fp32 masters under AMP; bf16 under pure bf16).
        states=state_bytes(tr.groups, req.optimizer, tr.w_bytes),
        temp=step_temporary_bytes(tr.groups, req.optimizer, tr.w_bytes, req.foreach),
        cache=2.0 * tr.params if amp_full else 0.0,
        ddp_buckets=grads if req.sharding == "ddp" else 0.0)


def _weight_formula(spec: ModelSpec, req: MemoryRequest, groups: list[TensorGroup], tr: _Trainable, total: int,
                    pb: float, layout: LinearLayout | None, notes: dict[str, str]) -> str:
    """The weights line's formula (QLoRA also adds its note to `notes`)."""
    if req.method == "qlora":
        formula, notes["weights"] = _qlora_weights(spec, req, groups, tr.quantized, tr.params, tr.w_bytes, layout)
        return formula
    if req.method == "full":
        return f"{count(total)} params × {pb:g} B"
    return f"frozen base {count(tr.frozen_bytes)} B + {count(tr.params)} adapter params × {tr.w_bytes:g} B"


def _deepspeed_lines(spec: ModelSpec, req: MemoryRequest, groups: list[TensorGroup], tr: _Trainable, total: int,
                     step: _Step) -> None:
    """DeepSpeed ZeRO under AMP: its estimator's one model-states line replaces weights, grads and states."""
    stage = int(req.sharding[-1])
    ll = largest_layer(groups, spec)
    model_states = deepspeed_mixed_states(total, tr.params, ll, req.gpus, stage, req.offload,
                                          req.zero2_accounting)
    how = ("ZeRO paper (2P + 14P_t/N)" if stage == 2 and req.zero2_accounting == "paper" and req.offload == "none"
           else "DeepSpeed estimator")
    step.lines["model states (DeepSpeed ZeRO)"] = (
        model_states, f"{how}, stage {stage}, {req.gpus} GPUs, offload {req.offload}, "
        f"largest layer {count(ll)} params")
    step.temp = 0.0  # DeepSpeed's fused Adam updates in place
    step.weights = step.grads = step.states = 0.0


def _shard(spec: ModelSpec, req: MemoryRequest, groups: list[TensorGroup], tr: _Trainable, pb: float,
           step: _Step) -> float:
    """Shard (and pad, and page) the step's weights, grads and states per GPU; returns the gathered bytes."""
    ll_bytes = 0.0
    if req.sharding in ("zero3", "fsdp"):
        ll_bytes = largest_layer(groups, spec) * (pb + pb)
    elif req.sharding == "fsdp2":
        ll_bytes = fsdp2_gathered(largest_layer(groups, spec), largest_layer(tr.groups, spec), pb, tr.w_bytes)
    unsharded_states = step.states
    weights, grads, states, gathered = sharded_states(
        step.weights, step.grads, step.states, req.gpus, req.sharding, req.offload, ll_bytes)
    if req.sharding == "fsdp2":  # per-parameter dim-0 shards, each padded to ceil(rows / N)
        pad, pad_t = fsdp2_padding(groups, req.gpus), fsdp2_padding(tr.groups, req.gpus)
        weights, grads, states = weights * pad, grads * pad_t, states * pad_t
    if req.sharding in ("zero3", "fsdp", "fsdp2"):
        step.temp /= req.gpus
    if req.optimizer.startswith("paged-") and unsharded_states:
        states, step.paged_host, step.notes["optimizer states"] = paged_states(tr.groups, req, tr.w_bytes,
                                                                               states / unsharded_states)
    step.weights, step.grads, step.states = weights, grads, states
    return gathered


def _sharded_lines(spec: ModelSpec, req: MemoryRequest, groups: list[TensorGroup], tr: _Trainable, pb: float,
                   weight_formula: str, step: _Step) -> None:
    """Weights, gradients, optimizer states and gathered-layer lines under none/DDP/ZeRO-3/FSDP/FSDP2."""
    gathered = _shard(spec, req, groups, tr, pb, step)
    shard = f" / {req.gpus} GPUs ({req.sharding})" if req.sharding not in ("none", "ddp") else ""
    step.lines["weights"] = (step.weights, weight_formula + shard)
    step.lines["gradients"] = (step.grads, f"{count(tr.params)} trainable × {tr.w_bytes:g} B" + shard)
    paged = " (paged: GPU-resident minimum, the rest in host RAM)" \
        if step.paged_host or "optimizer states" in step.notes else ""
    step.lines["optimizer states"] = (step.states,
                                      f"{req.optimizer}, {count(tr.params)} trainable params" + shard + paged)
    if gathered and req.sharding == "fsdp2":
        step.lines["gathered layers (FSDP2)"] = (
            gathered, "2 × largest unit's params (current + prefetched all-gather) + 2 × its trainable params' "
                      "grads (unsharded + reduce-scatter in flight)")
    elif gathered:
        step.lines["gathered layer (ZeRO-3/FSDP)"] = (gathered, "largest layer's weights and grads, unsharded")


def _copy_lines(tr: _Trainable, step: _Step) -> None:
    """Lines for the extra copies: AMP's cast cache and DDP's gradient buckets."""
    if step.cache:
        step.lines["autocast weight copies"] = (step.cache, f"{count(tr.params)} trainable × 2 B (AMP's cast cache)")
    if step.ddp_buckets:
        step.lines["DDP gradient buckets"] = (step.ddp_buckets,
                                              "a second copy of the gradients (gradient_as_bucket_view=False)")


def _step_in_backward(spec: ModelSpec, tr: _Trainable, step: _Step) -> None:
    """optimizer_in_bwd: only the largest trained tensor's gradient (and update temporary) is ever live."""
    # Each parameter is stepped as soon as its gradient is ready and the gradient freed: at most the
    # largest tensor's gradient (and its update temporary) is live.
    biggest = largest_layer(tr.groups, spec) * tr.w_bytes
    step.grads, step.temp = min(step.grads, biggest), min(step.temp, biggest)
    step.lines["gradients"] = (step.grads,
                               f"largest trainable tensor only, {count(int(biggest))} B (optimizer in backward)")


def _tied_grad_bytes(spec: ModelSpec, req: MemoryRequest, w_bytes: float) -> float:
    """B per GPU of a trained tied embedding's two gradients, summed out of place at the end of backward."""
    # A trained, tied embedding gets two gradients (LM head and lookup), which autograd sums out of
    # place before storing: both addends are live together at the end of backward.
    if req.method == "full" and spec.tied_embeddings and spec.kind != "encoder":
        sharded = req.sharding in ("zero2", "zero3", "fsdp", "fsdp2")
        return 2.0 * spec.vocab * spec.hidden * w_bytes / (req.gpus if sharded else 1)
    return 0.0


def _peak_phase(req: MemoryRequest, step: _Step, acts: list[MemoryTerm], tied: float) -> str:
    """The phase of the step with the most bytes live."""
    act_total = sum(t.bytes for t in acts)
    state_total = sum(v for v, _ in step.lines.values())
    # Backward starts with every activation alive (and, under accumulation, last micro-step's
    # grads); it ends with the grads complete; the optimizer step then adds its temporaries.
    phases = {
        "forward/backward": state_total - (0 if req.grad_accum > 1 else step.grads) + act_total,
        "end of backward": state_total - step.cache + tied,  # autocast's casts die with their saved tensors
        "optimizer step": state_total - step.cache + step.temp,
    }
    return max(phases, key=lambda k: phases[k])


def _terms_at(phase: str, spec: ModelSpec, req: MemoryRequest, tr: _Trainable, step: _Step,
              acts: list[MemoryTerm], tied: float) -> list[MemoryTerm]:
    """The terms live at `phase`: the state lines, less what is dead then, plus that phase's own buffers."""
    terms = [MemoryTerm(name=k, bytes=int(v), formula=f, note=step.notes.get(k))
             for k, (v, f) in step.lines.items() if v > 0]
    grad_now = step.grads if req.grad_accum > 1 else 0.0
    if phase == "forward/backward":
        if step.grads and not grad_now:
            terms = [t for t in terms if t.name != "gradients"]
        terms += acts
    elif phase == "end of backward":
        terms = [t for t in terms if t.name != "autocast weight copies"]
        if tied:
            terms.append(MemoryTerm(name="tied embedding gradient sum (transient)", bytes=int(tied),
                                    formula=f"2 × {spec.vocab:,} vocab × {spec.hidden} hidden × {tr.w_bytes:g} B"))
    elif phase == "optimizer step":
        terms = [t for t in terms if t.name != "autocast weight copies"]
        if step.temp:
            terms.append(MemoryTerm(name="optimizer step temporaries", bytes=int(step.temp),
                                    formula=f"{req.optimizer} {'foreach' if req.foreach else 'per-tensor'} "
                                            "sqrt(exp_avg_sq) buffer"))
    return terms


def estimate_training(spec: ModelSpec, req: MemoryRequest, layout: LinearLayout | None = None) -> TrainResult:
    """One training step's peak. `layout` (the model's real linear modules, from transformers) decides
    the LoRA targets and QLoRA's 4-bit set; without it the inventory's roles stand in."""
    groups = inventory(spec)
    if layout is not None:
        groups = apply_layout(groups, layout)
    total = sum(g.numel for g in groups)
    pb = trained_weight_bytes(req.precision)
    tr = _trainable(spec, req, groups, layout, total, pb)
    step = _unsharded_step(req, tr)
    weight_formula = _weight_formula(spec, req, groups, tr, total, pb, layout, step.notes)
    if req.sharding in ("zero1", "zero2", "zero3") and req.precision.endswith("-mixed"):
        _deepspeed_lines(spec, req, groups, tr, total, step)
    else:
        _sharded_lines(spec, req, groups, tr, pb, weight_formula, step)
    _copy_lines(tr, step)

    acts = activation_terms(spec, req, tr.modules, layout, groups)
    # Offloaded activations live in host RAM, not on the GPU: they leave the GPU's sum.
    host_bytes = sum(t.bytes for t in acts if t.name.endswith(HOST)) + step.paged_host
    acts = [t for t in acts if not t.name.endswith(HOST)]
    if req.optimizer_in_bwd:
        _step_in_backward(spec, tr, step)
    if req.method == "qlora":
        acts.append(dequantised_weight_term(groups))
    tied = _tied_grad_bytes(spec, req, tr.w_bytes)
    phase = _peak_phase(req, step, acts, tied)
    terms = _terms_at(phase, spec, req, tr, step, acts, tied)
    return TrainResult(terms=terms, phase=phase, trainable=tr.params, host_bytes=int(host_bytes))
