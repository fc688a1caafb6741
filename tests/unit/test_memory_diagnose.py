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
    assert term(chunked, "loss chunk") == 1024 * vocab * 12
    assert term(chunked, "loss input gradient") == tokens * hidden * 4
    assert chunked.total_bytes < std.total_bytes - 9 * GIB


def test_activation_offload_keeps_two_layers_on_the_gpu_and_the_rest_on_the_host():
    on = estimate_memory(MemoryRequest(**CASE, offload_activations=True))
    off = estimate_memory(MemoryRequest(**CASE))
    saved = term(off, "activations (checkpointed layer inputs)")
    assert term(on, "activations (checkpointed layer inputs) on the GPU") == saved * 2 // 32
    assert on.host_bytes == pytest.approx(saved * 30 / 32, rel=1e-6)
    assert off.host_bytes == 0


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
