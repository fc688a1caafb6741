"""Verdicts: fit, the searches for the largest batch and sequence, and the strategy ladder."""

from __future__ import annotations

from qkv.tools.catalog.gpus import get_gpu
from qkv.tools.memory.estimate import estimate_memory
from qkv.tools.memory.schema import MemoryRequest
from qkv.tools.memory.verdict import SAFETY_MARGIN, fit_report


def test_worked_example_recommends_qlora_on_a_24gb_card():
    """7B on one RTX 4090 at 2,048 tokens: full does not fit; bf16 LoRA (with PEFT's fp32 adapters,
    whose input casts are saved) does not fit either; QLoRA fits with room."""
    report = fit_report(MemoryRequest(model="llama-2-7b", method="qlora", gpu="rtx-4090", seq=2048))
    rungs = {o.name: o for o in report.ladder}
    assert not rungs["full fine-tune"].fits
    assert not rungs["LoRA"].comfortable
    # At 1,536 tokens LoRA fits, but within the safety margin: tight, still not recommended.
    short = fit_report(MemoryRequest(model="llama-2-7b", method="qlora", gpu="rtx-4090", seq=1536))
    lora = next(o for o in short.ladder if o.name == "LoRA")
    assert lora.fits and lora.tight and short.recommended == "QLoRA"
    assert report.recommended == "QLoRA"
    usable = get_gpu("rtx-4090").usable_bytes
    assert rungs["QLoRA"].total_bytes <= usable * (1 - SAFETY_MARGIN)


def test_max_batch_and_seq_are_the_exact_boundaries():
    req = MemoryRequest(model="llama-2-7b", method="qlora", gpu="rtx-4090", seq=512)
    report = fit_report(req)
    b, s = report.max_batch, report.max_seq
    assert b >= 1 and s >= 512

    def fits(**kw) -> bool:
        return estimate_memory(req.model_copy(update=kw)).fit.fits

    assert fits(batch=b) and not fits(batch=b + 1)
    assert fits(seq=s) and (s == 4096 or not fits(seq=s + 1))  # capped at the 4,096-token window


def test_ladder_shards_when_nothing_fits_one_gpu():
    report = fit_report(MemoryRequest(model="llama-3.1-405b", method="full", gpu="h100-sxm", seq=4096))
    assert report.max_batch == 0
    assert report.recommended and "FSDP" in report.recommended
    last = report.ladder[-1]
    assert last.fits and last.changes["gpus"] >= 2


def test_inference_splits_weights_over_gpus_unless_replicated():
    one = estimate_memory(MemoryRequest(model="llama-3.1-70b", method="inference", seq=8192))
    four = estimate_memory(MemoryRequest(model="llama-3.1-70b", method="inference", seq=8192, gpus=4))
    ddp = estimate_memory(MemoryRequest(model="llama-3.1-70b", method="inference", seq=8192, gpus=4, sharding="ddp"))
    w = [next(t.bytes for t in e.terms if t.name == "weights") for e in (one, four, ddp)]
    assert w[1] == w[0] // 4 and w[2] == w[0]


def test_zero3_beats_ddp_per_gpu_for_full_fine_tuning():
    kw = dict(model="llama-2-13b", method="full", precision="bf16-mixed", seq=1024, gpus=8)
    ddp = estimate_memory(MemoryRequest(sharding="ddp", **kw)).allocated_bytes
    zero3 = estimate_memory(MemoryRequest(sharding="zero3", **kw)).allocated_bytes
    assert zero3 < ddp / 3
