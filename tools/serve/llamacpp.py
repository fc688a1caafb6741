"""llama.cpp's own buffers: the compute buffer it reserves for its largest graph and the output buffer.

ggml's graph allocator reuses memory between tensors, so the compute buffer is the largest set of
tensors alive at once, in one of two phases of a micro-batch of n_ubatch tokens:
- the output: fp32 logits of every token (n_ubatch × vocab) with the last hidden state and its norm;
- attention without flash attention: fp32 scores and the fp32 mask (n_ubatch × n_ctx × (heads + 1)), beside
  the layer's residual, norm output, Q, K, V and attention output. With flash attention the scores never
  materialise; the f16 mask (n_ubatch × n_ctx × 2 B) remains.
Checked against llama-cpp-python 0.3.36's logged "compute buffer size" for the bundled SmolLM2 GGUF
(tests/integration/test_serve_llamacpp.py)."""

from __future__ import annotations

from qkv.tools.arch import ModelSpec
from qkv.tools.serve.schema import MemoryItem

F32 = 4


def compute_buffer(spec: ModelSpec, n_ctx: int, n_ubatch: int, flash_attn: bool) -> MemoryItem:
    """The compute buffer llama.cpp reserves (bytes), and which phase sets it."""
    ub = min(n_ubatch, n_ctx)
    h, q, kv = spec.hidden, spec.q_dim, spec.kv_dim
    logits = ub * (spec.vocab + 2 * h) * F32
    layer = ub * (2 * h + 2 * q + 2 * kv) * F32
    scores = ub * n_ctx * 2 if flash_attn else ub * n_ctx * (spec.heads + 1) * F32
    attention = scores + layer
    phase = "output logits" if logits >= attention else "attention scores"
    formula = (f"max(logits {ub} × ({spec.vocab:,} vocab + 2 × {h}) × 4 B, "
               + (f"f16 mask {ub} × {n_ctx:,} × 2 B" if flash_attn else
                  f"scores+mask {ub} × {n_ctx:,} × ({spec.heads} heads + 1) × 4 B")
               + f" + layer {ub} × (2h + 2q + 2kv) × 4 B) — {phase}")
    return MemoryItem(name="compute buffer", bytes=max(logits, attention), formula=formula,
                      source="ggml graph allocator: largest live set of one n_ubatch micro-batch")


def output_buffer(spec: ModelSpec, n_seq: int) -> MemoryItem:
    """fp32 logits kept for the last token of each sequence."""
    return MemoryItem(name="output buffer", bytes=spec.vocab * F32 * n_seq,
                      formula=f"{spec.vocab:,} vocab × 4 B × {n_seq} sequences")
