"""The run's summary: measured peak memory next to the estimator's prediction for the same config."""

from __future__ import annotations

from qkv.tools.errors import QkvError
from qkv.tools.memory.schema import MemoryRequest
from qkv.tools.train.config import TrainConfig
from qkv.tools.train.schema import MemoryCheck

_OPTIM = {"adamw": "adamw", "adamw-8bit": "adamw-8bit", "paged-adamw": "paged-adamw",
          "paged-adamw-8bit": "paged-adamw-8bit"}
_ATTN = {"sdpa": "sdpa", "flash_attention_2": "flash", "eager": "eager"}


def memory_request_for(cfg: TrainConfig, *, cuda: bool) -> MemoryRequest:
    """The estimator request that describes this training config (one device)."""
    dtype = cfg.method.compute_dtype if cfg.method.kind == "qlora" else cfg.model.dtype
    precision = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[dtype]
    targets = cfg.method.target_modules
    return MemoryRequest(
        model=cfg.model.name, method=cfg.method.kind, batch=cfg.train.micro_batch, seq=cfg.train.seq_len,
        grad_accum=cfg.train.grad_accum, precision=precision, optimizer=_OPTIM[cfg.optim.optimizer],
        foreach=cuda,  # torch's AdamW takes the multi-tensor path by default only for CUDA tensors
        grad_checkpointing=cfg.train.grad_checkpointing, attention=_ATTN[cfg.model.attention],
        lora_r=cfg.method.r, lora_alpha=cfg.method.alpha, lora_targets=list(targets),
        lora_dropout=cfg.method.dropout, quant_double=cfg.method.double_quant, gpu=cfg.run.gpu,
        kbit_fp32_upcast=cfg.method.upcast_non_quantised,
        loss_chunk=cfg.train.loss_chunk_tokens if cfg.train.loss == "chunked" else None,
        # save_on_cpu moves nothing on a CPU-only run (the tensors are in RAM already): predict what happens
        offload_activations=cfg.train.offload_activations and cuda,
        cuda_context_gib=0.5 if cuda else 0.0)


def memory_check(cfg: TrainConfig, measured: int, kind: str) -> MemoryCheck:
    """Measured peak vs fit_report's estimate; the estimator failing (unknown model) leaves prediction empty."""
    from qkv.tools.memory.verdict import fit_report

    cuda = kind == "cuda_max_allocated"
    try:
        req = memory_request_for(cfg, cuda=cuda)
        report = fit_report(req)
    except QkvError as exc:
        return MemoryCheck(measured_bytes=measured, measured_kind=kind, note=f"no estimate: {exc}")
    est = report.estimate
    note = ("CUDA max_memory_allocated vs the estimator's allocated peak: directly comparable" if cuda else
            "CPU run: peak RSS holds the whole process (interpreter, torch libraries, tokenizer, data, the "
            "fp32 model as loaded) and glibc arena slack, so it exceeds the tensor-byte estimate; the GPU "
            "comparison is measured/predicted allocated")
    return MemoryCheck(
        measured_bytes=measured, measured_kind=kind, predicted_allocated_bytes=est.allocated_bytes,
        predicted_total_bytes=est.total_bytes, measured_over_predicted=round(measured / est.allocated_bytes, 3),
        request=req, fits_gpu=est.fit.fits if est.fit else None, note=note)
