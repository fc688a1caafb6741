"""Training precision per GPU generation: bf16 only where the tensor cores run it (Ampere and newer
list a dense BF16 rate in the GPU catalog); fp16 mixed precision with dynamic loss scaling and fp32
master weights otherwise (Turing T4, Volta V100: Micikevicius et al. 2018)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Dtype = Literal["bf16", "fp16", "fp32"]


class PrecisionChoice(BaseModel):
    dtype: Dtype
    torch_dtype: Literal["bfloat16", "float16", "float32"]
    mode: str
    reason: str
    departure: str | None = None
    sources: list[str]


TORCH = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def training_precision(gpu: str | None, stated: Dtype | None = None, pretrain: bool = False) -> PrecisionChoice:
    """The dtype a GPU trains well in (the stated one when the hardware runs it). bf16 pre-training keeps fp32
    master weights; bf16 fine-tuning is pure bf16, as qkv's trainer runs it (see memory_precision)."""
    from qkv.tools.catalog.gpus import get_gpu

    spec = get_gpu(gpu) if gpu else None
    if spec is None or (spec.gpu_class in ("cpu", "apple", "stated") and not spec.bf16_dense_tflops):
        where = "no GPU named" if spec is None else f"{spec.name} ({spec.gpu_class})"
        choice = stated or "bf16"
        return PrecisionChoice(dtype=choice, torch_dtype=TORCH[choice], mode="as planned",
                               reason=f"{where}: no tensor-core table to check; "
                                      f"{'stated' if stated else 'bf16 (the memory plan assumes 2-byte weights)'}",
                               sources=["qkv-gpus"])
    has_bf16 = bool(spec.bf16_dense_tflops)
    if stated == "bf16" and not has_bf16:
        return PrecisionChoice(
            dtype="fp16", torch_dtype="float16", mode="fp16 mixed precision (AMP), dynamic loss scaling",
            reason=f"{spec.name} ({spec.architecture}) has no bf16 tensor cores (the GPU catalog lists none): "
                   "fp16 AMP with fp32 master weights and dynamic loss scaling",
            departure=f"precision: stated bf16, planned fp16 AMP ({spec.architecture} has no bf16)",
            sources=["qkv-gpus", "micikevicius2018"])
    if stated:
        return PrecisionChoice(dtype=stated, torch_dtype=TORCH[stated], mode="as stated",
                               reason=f"stated; {spec.name} runs it", sources=["qkv-gpus"])
    if has_bf16:
        return PrecisionChoice(
            dtype="bf16", torch_dtype="bfloat16",
            mode=("bf16 mixed precision, fp32 master weights (no loss scaling needed)" if pretrain else
                  "pure bf16: weights and AdamW states in bf16 (no loss scaling needed)"),
            reason=f"{spec.name} ({spec.architecture}) has bf16 tensor cores ({spec.bf16_dense_tflops:g} dense "
                   "TFLOP/s): bf16 keeps fp32's exponent range, so no loss scaling",
            sources=["qkv-gpus"])
    return PrecisionChoice(
        dtype="fp16", torch_dtype="float16", mode="fp16 mixed precision (AMP), dynamic loss scaling",
        reason=f"{spec.name} ({spec.architecture}) has fp16 but no bf16 tensor cores ({spec.fp16_dense_tflops:g} "
               "dense FP16 TFLOP/s): fp16 AMP with fp32 master weights and dynamic loss scaling",
        sources=["qkv-gpus", "micikevicius2018"])


def memory_precision(choice: PrecisionChoice, pretrain: bool) -> str:
    """The memory estimator's precision for a training-precision choice. fp16 trains as AMP with fp32 master
    weights and loss scaling ("fp16-mixed", Micikevicius et al. 2018). bf16 pre-training keeps fp32 master
    weights and AdamW states ("bf16-mixed": Megatron-LM, torchtitan), since pure 16-bit states lose small
    updates over a long run; bf16 fine-tuning is pure bf16 ("bf16"), as qkv's trainer and torchtune run it."""
    if choice.dtype == "fp16":
        return "fp16-mixed"
    if choice.dtype == "fp32":
        return "fp32"
    return "bf16-mixed" if pretrain else "bf16"
