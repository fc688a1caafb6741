"""Paged optimizers that really page: what stays on the GPU, what can live in host RAM, and what it costs
(bitsandbytes optim/optimizer.py get_state_buffer and prefetch_state; QLoRA §3)."""

from __future__ import annotations

import pytest

from qkv.tools.memory.estimate import estimate_memory
from qkv.tools.memory.schema import MemoryRequest

FULL_7B = dict(model="llama-2-7b", method="full", seq=512, precision="bf16")
PSI_7B = 6_738_415_616


def states(est) -> int:
    return next(t.bytes for t in est.terms if t.name == "optimizer states")


def test_paged_adamw_keeps_small_tensors_and_one_large_tensors_state_on_the_gpu():
    """Llama-2-7B full FT, bf16 AdamW state (2 × 2 B per value). Under 100k elements (the 65 RMSNorm weights
    of 4,096) never paged; the largest paged tensor is the 32,000 × 4,096 embedding (or LM head)."""
    paged = estimate_memory(MemoryRequest(**FULL_7B, optimizer="paged-adamw"))
    small = 65 * 4096 * 4
    largest = 32_000 * 4096 * 4
    assert states(paged) == small + largest == 525_352_960
    assert paged.host_bytes == PSI_7B * 4 - small - largest  # every other tensor's state can be evicted
    plain = estimate_memory(MemoryRequest(**FULL_7B, optimizer="adamw"))
    assert states(plain) == PSI_7B * 4 and plain.host_bytes == 0
    # The plain AdamW peak is its step (state + foreach temporary); paged, the step no longer dominates.
    assert plain.peak_phase == "optimizer step" and paged.peak_phase != "optimizer step"
    assert paged.total_bytes < plain.total_bytes - 30 * 2**30


def test_paged_8bit_pages_the_8bit_state():
    paged = estimate_memory(MemoryRequest(**FULL_7B, optimizer="paged-adamw-8bit"))
    unpaged = estimate_memory(MemoryRequest(**FULL_7B, optimizer="adamw-8bit"))
    assert states(paged) + paged.host_bytes == states(unpaged)
    # 8-bit from min_8bit_size = 4,096 elements on (the norms too): 2 × (1 + 4/256) B per value
    assert states(paged) == (65 * 4096 + 32_000 * 4096) * 2 * (1 + 4 / 256)


def test_lora_r8_adapters_are_too_small_to_page():
    """A rank-8 adapter of a 4,096-wide layer has 32,768 elements, under bitsandbytes' 1e5 threshold: nothing
    pages; at the QLoRA paper's r = 64 (262,144 elements) the adapters' state does."""
    r8 = estimate_memory(MemoryRequest(model="llama-2-7b", method="qlora", seq=512, optimizer="paged-adamw"))
    assert r8.host_bytes == 0
    r64 = estimate_memory(MemoryRequest(model="llama-2-7b", method="qlora", seq=512, optimizer="paged-adamw",
                                        lora_r=64))
    one = 64 * 4096 * 4 * 2  # one adapter matrix's fp32 AdamW state
    assert states(r64) == one and r64.host_bytes == one * (2 * 2 * 32 - 1)


def test_paged_states_name_their_cost():
    est = estimate_memory(MemoryRequest(**FULL_7B, optimizer="paged-adamw"))
    term = next(t for t in est.terms if t.name == "optimizer states")
    assert "PCIe" in term.note and "host RAM" in term.note
    gb = 2 * est.host_bytes / 1e9
    assert f"{gb:.2f} GB" in term.note


@pytest.mark.parametrize("sharding", ["zero3", "fsdp2"])
def test_paged_state_is_sharded_first(sharding):
    one = estimate_memory(MemoryRequest(**FULL_7B, optimizer="paged-adamw"))
    eight = estimate_memory(MemoryRequest(**FULL_7B, optimizer="paged-adamw", gpus=8, sharding=sharding))
    assert eight.host_bytes == pytest.approx(one.host_bytes / 8, rel=1e-6)


def test_diagnosis_offers_paged_adamw_with_its_re_estimated_saving():
    from qkv.tools.memory.diagnose import diagnose

    req = MemoryRequest(**FULL_7B, gpu="a100-40gb")
    d = diagnose(req)
    fix = next(f for f in d.fixes if f.fix.startswith("paged AdamW"))
    after = estimate_memory(req.model_copy(update={"optimizer": "paged-adamw"}))
    assert fix.saving_gib == pytest.approx((estimate_memory(req).total_bytes - after.total_bytes) / 2**30, abs=1e-3)
    assert "PCIe" in fix.cost
    # never offered "back" from 8-bit to 32-bit paged state
    eight = diagnose(MemoryRequest(**FULL_7B, gpu="a100-40gb", optimizer="adamw-8bit"))
    assert not any(f.fix.startswith("paged AdamW") for f in eight.fixes)
