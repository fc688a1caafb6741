"""Task recipes, precision per GPU and the vocabulary rule (qkv.tools.knowledge.recipes / precision)."""

from __future__ import annotations

import pytest

from qkv.tools.knowledge.precision import training_precision
from qkv.tools.knowledge.recipes import families, family_for, recipe_for, vocabulary_rule
from qkv.tools.knowledge.sources import SOURCES


@pytest.mark.parametrize("family", families())
def test_every_recipe_item_cites_known_sources(family):
    label = {"classification-multilabel": "classification", "pretraining": "language-modelling",
             "pretraining-code": "code"}.get(family, family)
    mode = "pre-train" if family.startswith("pretraining") else "fine-tune"
    r = recipe_for(label, "code" if family.endswith("code") else None, mode,
                   "toxicity" if family.endswith("multilabel") else "")
    assert r.family == family
    assert r.metrics and r.baselines and r.ethics["evaluation"] and r.loss_sources
    assert all(s in SOURCES for s in r.sources), [s for s in r.sources if s not in SOURCES]


def test_family_from_task_domain_mode_and_wording():
    assert family_for("classification", text="toxicity classification of comments") == "classification-multilabel"
    assert family_for("classification", text="classify tickets by intent") == "classification"
    assert family_for("language-modelling", "code", "pre-train") == "pretraining-code"
    assert family_for("code", "code", "fine-tune") == "code"


def test_toxicity_recipe_has_bce_pr_auc_and_borkan_bias_metrics():
    r = recipe_for("classification", text="toxic comment classification")
    assert "binary cross-entropy" in r.loss and "pr_auc" in r.metric_ids and "bpsn_auc" in r.metric_ids
    assert "borkan2019" in r.sources and "dixon2018" in r.sources


def test_multilingual_adds_per_language_evaluation_and_fertility():
    r = recipe_for("chat", "customer-support", languages=["en", "hi", "ar"])
    assert r.multilingual and any("per language" in m.name for m in r.metrics)
    assert "fertility" in (r.tokenizer or "") and "rust2021" in r.sources


@pytest.mark.parametrize(("gpu", "dtype"), [("t4", "fp16"), ("v100-32gb", "fp16"), ("a100-80gb-sxm", "bf16"),
                                            ("h100-sxm", "bf16"), ("rtx-4090", "bf16")])
def test_precision_follows_the_gpu_generation(gpu, dtype):
    p = training_precision(gpu)
    assert p.dtype == dtype
    assert ("micikevicius2018" in p.sources) == (dtype == "fp16")


def test_stated_bf16_on_a_t4_becomes_fp16_and_is_a_departure():
    p = training_precision("t4", "bf16")
    assert p.dtype == "fp16" and p.departure and "bf16" in p.departure


def test_vocabulary_extension_is_tied_to_what_trains():
    assert "keep the tokenizer" in vocabulary_rule("lora", "fine-tune", 0.05)
    assert "modules_to_save" in vocabulary_rule("qlora", "fine-tune", 0.05)
    assert "extend the vocabulary" in vocabulary_rule("full", "fine-tune", 0.05)
    assert "train one" in vocabulary_rule("full", "pre-train", None)
