"""Verdicts: fit, the searches for the largest batch and sequence, and the strategy ladder."""

from __future__ import annotations

import pytest

from qkv.tools.catalog.gpus import get_gpu
from qkv.tools.memory.estimate import estimate_memory
from qkv.tools.memory.schema import MemoryRequest
from qkv.tools.memory.verdict import (
    SAFETY_MARGIN,
    comfortable,
    fit_report,
    fit_state,
    ladder_rungs,
    smallest_gpu_holding,
)


def test_worked_example_climbs_the_levers_before_quantising():
    """7B on one RTX 4090 at 2,048 tokens: full fine-tuning does not fit even with every lever; LoRA alone
    does not fit (activations); LoRA with gradient checkpointing fits with the margin, so no 4-bit weights."""
    report = fit_report(MemoryRequest(model="llama-2-7b", method="qlora", gpu="rtx-4090", seq=2048))
    rungs = {o.name: o for o in report.ladder}
    assert not any(o.fits for name, o in rungs.items() if name.startswith("full"))
    assert not rungs["LoRA"].fits
    assert report.recommended == "LoRA + gradient checkpointing"
    assert rungs["LoRA + gradient checkpointing"].comfortable
    assert not any(name.startswith("QLoRA") for name in rungs)  # the ladder stops at the first that fits


@pytest.mark.parametrize(("model", "gpu", "method"), [("qwen2.5-0.5b", "rtx-4090", "full"),
                                                     ("mistral-7b-v0.1", "rtx-3090", "lora")])
def test_the_issue_cases_keep_the_higher_fidelity_method(model, gpu, method):
    report = fit_report(MemoryRequest(model=model, method="qlora", gpu=gpu, seq=2048))
    chosen = next(o for o in report.ladder if o.name == report.recommended)
    assert chosen.changes["method"] == method


@pytest.mark.parametrize("model", ["qwen2.5-0.5b", "tinyllama-1.1b", "llama-2-7b", "mistral-7b-v0.1",
                                   "llama-3.1-8b", "llama-2-13b"])
@pytest.mark.parametrize("gpu", ["rtx-3060-12gb", "rtx-4090", "a100-40gb-sxm", "a100-80gb-sxm"])
def test_no_cheaper_method_while_a_higher_one_fits(model, gpu):
    """On a grid of models × GPUs the recommended method is the highest-fidelity one that has any rung
    fitting with the margin: never LoRA while full fine-tuning fits, never QLoRA while LoRA fits."""
    req = MemoryRequest(model=model, method="qlora", gpu=gpu, seq=2048)
    usable = get_gpu(gpu).usable_bytes * (1 - SAFETY_MARGIN)
    fitting = [changes["method"] for _, changes in ladder_rungs(req)
               if estimate_memory(req.model_copy(update=changes)).total_bytes <= usable]
    report = fit_report(req)
    if not fitting:
        assert report.recommended is None or "FSDP" in report.recommended
        return
    chosen = next(o for o in report.ladder if o.name == report.recommended)
    assert chosen.changes["method"] == fitting[0]


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


def test_the_full_parameter_ladder_never_shards_over_fewer_gpus_than_stated():
    from qkv.tools.memory.verdict import full_parameter_rungs

    one = [name for name, _ in full_parameter_rungs(1)]
    assert one[:3] == ["full-parameter training", "full + gradient checkpointing",
                       "full + checkpointing + micro-batch 1"] and one[3].endswith("FSDP over 2 GPUs")
    eight = full_parameter_rungs(8)
    shards = [c["gpus"] for _, c in eight if "gpus" in c]
    assert shards[0] == 8 and min(shards) == 8 and shards == sorted(shards)  # the user's 8 first, then more
    assert not any("micro-batch 1" in name for name, _ in eight)  # several GPUs: the batch is the recipe's


def test_fits_tight_and_comfortable_are_one_rule():
    usable = 1000
    edge = usable * (1 - SAFETY_MARGIN)
    assert comfortable(edge, usable) and fit_state(edge, usable) == (True, False)
    assert not comfortable(edge + 1, usable) and fit_state(edge + 1, usable) == (True, True)
    assert fit_state(usable + 1, usable) == (False, False)
    gpu = smallest_gpu_holding(20 * 2**30)
    assert gpu is not None and comfortable(20 * 2**30, gpu.usable_bytes) and not gpu.unified_memory
