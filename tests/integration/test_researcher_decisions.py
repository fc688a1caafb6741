"""The decisions a principal researcher signs (issue 22), one test per example of the review: the
design runs with `--llm none` through the API the CLI uses, and each asserts the decision itself."""

from __future__ import annotations

import math

from qkv.tools.catalog.models import get_model

CHATBOT = "a multilingual customer-support chatbot for English, Hindi and Arabic on 4 A100s, 200k dialogues"
CODE = "Pretrain a 1B code model; 64 H100s for 2 weeks"
TOXICITY = "fine-tune bert-base for toxicity classification of 100k labelled comments on a T4"
LEGAL = "fine-tune a 7B model for legal summarisation on one 24 GB consumer GPU"


def test_multilingual_chatbot_gets_a_language_covering_instruct_model(run):
    r = run(CHATBOT)
    caps = get_model(r.architecture.base_model).capabilities
    assert caps is not None and {"en", "hi", "ar"} <= set(caps.languages)
    assert caps.variant == "instruct"
    assert r.architecture.base_model != "llama-2-7b"
    assert "named in the request" not in r.architecture.rationale  # no model was named
    lost = {c["model"]: c["lost_because"] for c in r.architecture.candidates}
    assert "does not cover" in lost["llama-2-7b"] and "ar" in lost["llama-3.1-8b-instruct"]
    assert any("per language" in m["name"] for m in r.objective.recipe["metrics"])
    assert any("PII" in d for d in r.ethics.data)


def test_data_size_becomes_epochs_and_steps_and_config_batch_equals_report_batch(run):
    r = run(CHATBOT)
    b = r.resource_budget.data_budget
    assert b.examples == 200_000 and b.epochs == 2  # Tulu 2's epochs for >100k examples
    assert b.steps_per_epoch == math.ceil(200_000 / b.global_batch)
    assert b.steps == b.steps_per_epoch * b.epochs
    cfg = r.training_config.config
    assert cfg["train"]["max_steps"] == b.steps and cfg["optim"]["warmup_steps"] == b.warmup_steps
    gpus = r.efficiency.gpus
    assert cfg["train"]["micro_batch"] * cfg["train"]["grad_accum"] * gpus == b.global_batch
    assert r.efficiency.micro_batch * r.efficiency.grad_accum * gpus == b.global_batch
    assert b.global_batch == r.efficiency.hyperparameters["batch_sequences"]
    assert b.hours and b.hours > 0  # a time bound on the stated GPUs


def test_code_pretraining_spends_the_stated_compute_budget(run):
    r = run(CODE)
    p = r.resource_budget.pretraining
    assert p.used_share >= 0.5 and p.budget_reason
    assert p.flops >= 0.5 * p.budget_flops
    assert p.tokens_per_param > 20  # past Chinchilla on purpose: the size is fixed
    assert any("Muennighoff" in n for n in p.notes)


def test_code_pretraining_plans_fim_pass_at_k_and_code_hygiene(run):
    r = run(CODE)
    assert "fill-in-the-middle" in r.objective.recipe["objective"].lower() or "FIM" in r.objective.loss
    assert "pass@1" in r.objective.metrics and "fim_pass@1" in r.objective.metrics
    data = " ".join(r.ethics.data).lower()
    assert "decontamination" in data and "licence" in data and "secret" in data
    assert r.inference.sampling["temperature"] <= 0.2 and r.inference.sampling["repetition_penalty"] == 1.0
    assert "train" in r.tokenization.recommendation and "no base tokenizer" in r.tokenization.recommendation


def test_bert_on_t4_trains_in_fp16_with_devlins_recipe(run):
    r = run(TOXICITY)
    assert r.resource_budget.precision.dtype == "fp16"
    args = r.training_config.hf_trainer_arguments
    assert args["fp16"] is True and args["bf16"] is False
    assert 2e-5 <= args["learning_rate"] <= 5e-5
    b = r.resource_budget.data_budget
    assert b.global_batch in (16, 32) and 2 <= b.epochs <= 4
    assert args["per_device_train_batch_size"] * args["gradient_accumulation_steps"] == b.global_batch
    assert args["max_steps"] == b.steps == math.ceil(100_000 / b.global_batch) * b.epochs


def test_toxicity_is_multi_label_with_identity_bias_evaluation(run):
    r = run(TOXICITY)
    assert "binary cross-entropy" in r.objective.loss
    assert {"pr_auc", "roc_auc", "subgroup_auc", "bpsn_auc", "bnsp_auc"} <= set(r.objective.metrics)
    assert "accuracy" not in r.objective.metrics
    bias = " ".join(r.ethics.biased_token_distributions)
    assert "BPSN" in bias and "Borkan" in bias
    assert not r.ethics.proxies and not r.ethics.hallucination  # a classifier does not hallucinate text
    assert r.training_config.hf_trainer_arguments["problem_type"] == "multi_label_classification"


def test_legal_summarisation_decoding_has_no_ngram_blocking_and_a_stronger_base(run):
    r = run(LEGAL)
    assert "no_repeat_ngram_size" not in r.inference.sampling
    assert all("pass it through" not in n for n in r.inference.notes)
    assert any("deliberately not set" in n for n in r.inference.notes)
    assert r.architecture.base_model != "llama-2-7b"
    lost = {c["model"]: c["lost_because"] for c in r.architecture.candidates}
    assert "pretraining tokens" in lost["llama-2-7b"]
    names = " ".join(b for b in r.ethics.baselines)
    assert "Lead-k" in names and "zero-shot" in names
    assert any("faithfulness" in m["name"] for m in r.objective.recipe["metrics"])


def test_lora_plans_never_advise_vocabulary_extension_without_training_embeddings(run):
    r = run(LEGAL)
    assert r.efficiency.method in ("lora", "qlora")
    rule = next(p for p in r.tokenization.plan if p.startswith("Decision rule"))
    assert "keep the tokenizer" in rule and "modules_to_save" in rule


def test_no_runnable_config_for_a_plan_that_does_not_fit(run):
    r = run("full fine-tune llama-3.1-70b on one RTX 4090 for chat with 10k dialogues")
    assert r.efficiency.fits is False
    assert r.training_config.available is False and "does not fit" in r.training_config.reason


def test_a_named_model_is_kept_and_its_gap_is_said(run):
    r = run("fine-tune llama-2-7b as a Hindi customer-support chatbot on one A100 80GB")
    assert r.architecture.base_model == "llama-2-7b"
    assert r.architecture.rationale == "named in the request"
    assert any("does not cover hi" in n for n in r.architecture.choice_notes)
