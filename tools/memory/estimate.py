"""The estimator's entry point: one request in, one per-GPU `MemoryEstimate` out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qkv.tools.arch import ModelSpec, spec_from_config
from qkv.tools.catalog.gpus import get_gpu
from qkv.tools.inventory import inventory
from qkv.tools.memory.context import check_context
from qkv.tools.memory.infer import estimate_inference
from qkv.tools.memory.schema import GIB, GpuFit, MemoryEstimate, MemoryRequest, MemoryTerm
from qkv.tools.memory.train import estimate_training
from qkv.tools.modelref import ResolvedModel, resolve_model

if TYPE_CHECKING:
    from qkv.tools.catalog.linear_modules import LinearLayout


def overhead_terms(allocated: int, req: MemoryRequest) -> list[MemoryTerm]:
    """What a GPU holds beyond live tensors: the caching allocator's reserve and the CUDA context."""
    return [
        MemoryTerm(name="allocator reserve", bytes=int(allocated * req.fragmentation),
                   formula=f"{req.fragmentation:.0%} of allocated",
                   note="cached, fragmented blocks (reserved - allocated); assumed, to be calibrated on a GPU"),
        MemoryTerm(name="CUDA context", bytes=int(req.cuda_context_gib * GIB),
                   formula=f"{req.cuda_context_gib:g} GiB",
                   note="driver context and loaded kernels (cuBLAS, attention); assumed, varies by GPU/driver"),
    ]


def needs_layout(req: MemoryRequest) -> bool:
    """Whether the answer depends on which modules are really linear: LoRA targets, or bitsandbytes'
    quantised set (QLoRA, int8/nf4/fp4 inference)."""
    return req.method in ("lora", "qlora") or (req.method == "inference" and req.weights in ("int8", "nf4", "fp4"))


def layout_notes(spec: ModelSpec, req: MemoryRequest, layout: LinearLayout) -> list[str]:
    """What the estimate's reader must know about the model's real linear modules."""
    notes = []
    if not layout.from_transformers:
        notes.append(f"linear modules from {layout.source}")
    targets = req.lora_targets or []
    if req.method in ("lora", "qlora") and targets in (["all-linear"], ["all"]) and layout.fused_expert_params:
        notes.append(f"'all-linear' counts the nn.Linear modules of {spec.model_type} only; peft 0.21's "
                     f"'all-linear' string on an MoE model it knows (Mixtral, Qwen2-MoE) also adapts the router and "
                     f"the fused experts ({', '.join(layout.fused_expert_names)}) through target_parameters "
                     "(peft utils/transformers_weight_conversion.py), which is not counted: pass the module names")
    return notes


def estimate_resolved(resolved: ResolvedModel, spec: ModelSpec, req: MemoryRequest) -> MemoryEstimate:
    """Estimate for an already-resolved model (verdict searches call this in a loop)."""
    warnings = check_context(spec, req.seq, req.context_extension, resolved.name)
    params = sum(g.numel for g in inventory(spec))
    layout = None
    if needs_layout(req):
        from qkv.tools.catalog.linear_modules import layout_for

        # Stored for catalog models (no torch); built on the meta device for any other config.
        layout = layout_for(resolved.config, resolved.name if resolved.origin == "catalog" else None)
        warnings += layout_notes(spec, req, layout)
    host = 0
    if req.method == "inference":
        terms, phase, trainable = estimate_inference(spec, req, resolved, layout), "inference", 0
    else:
        result = estimate_training(spec, req, layout)
        terms, phase, trainable, host = result.terms, result.phase, result.trainable, result.host_bytes
        if spec.kind == "encoder-decoder" and req.seq > 512:
            warnings.append("encoder and decoder lengths are both taken as --seq")
        if req.sharding == "zero2" and not req.precision.endswith("-mixed"):
            warnings.append(f"ZeRO-2 at --precision {req.precision}: 16-bit weights replicated, gradients and "
                            "optimizer state partitioned (the paper's split); --zero2-accounting applies to "
                            "bf16-mixed/fp16-mixed, the fp32-master setting DeepSpeed's estimator describes")
    allocated = sum(t.bytes for t in terms)
    overhead = overhead_terms(allocated, req)
    total = allocated + sum(t.bytes for t in overhead)
    fit = None
    if req.gpu:
        gpu = get_gpu(req.gpu)
        fit = GpuFit(gpu=gpu.name, usable_bytes=gpu.usable_bytes, fits=total <= gpu.usable_bytes,
                     headroom_bytes=gpu.usable_bytes - total)
    return MemoryEstimate(
        request=req, model=resolved.name, params=params, trainable_params=trainable, peak_phase=phase,
        terms=terms, overhead=overhead, allocated_bytes=allocated, total_bytes=total, fit=fit,
        host_bytes=host, warnings=warnings)


def estimate_memory(req: MemoryRequest) -> MemoryEstimate:
    """Peak per-GPU memory of a training or inference job: the function behind `qkv vram`."""
    resolved = resolve_model(req.model, online=req.online)
    if req.gpu:
        get_gpu(req.gpu)  # fail on an unknown GPU before any work
    return estimate_resolved(resolved, spec_from_config(resolved.config), req)
