"""The memory techniques of the leading stacks in the estimator (chunked cross-entropy, activation offload,
optimizer in backward, bf16 embeddings under QLoRA) and the diagnosis built on them."""

from __future__ import annotations

import pytest

from qkv.tools.memory.diagnose import diagnose
from qkv.tools.memory.estimate import estimate_memory
from qkv.tools.memory.schema import MemoryRequest

GIB = 2**30
CASE = dict(model="llama-3.1-8b", method="qlora", seq=8192, gpu="rtx-3060-12gb", grad_checkpointing=True)


def term(est, name: str) -> int:
    return sum(t.bytes for t in est.terms if t.name.startswith(name))


def test_chunked_loss_replaces_the_full_logits_by_one_chunk():
    std = estimate_memory(MemoryRequest(**CASE))
    chunked = estimate_memory(MemoryRequest(**CASE, loss_chunk=1024))
    vocab, hidden, tokens = 128_256, 4096, 8192
    assert term(std, "loss log-probs") == tokens * vocab * 4
    assert term(chunked, "loss log-probs") == 0
    # Under checkpointing the loss's buffers and the recomputed layer are never live together: here the layer wins.
    assert term(chunked, "loss chunk") == 0 and term(chunked, "activations (one layer recomputed)") > 0
    flat = estimate_memory(MemoryRequest(**{**CASE, "grad_checkpointing": False}, loss_chunk=1024))
    # qkv's torch chunked loss: two fp32 chunk buffers; the fp32-upcast head needs no 16-bit casts (8 B, not 12)
    assert term(flat, "loss chunk") == 1024 * vocab * 8
    assert term(flat, "loss input gradient") == tokens * hidden * 4  # the fp32 residual stream's dtype
    assert term(chunked, "activations (LM head bf16 copy)") == 0  # the chunked loss runs outside autocast
    assert term(std, "activations (LM head bf16 copy)") == vocab * hidden * 2
    assert chunked.total_bytes < std.total_bytes - 9 * GIB


def test_activation_offload_moves_every_saved_tensor_to_the_host():
    """save_on_cpu (traced, tests/unit/test_trace.py): no saved activation stays on the GPU between forward
    and backward; the host holds them, the LM head weight its matmul saves, and two log-prob copies."""
    on = estimate_memory(MemoryRequest(**CASE, offload_activations=True))
    off = estimate_memory(MemoryRequest(**CASE))
    vocab, hidden, tokens = 128_256, 4096, 8192
    saved = term(off, "activations (checkpointed layer inputs)")
    assert saved == 32 * tokens * 4 * hidden
    assert term(on, "activations (checkpointed layer inputs)") == 0
    final_norm = tokens * 4 * hidden
    # + the LM head's 16-bit copy its matmul saves, two log-prob copies, the final RMSNorm's input a second time
    assert on.host_bytes == saved + final_norm + vocab * hidden * 2 + 2 * tokens * vocab * 4 + tokens * hidden * 4
    assert off.host_bytes == 0
    assert on.allocated_bytes == off.allocated_bytes - saved - final_norm


def test_optimizer_in_backward_keeps_one_gradient():
    full = dict(model="llama-2-7b", method="full", seq=512, gpu="a100-80gb-sxm", precision="bf16")
    base = estimate_memory(MemoryRequest(**full))
    fused = estimate_memory(MemoryRequest(**full, optimizer_in_bwd=True))
    assert fused.total_bytes < base.total_bytes
    with pytest.raises(Exception, match="grad_accum 1"):
        MemoryRequest(**full, optimizer_in_bwd=True, grad_accum=4)


def test_bf16_embeddings_under_qlora_save_the_fp32_upcast():
    up = estimate_memory(MemoryRequest(**CASE))
    bf16 = estimate_memory(MemoryRequest(**CASE, kbit_fp32_upcast=False))
    assert up.total_bytes - bf16.total_bytes > 2 * GIB  # embeddings and LM head: 2 × 525M params × 2 B saved


def test_the_12gb_8k_case_is_diagnosed_loss_first_and_made_to_fit():
    d = diagnose(MemoryRequest(**CASE))
    assert not d.fits and d.ranked[0].name.startswith("loss")
    loss_fix = next(f for f in d.fixes if f.fix.startswith("chunked cross-entropy"))
    assert loss_fix.saving_gib > 9
    assert d.plan_fits and d.plan[0].fix.startswith("chunked cross-entropy")
    # Each step's saving is the re-estimated difference, and the steps chain to the plan's total.
    total = d.total_gib
    for step in d.plan:
        assert step.total_gib == pytest.approx(total - step.saving_gib, abs=0.002)
        total = step.total_gib
    assert all(f.cost for f in d.fixes)


def test_the_plan_keeps_the_method_while_a_technique_suffices():
    d = diagnose(MemoryRequest(model="mistral-7b-v0.1", method="full", seq=2048, gpu="rtx-3090"))
    methods = [f.changes.get("method") for f in d.plan if "method" in f.changes]
    assert methods[:1] == ["lora"]  # LoRA is tried before 4-bit weights
    assert d.plan_fits


T5 = dict(model="t5-base", method="full", seq=512, batch=4)


def test_the_chunked_loss_is_counted_for_causal_decoders_only():
    """qkv's trainer and the tracer chunk a causal decoder's loss only; an encoder-decoder keeps its own loss
    over full logits, so loss_chunk leaves its estimate as it is."""
    std = estimate_memory(MemoryRequest(**T5))
    chunked = estimate_memory(MemoryRequest(**T5, loss_chunk=256))
    assert term(std, "loss log-probs") > 0
    assert chunked.terms == std.terms and chunked.total_bytes == std.total_bytes


def test_the_diagnosis_offers_no_chunked_loss_to_an_encoder_decoder():
    d = diagnose(MemoryRequest(**T5, gpu_memory_gib=2))
    assert any(t.name.startswith("loss") for t in d.ranked[:4])  # the loss is a top term: the fix was considered
    assert d.fixes and d.plan
    assert not any("loss_chunk" in f.changes for f in d.fixes + d.plan)
