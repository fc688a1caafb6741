"""`trace_memory`: one traced step for a MemoryRequest, the same request the analytic estimator takes."""

from __future__ import annotations

import contextlib
import re
import time

from qkv.tools.arch import spec_from_config
from qkv.tools.errors import BadInput
from qkv.tools.inventory import inventory
from qkv.tools.memory.dtypes import FLOAT_BYTES, NF4_BITS, NF4_DQ_BITS, trained_weight_bytes
from qkv.tools.memory.optimizer import state_bytes
from qkv.tools.memory.paged import paged_states
from qkv.tools.memory.schema import GIB, MemoryRequest
from qkv.tools.memory.trainable import lora_param_groups, lora_targets
from qkv.tools.modelref import resolve_model
from qkv.tools.trace.allocator import replay
from qkv.tools.trace.schema import CATEGORIES, ModuleActivation, TraceResult


def _check(req: MemoryRequest) -> None:
    if req.gpus > 1 or req.sharding not in ("none",):
        raise BadInput("tracing covers one GPU", expected="--gpus 1 (compare sharding with the analytic estimate)")
    if req.method == "inference" and req.weights and req.weights not in ("fp32", "bf16", "fp16", "nf4"):
        raise BadInput(f"tracing inference with {req.weights} weights is not supported",
                       expected="fp32, bf16, fp16 or nf4 (GGUF runs in llama.cpp, not transformers)")


def _module_hooks(model, tracker) -> None:
    def pre(name):
        return lambda *_: tracker.module_stack.append(name)

    def post(*_):
        if tracker.module_stack:
            tracker.module_stack.pop()

    for name, module in model.named_modules():
        if name:
            module.register_forward_pre_hook(pre(re.sub(r"\.\d+(?=\.|$)", ".*", name)))
            module.register_forward_hook(post)


def _track_inputs(tracker, model, ids) -> None:
    """Count what is resident before the first op: parameters, buffers and the batch; the peak starts there."""
    for p in model.parameters():
        tracker.track(p)
    for b in model.buffers():
        tracker.track(b)
    tracker.track(ids)  # the batch itself occupies device memory too
    tracker.peak = tracker.current


def _forward_loss(model, ids, req: MemoryRequest, spec, tracker):
    """One forward pass to the loss, under autocast and activation offload when the request asks for them."""
    import torch

    from qkv.tools.trace.techniques import chunked_loss, offload_hooks

    # AMP for *-mixed; QLoRA always trains under bf16 autocast (HF Trainer bf16=True), which keeps the
    # fp32-upcast norms and the 16-bit linears' dtypes compatible.
    autocast = (req.precision.endswith("-mixed") or req.method == "qlora") and req.method != "inference"
    amp_dtype = torch.float16 if req.precision.startswith("fp16") else torch.bfloat16
    kwargs = {"labels": ids}
    if spec.kind == "encoder-decoder":
        kwargs["decoder_input_ids"] = ids
    offload = offload_hooks(tracker) if req.offload_activations else contextlib.nullcontext()
    with torch.autocast("cpu", dtype=amp_dtype, enabled=autocast), offload:
        if req.loss_chunk and spec.kind == "decoder":
            return chunked_loss(model, ids, req.loss_chunk)
        return _loss(model(input_ids=ids, **kwargs), spec)


def _train_steps(model, ids, req: MemoryRequest, spec, groups, modules,
                 tracker) -> tuple[dict[str, int], dict[str, int], int]:
    """Two traced training steps: (bytes by category at the peak, bytes saved by module, analytic state B)."""
    opt, extra_state = _optimizer(model, req, spec, groups, modules)
    top: dict[str, int] = {}
    categories: dict[str, int] = {}
    for step in (1, 2):  # step 2 is the steady state: optimizer state exists throughout
        if step == 2:
            tracker.peak, tracker.peak_live, tracker.phase_peaks = tracker.current, {}, {}
        tracker.set_phase("forward" if step == 2 else "warm-up")
        loss = _forward_loss(model, ids, req, spec, tracker)
        if step == 2:
            top = _saved_by_module(tracker)
            tracker.set_phase("backward")
        loss.backward()
        del loss
        if step == 2:
            tracker.set_phase("optimizer")
        opt.step()
        if step == 2:  # before zero_grad, while grads and state are still identifiable
            categories = _categorise(tracker, model, opt, None)
        opt.zero_grad(set_to_none=True)
    return categories, top, extra_state


