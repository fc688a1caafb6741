"""Bytes per element of each storage format qkv reasons about, with sources."""

from __future__ import annotations

from typing import Literal

WeightFormat = Literal[
    "fp32", "bf16", "fp16", "int8", "nf4", "fp4",
    "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0",
]
KvFormat = Literal["fp32", "bf16", "fp16", "fp8", "q8_0", "q4_0"]

FLOAT_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}

# bitsandbytes NF4/FP4, blocksize 64: 4 bits + one fp32 absmax per 64 weights = 4.5 bits; double
# quantisation stores the absmax as 8 bits with one fp32 per 256 blocks = 4 + 8/64 + 32/(64*256)
# = 4.127 bits (Dettmers et al. 2023, QLoRA, section 3 "Double Quantization").
NF4_BITS = 4.5
NF4_DQ_BITS = 4 + 8 / 64 + 32 / (64 * 256)

# LLM.int8 (bitsandbytes): int8 weights plus one fp32 scale per output row (added separately).
INT8_BYTES = 1.0

# Bits per weight of whole GGUF files, measured by llama.cpp on Llama-3.1-8B
# (ggml-org/llama.cpp tools/quantize/README.md). A file-level average: it includes the tensors the
# recipe keeps at higher precision, so it applies to total parameters. Q4_0 is the format's
# definition (18 bytes per 32 weights), not a file measurement.
GGUF_BPW = {
    "Q4_0": 4.5,
    "Q4_K_M": 4.8944,
    "Q5_K_M": 5.7036,
    "Q6_K": 6.5633,
    "Q8_0": 8.5008,
}
GGUF_SOURCE = "llama.cpp tools/quantize/README.md (Llama-3.1-8B table)"

# KV-cache element sizes; q8_0 and q4_0 are llama.cpp block formats (34 and 18 bytes per 32 values).
KV_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


def is_gguf(fmt: str) -> bool:
    return fmt in GGUF_BPW


def activation_bytes(precision: str) -> float:
    """Bytes of an activation element: 4 under fp32, else 2 (bf16/fp16 compute, AMP included)."""
    return 4.0 if precision == "fp32" else 2.0


def trained_weight_bytes(precision: str) -> float:
    """Bytes of a trained weight (and of its gradient and optimizer state): fp32 master weights under fp32 and
    AMP (*-mixed), 2 under pure 16-bit training."""
    return 4.0 if precision == "fp32" or precision.endswith("-mixed") else 2.0


def count(x: float) -> str:
    """A count or byte figure as it appears in a formula: 6,738,415,616."""
    return f"{x:,.0f}"
