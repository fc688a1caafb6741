"""The chunked linear cross-entropy's memory, as qkv's trainer runs it (tools/train/loss.py, backend torch).

Per chunk of C tokens it holds two C × V fp32 buffers (logits, then log-probs turned in place into the
gradient); with a 16-bit head weight also the matmul's 16-bit output before the upcast and the gradient's
16-bit cast for the two backward matmuls (2 + 2 B). It runs outside autocast, in the head weight's dtype, so an
fp32-upcast LM head (QLoRA) makes no bf16 copy. What persists into backward is the gradient with respect to
the head's input (tokens × h, in the hidden state's dtype) and, when the head trains, its weight gradient.
Traced (the same autograd Function on fake tensors): docs/memory-model.md §14. Liger Kernel and Cut
Cross-Entropy hold less (16-bit chunks, or no logits at all): for them this is an upper bound."""

from __future__ import annotations

from qkv.tools.arch import ModelSpec
from qkv.tools.memory.dtypes import count, trained_weight_bytes
from qkv.tools.memory.offload import offloaded
from qkv.tools.memory.schema import MemoryRequest, MemoryTerm


def head_bytes(req: MemoryRequest, upcast: bool) -> float:
    """Bytes of the LM head weight the chunked loss multiplies by: fp32 under fp32, AMP master weights or
    QLoRA's upcast; else 2."""
    if req.method == "qlora":
        return 4.0 if upcast else 2.0
    return trained_weight_bytes(req.precision)


def chunked_loss_terms(spec: ModelSpec, req: MemoryRequest, tokens: int, stream: float,
                       upcast: bool) -> list[MemoryTerm]:
    """Loss-time terms of the chunked loss, replacing the full-logits log-probs and gradients."""
    chunk = min(req.loss_chunk or tokens, tokens)
    hb = head_bytes(req, upcast)
    per_entry = 8.0 + (4.0 if hb == 2 else 0.0)
    vh = spec.vocab * spec.hidden
    trained_head = req.method == "full"
    accumulator = 4.0 * vh if trained_head and hb == 2 else 0.0  # fp32 grad_W, cast to the head dtype at the end
    grad_w = vh * hb if trained_head else 0.0
    # The chunk buffers die when the loop ends; the cast of grad_W comes after: live together are the accumulator
    # and the larger of the two (the saved grad_W term below carries its own bytes).
    buffers = max(chunk * spec.vocab * per_entry, grad_w) - grad_w
    terms = [
        MemoryTerm(name="loss chunk (transient)", bytes=int(buffers + accumulator),
                   formula=f"{count(chunk)} tokens per chunk × {spec.vocab:,} vocab × {per_entry:g} B (two fp32 "
                           "buffers" + (", the 16-bit logits and gradient cast" if hb == 2 else "") + ")"
                           + (f" + fp32 head-gradient accumulator {count(accumulator)} B" if accumulator else ""),
                   note="chunked cross-entropy (qkv's torch backend): one chunk at a time"),
        offloaded(MemoryTerm(name="loss input gradient (saved)", bytes=int(tokens * spec.hidden * stream),
                             formula=f"{count(tokens)} tokens × {spec.hidden} hidden × {stream:g} B (computed per "
                                     "chunk in forward)"), req),
    ]
    if trained_head:
        terms.append(offloaded(MemoryTerm(
            name="loss head weight gradient (saved)", bytes=int(grad_w),
            formula=f"{spec.vocab:,} vocab × {spec.hidden} hidden × {hb:g} B (computed in forward)"), req))
    return terms