def _analytic_adjustments(req: MemoryRequest, built, extra_state: int,
                          categories: dict[str, int]) -> tuple[int, list[str]]:
    """Bytes to add to the traced peak for what fake tensors cannot be (4-bit weights, bitsandbytes state),
    and why; `categories` is corrected in place."""
    import torch

    shift = 0
    adjustments: list[str] = []
    if built.quantized_linear_params:
        bits = NF4_DQ_BITS if req.quant_double else NF4_BITS
        base_bytes = 2 if built.dtype != torch.float32 else 4
        delta = int(built.quantized_linear_params * (base_bytes - bits / 8))
        shift -= delta
        categories["parameters"] -= delta
        adjustments.append(f"{built.quantized_linear_params:,} linear weights held at {bits:.3f} bits instead of "
                           f"{base_bytes * 8} (analytic; fake tensors cannot be 4-bit)")
    if extra_state:
        shift += extra_state
        categories["optimizer state"] += extra_state
        adjustments.append(f"{req.optimizer} state {extra_state:,} B (analytic; bitsandbytes kernels do not run "
                           "on fake tensors" + ("; paged: the GPU-resident minimum" if "paged" in req.optimizer else "")
                           + ")")
    return shift, adjustments


def _allocator_view(tracker, peak: int) -> tuple[int, int]:
    """(allocated, reserved) bytes at the peak once the caching allocator's rounding and segments are replayed."""
    alloc = replay(tracker.events)
    rounding = alloc.allocated - tracker_peak_unrounded(tracker)
    allocated = peak + max(0, rounding)
    # The replay saw 16-bit stand-ins for 4-bit weights and no 8-bit optimizer state: shift it too.
    reserved = max(alloc.reserved + peak - tracker.peak, allocated)
    return allocated, reserved


def trace_memory(req: MemoryRequest) -> TraceResult:
    """Trace peak memory exactly: build on meta, run on fake CPU tensors, record storage lifetimes."""
    import torch

    from qkv.tools.trace.build import build_fake_model
    from qkv.tools.trace.tracker import MemoryTracker

    _check(req)
    started = time.perf_counter()
    resolved = resolve_model(req.model, online=req.online)
    spec = spec_from_config(resolved.config)
    groups = inventory(spec)
    modules = lora_targets(spec, groups, req.lora_targets) if req.method in ("lora", "qlora") else frozenset()
    built = build_fake_model(resolved.config, spec, req, modules)
    model, fake_mode = built.model, built.fake_mode
    tracker = MemoryTracker()
    _module_hooks(model, tracker)
    extra_state = 0
    top: dict[str, int] = {}

    with fake_mode:
        ids = torch.randint(0, spec.vocab, (req.batch, req.seq))
        with tracker:
            _track_inputs(tracker, model, ids)
            if req.method == "inference":
                kv = _trace_inference(model, ids, spec, tracker)
            else:
                categories, top, extra_state = _train_steps(model, ids, req, spec, groups, modules, tracker)
        if req.method == "inference":
            categories = _categorise(tracker, model, None, kv)

    shift, adjustments = _analytic_adjustments(req, built, extra_state, categories)
    peak = tracker.peak + shift
    allocated, reserved = _allocator_view(tracker, peak)
    return TraceResult(
        request=req, model=resolved.name, peak_bytes=peak, peak_phase=tracker.peak_phase,
        categories=categories, phase_peaks=tracker.phase_peaks,
        top_modules=[ModuleActivation(module=m, bytes=b) for m, b in sorted(top.items(), key=lambda kv: -kv[1])[:10]],
        allocated_bytes=allocated, reserved_bytes=reserved, host_bytes=tracker.host_peak,
        total_bytes=reserved + int(req.cuda_context_gib * GIB),
        analytic_adjustments=adjustments, seconds=round(time.perf_counter() - started, 2))


