"""Hyperparameters by scale: QLoRA and PEFT defaults from tests/data/anchors/facts.json, GPT-3 Table
2.1, and hard rule 2 (no one default across scales; every value sourced)."""

from __future__ import annotations

import re
from importlib.util import find_spec
from pathlib import Path

import pytest
from pydantic import ValidationError

from qkv.tools.errors import BadInput, UnknownName
from qkv.tools.knowledge.hparams import PEFT_DEFAULTS, HparamRequest, recommend_hparams
from qkv.tools.knowledge.schema import figures
from qkv.tools.knowledge.sources import SOURCES
from qkv.tools.knowledge.tables import gpt3_table21
from tests.anchors import load_anchor

FACTS = load_anchor("facts.json")
METHODS = ("full", "lora", "qlora", "pretrain")


@pytest.mark.parametrize("method", METHODS)
def test_a_70b_and_a_1b_get_different_learning_rates_with_sources(method):
    small = recommend_hparams(HparamRequest(params=1e9, method=method))
    large = recommend_hparams(HparamRequest(params=70e9, method=method))
    assert small.learning_rate.value != large.learning_rate.value
    assert small.learning_rate.value > large.learning_rate.value  # larger models train at lower rates
    for plan in (small, large):
        assert plan.learning_rate.sources, "the learning rate must carry its source"
        for f in figures(plan):
            assert f.provenance in ("analytic", "cited") and all(s in SOURCES for s in f.sources)
            if f.provenance == "cited":
                assert f.sources


def test_qlora_recipe_reproduces_the_anchor():
    text = FACTS["qlora-hparams"]["expected"]
    r, alpha = (int(x) for x in re.search(r"r=(\d+), α=(\d+)", text).groups())
    grad = float(re.search(r"max_grad_norm ([\d.]+)", text).group(1))
    warm = float(re.search(r"(\d+)% warmup", text).group(1)) / 100
    batch = int(re.search(r"effective batch (\d+)", text).group(1))
    lr_small, lr_big = (float(x) for x in re.search(r"LR ([\de.-]+) for 7B/13B, ([\de.-]+) for 33B/65B", text).groups())
    drop_small, drop_big = (float(x) for x in re.search(r"dropout ([\d.]+) \(7B\) and ([\d.]+)", text).groups())
    cases = [(recommend_hparams(HparamRequest(model="llama-2-7b", method="qlora")), lr_small, drop_small),
             (recommend_hparams(HparamRequest(params=13e9, method="qlora")), lr_small, drop_small),
             (recommend_hparams(HparamRequest(params=33e9, method="qlora")), lr_big, drop_big),
             (recommend_hparams(HparamRequest(params=65e9, method="qlora")), lr_big, drop_big)]
    for plan, lr, dropout in cases:
        assert plan.learning_rate.value == lr and plan.learning_rate.sources == ["dettmers2023"]
        assert plan.lora.r.value == r and plan.lora.alpha.value == alpha
        assert plan.lora.dropout.value == dropout
        assert plan.max_grad_norm.value == grad
        assert plan.schedule.value == "constant" and plan.warmup.value == warm
        assert plan.batch_sequences.value == batch
        assert plan.optimizer.value == "paged_adamw_32bit" and "nf4" in plan.quantization.value
        assert plan.lora.scaling.value == alpha / r
    # "all linear layers": the named model's real linear modules
    assert cases[0][0].lora.targets.value == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                              "down_proj"]


def test_peft_defaults_match_the_anchor_and_the_installed_peft_source():
    text = FACTS["peft-defaults"]["expected"]
    want = {k: float(v) for k, v in re.findall(r"(r|lora_alpha|lora_dropout)=([\d.]+)", text)}
    assert want == {k: float(v) for k, v in PEFT_DEFAULTS.items()}
    # read peft's dataclass defaults from its source (importing peft would import torch)
    src = Path(find_spec("peft").origin).parent.joinpath("tuners", "lora", "config.py").read_text()
    for name, value in PEFT_DEFAULTS.items():
        m = re.search(rf"\n    {name}: \w+ = field\(default=([\d.]+)", src)
        assert m and float(m.group(1)) == value, name
    plan = recommend_hparams(HparamRequest(params=7e9, method="lora"))
    assert plan.lora.peft_defaults == PEFT_DEFAULTS and "peft" in plan.sources
    # ΔW scaled by α/r (α/√r with use_rslora)
    assert "α/r" in text and "α/√r with use_rslora" in text
    assert plan.lora.scaling.value == plan.lora.alpha.value / plan.lora.r.value
    assert plan.lora.scaling.formula == "alpha / r" and "alpha / sqrt(r)" in plan.lora.scaling.note


@pytest.mark.parametrize("row", gpt3_table21(), ids=lambda r: r["name"])
def test_pretraining_rows_of_gpt3_table_2_1_are_cited_exactly(row):
    plan = recommend_hparams(HparamRequest(params=row["params"], method="pretrain"))
    assert plan.learning_rate.value == row["lr"] and plan.learning_rate.provenance == "cited"
    assert plan.batch_tokens.value == row["batch_tokens"]
    assert plan.weight_decay.value == 0.1 and plan.max_grad_norm.value == 1.0


def test_between_rows_the_rate_is_interpolated_and_says_so():
    plan = recommend_hparams(HparamRequest(params=7e9, method="pretrain", tokens=1e12))
    assert 1.0e-4 < plan.learning_rate.value < 1.2e-4
    assert plan.learning_rate.provenance == "analytic" and "6.7B and 13B" in plan.learning_rate.formula
    assert plan.steps.value == 500_000 and plan.warmup_steps.value == 188  # 375M tokens / 2M-token batches
    assert any("Llama 2" in n for n in plan.notes)


def test_full_fine_tuning_follows_alpaca_and_tulu():
    assert recommend_hparams(HparamRequest(params=6.7e9, method="full")).learning_rate.value == 2e-5
    assert recommend_hparams(HparamRequest(params=13e9, method="full")).learning_rate.value == 1e-5
    big = recommend_hparams(HparamRequest(params=70e9, method="full"))
    assert big.learning_rate.value == 1e-5 and big.learning_rate.sources == ["ivison2023"]
    assert recommend_hparams(HparamRequest(params=1.1e8, method="full")).learning_rate.value == 5e-5


def test_small_models_get_the_lora_paper_recipe_on_their_real_modules():
    plan = recommend_hparams(HparamRequest(model="gpt2", method="lora", tokens=1e7, seq=512))
    assert plan.lora.r.value == 4 and plan.lora.alpha.value == 32 and plan.lora.targets.value == ["c_attn"]
    assert plan.learning_rate.sources == ["hu2021"]
    assert plan.warmup_steps.value == 500 and plan.steps.value == 2442  # ceil(1e7 / (8 × 512))


@pytest.mark.parametrize("fields", [{}, {"model": "gpt2", "params": 1e8}, {"params": 0}, {"params": -7e9},
                                    {"params": 7e9, "tokens": 0}, {"params": 7e9, "seq": 0}])
def test_impossible_requests_are_clear_errors(fields):
    with pytest.raises(BadInput):
        HparamRequest(**fields)


def test_unknown_model_and_method():
    with pytest.raises(UnknownName):
        recommend_hparams(HparamRequest(model="llama-9-7b"))
    with pytest.raises(ValidationError):
        HparamRequest(params=7e9, method="dpo")
