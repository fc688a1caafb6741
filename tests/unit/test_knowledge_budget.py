"""Training budgets in both directions (qkv.tools.knowledge.budget): data → epochs/steps, hardware time →
tokens at a fixed size, capped by repeats of unique data."""

from __future__ import annotations

import math

import pytest

from qkv.tools.knowledge.budget import (
    ComputeBudgetRequest,
    DataBudgetRequest,
    compute_budget,
    data_budget,
    epochs_for,
    pretrain_steps,
)
from qkv.tools.knowledge.scaling import flops_in_gpu_time


def _req(**kw) -> DataBudgetRequest:
    base = dict(examples=200_000, tokens_per_example=512, length_basis="stated", seq=2048, batch_sequences=128,
                epochs=2, epochs_figure=epochs_for(200_000, encoder=False), trainable_flops_per_token=6 * 7e9,
                flops_basis="6N", gpu="a100-80gb-sxm", gpus=4, warmup_ratio=0.03)
    return DataBudgetRequest(**{**base, **kw})


def test_steps_epochs_and_warmup_follow_from_the_data_and_the_batch():
    b = data_budget(_req())
    assert b.tokens_per_epoch.value == 200_000 * 512
    assert b.steps_per_epoch.value == math.ceil(200_000 / 128) == 1563
    assert b.steps.value == 3126 and b.warmup_steps.value == math.ceil(0.03 * 3126)
    assert b.train_flops.value == pytest.approx(6 * 7e9 * 200_000 * 512 * 2)
    # The time bound is the scaling tool's roofline: FLOPs / (GPUs × peak × MFU).
    per_hour = flops_in_gpu_time("a100-80gb-sxm", 1.0)
    assert b.hours.value == pytest.approx(b.train_flops.value / (4 * per_hour))


def test_examples_longer_than_the_sequence_are_truncated_and_said():
    b = data_budget(_req(tokens_per_example=4096, seq=1024))
    assert b.tokens_per_epoch.value == 200_000 * 1024 and "truncated" in b.notes[0]


def test_small_data_and_few_steps_get_a_fitting_note():
    assert "small" in data_budget(_req(examples=500)).fit_note
    assert "too few" in data_budget(_req(examples=2000, batch_sequences=128, epochs=1)).fit_note


def test_epochs_are_cited_per_model_kind_and_data_size():
    assert epochs_for(100_000, encoder=True).sources == ["devlin2019"]
    assert epochs_for(300_000, encoder=False).value == 2 and epochs_for(50_000, encoder=False).value == 3


def test_a_fixed_size_spends_the_whole_hardware_budget_on_tokens():
    cb = compute_budget(ComputeBudgetRequest(gpu="h100-sxm", gpus=64, hours=336, params=1.0e9))
    assert cb.flops.value == pytest.approx(flops_in_gpu_time("h100-sxm", 64 * 336))
    assert cb.planned_tokens.value == pytest.approx(cb.flops.value / 6e9)
    assert cb.used_share.value == 1.0 and cb.tokens_per_param.value > 1000
    assert "past Chinchilla" in cb.reason and "unique" in cb.notes[0]


def test_unique_data_caps_the_tokens_at_four_epochs_and_says_why():
    cb = compute_budget(ComputeBudgetRequest(gpu="h100-sxm", gpus=64, hours=336, params=1.0e9, unique_tokens=2e11))
    assert cb.planned_tokens.value == 8e11 and cb.used_share.value < 0.5
    assert "Muennighoff" in cb.reason and "muennighoff2023" in cb.sources


def test_pretraining_steps_from_tokens_and_batch():
    steps, warm, notes = pretrain_steps(1e12, 1e6, 375e6)
    assert steps.value == 1_000_000 and warm.value == 375 and not notes
    assert "TinyLlama" in pretrain_steps(5e12, 724_152, 375e6)[2][0]