def tracker_peak_unrounded(tracker) -> int:
    """Peak of the raw event log (both steps), to isolate the allocator's rounding overhead."""
    cur = peak = 0
    for signed, _ in tracker.events:
        cur += signed
        peak = max(peak, cur)
    return peak


def _loss(output, spec):
    return output.loss if getattr(output, "loss", None) is not None else output.last_hidden_state.float().mean()


def _optimizer(model, req, spec, groups, modules):
    """(optimizer, analytic state bytes): torch's AdamW or SGD traced; bitsandbytes' state added analytically.
    With optimizer_in_bwd, one optimizer per parameter stepped from a post-accumulate-grad hook."""
    import torch

    from qkv.tools.trace.techniques import InBackward

    params = [p for p in model.parameters() if p.requires_grad]
    extra = 0
    if req.optimizer == "adamw":
        def make(ps):
            return torch.optim.AdamW(ps, lr=1e-4, foreach=req.foreach)
    elif req.optimizer == "sgd":
        def make(ps):
            return torch.optim.SGD(ps, lr=1e-4, momentum=0.9, foreach=req.foreach)
    else:
        def make(ps):
            return torch.optim.SGD(ps, lr=1e-4)

        trainable = groups if req.method == "full" else lora_param_groups(groups, modules, req.lora_r)
        # State dtype follows the trained weight: the training precision's, or the adapter dtype's.
        state_dtype = trained_weight_bytes(req.precision) if req.method == "full" else FLOAT_BYTES[req.adapter_dtype]
        if req.optimizer.startswith("paged-"):  # the GPU-resident minimum; the rest pages to host RAM
            extra = int(paged_states(trainable, req, state_dtype, 1.0)[0])
        else:
            extra = int(state_bytes(trainable, req.optimizer, state_dtype))
    return (InBackward(params, make) if req.optimizer_in_bwd else make(params)), extra


def _trace_inference(model, ids, spec, tracker):
    import torch

    tracker.set_phase("prefill")
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1) if spec.kind == "decoder" else model(ids)
    return getattr(out, "past_key_values", None)


def _saved_by_module(tracker) -> dict[str, int]:
    """Bytes created during this forward that are still alive at its end, grouped by module."""
    out: dict[str, int] = {}
    for record in tracker.live.values():
        if record.phase == "forward":
            key = record.module or "(model outputs)"
            out[key] = out.get(key, 0) + record.nbytes
    return out


def _storage_ids(tensors) -> set[int]:
    return {id(t.untyped_storage()) for t in tensors if t is not None}


def _categorise(tracker, model, opt, kv) -> dict[str, int]:
    """Attribute the live storages at the peak: parameters, gradients and optimizer state by identity
    (the same record object still live now), KV cache, then forward-made activations, then the rest."""
    params = _storage_ids(list(model.parameters()) + list(model.buffers()))
    grads = _storage_ids(p.grad for p in model.parameters())
    states = set()
    if opt is not None:
        for state in opt.state.values():
            states |= _storage_ids(v for v in state.values() if hasattr(v, "untyped_storage"))
    cache = set()
    if kv is not None:
        import torch
        from torch.utils._pytree import tree_flatten

        layers = getattr(kv, "layers", None)
        if layers:
            leaves = [getattr(layer, a, None) for layer in layers for a in ("keys", "values")]
        else:
            leaves = tree_flatten(kv)[0]
        cache = _storage_ids(t for t in leaves if isinstance(t, torch.Tensor))
    totals = dict.fromkeys(CATEGORIES, 0)
    for key, record in tracker.peak_live.items():
        same = tracker.live.get(key) is record
        if same and key in params:
            cat = "parameters"
        elif same and key in grads:
            cat = "gradients"
        elif same and key in states:
            cat = "optimizer state"
        elif same and key in cache:
            cat = "KV cache"
        elif record.phase in ("forward", "prefill"):
            cat = "activations"
        else:
            cat = "temporaries"
        totals[cat] += record.nbytes
    return totals
