"""The design agent end to end on real tools (catalogs, memory estimator, knowledge tools): the
persona's worked example and further scenarios, each with its decisions asserted."""

from __future__ import annotations

import pytest

from qkv.agent.graph.schemas import DesignReport

WORKED = "Fine-tune a 7B parameter Transformer for legal document summarization on a consumer GPU with 24GB VRAM"


def check(report: DesignReport, rule: str):
    return next(c for c in report.checks if c.rule.startswith(rule))


# ------------------------------------------------------------------------------------------ worked example
def test_worked_example_decisions(run):
    r = run(WORKED)
    assert (r.objective.kind, r.objective.architecture) == ("generation", "decoder-only")
    assert {"rouge1", "rougeL", "perplexity"} <= set(r.objective.metrics)
    assert 6e9 < r.architecture.params < 8e9
    # Chosen by capability (issue 22), not by a tie-break on size: Qwen2.5-7B (18T pretraining tokens, a
    # 131k window) over Llama-2-7B (2T, 4k) and Mistral-7B; no model was named.
    assert r.architecture.base_model == "qwen2.5-7b"
    e = r.efficiency
    # The levers that keep quality come first: 16-bit LoRA with checkpointing and the chunked loss fits with
    # the margin, so no 4-bit weights (LoRA + checkpointing alone fits, but inside the 10% margin).
    assert e.method == "lora" and e.quantization is None and e.strategy == "LoRA + checkpointing + chunked loss"
    assert e.fits and e.peak_vram_gib < e.usable_gib * 0.9  # fits with the safety margin
    # The breakdown adds up to the peak, and every full fine-tuning rung and plain LoRA were tried first.
    assert sum(b.gib for b in e.breakdown) == pytest.approx(e.peak_vram_gib, abs=0.02)
    names = [a.name for a in e.alternatives]
    assert names[0] == "full fine-tune" and names[-3:] == ["LoRA", "LoRA + gradient checkpointing",
                                                           "LoRA + checkpointing + chunked loss"]
    assert not any(a.fits and not a.tight for a in e.alternatives[:-1])
    # ... and weighed against QLoRA in words: memory, the longest sequence, step time, quality risk, the rule.
    t = e.tradeoffs
    lora, qlora = t["options"]
    assert qlora["method"] == "qlora" and qlora["total_gib"] < lora["total_gib"]
    assert lora["max_seq"] >= 2048 and "QLoRA is the usual answer" in t["summary"] and "highest-fidelity" in t["rule"]
    # Hyperparameters scaled to 7B (QLoRA paper): r 64, alpha 16, lr 2e-4, with sources.
    hp = e.hyperparameters
    assert (hp["lora_r"], hp["lora_alpha"], hp["learning_rate"]) == (64, 16, 2e-4)
    assert "dettmers2023" in e.provenance["hyperparameters.learning_rate"]


def test_worked_example_inference_and_tokenizer(run):
    r = run(WORKED)
    assert r.inference.attention_kernel == "flash_attention_2"  # Ada Lovelace: FlashAttention-2 runs
    assert any("sdpa" in n for n in r.inference.notes)  # and on a CPU, sdpa
    s = r.inference.sampling
    assert s["max_new_tokens"] and (s["num_beams"] > 1 or s["temperature"] == 0 or s["top_p"] < 1 or s["top_k"] > 0)
    assert r.inference.kv_cache_gib > 0 and r.inference.fits
    t = r.tokenization
    assert not t.audited and "estoppel" in t.domain_terms and any("qkv audit" in p for p in t.plan)
    assert [c.status for c in r.checks] == ["pass", "pass", "pass", "pass"]
    assert r.checks[3].rule == "stated constraints honoured"


def test_worked_example_report_has_every_section(run):
    r = run(WORKED)
    data = r.model_dump()
    for key in ("task", "assumptions", "objective", "architecture", "efficiency", "tokenization", "inference",
                "resource_budget", "layer_profile", "ethics", "checks", "training_config"):
        assert key in data
    assert r.ethics.proxies and r.ethics.hallucination
    assert r.layer_profile.attention_type == "GQA" and r.layer_profile.layers == 28  # Qwen2.5-7B: 28 × (28q/4kv)
    tc = r.training_config
    assert tc.available and tc.config["method"]["kind"] == "lora" and tc.config["method"]["r"] == 64
    assert tc.yaml.startswith("# qkv train") and tc.config["data"]["format"] == "prompt_response"
    assert r.resource_budget.train_peak_vram_gib == r.efficiency.peak_vram_gib
    # Every number-bearing section says where its numbers come from.
    for section in (r.objective, r.architecture, r.efficiency, r.inference):
        assert section.provenance


def test_training_config_round_trips_through_the_trainer(run):
    from qkv.tools.train.config import config_from_dict

    cfg = run(WORKED).training_config.config
    assert config_from_dict(cfg).method.kind == "lora"


# --------------------------------------------------------------------------------------- further scenarios
def test_classification_chooses_an_encoder(run):
    r = run("classify customer support tickets into 20 intents on a T4")
    assert (r.objective.kind, r.objective.architecture) == ("understanding", "encoder-only")
    assert r.architecture.base_model.startswith(("bert", "roberta"))
    assert set(r.objective.metrics) >= {"accuracy"}
    assert r.efficiency.method == "full" and r.efficiency.fits  # a 110M encoder fully fine-tunes on 16 GB
    assert r.inference.attention_kernel == "sdpa"  # Turing: no FlashAttention-2
    assert not r.training_config.available and "causal" in r.training_config.reason


def test_extractive_qa_chooses_an_encoder(run):
    r = run("extractive question answering over product manuals on an RTX 3060")
    assert r.objective.architecture == "encoder-only"
    assert {"exact_match", "f1"} <= set(r.objective.metrics)


def test_translation_chooses_encoder_decoder(run):
    r = run("translate English to German on one RTX 3090")
    assert (r.objective.kind, r.objective.architecture) == ("translation", "encoder-decoder")
    assert r.architecture.base_model.startswith("t5")
    assert "bleu" in r.objective.metrics and "chrf" in r.objective.metrics
    assert r.task.source_lang == "en" and r.task.target_lang == "de"


def test_70b_qlora_does_not_fit_24gb_and_says_what_would(run):
    r = run("fine-tune a 70B model with QLoRA for chat on one RTX 4090")
    e = r.efficiency
    assert e.method == "qlora" and not e.fits
    assert e.peak_vram_gib > 24
    assert any("GPUs" in w for w in e.what_would_fit)  # sharding over more cards
    assert any("GB)" in w for w in e.what_would_fit)  # a bigger card
    import re

    cards = [int(m.group(1)) for w in e.what_would_fit if (m := re.search(r"^one .+ \((\d+) GB\)", w))]
    assert cards and all(gb >= 48 for gb in cards)


def test_70b_qlora_fits_on_a_big_card(run):
    r = run("fine-tune a 70B model with QLoRA for chat on one A100 80GB")
    assert r.efficiency.method == "qlora" and r.efficiency.fits
    assert r.efficiency.peak_vram_gib > 48 * 0.5  # it needs a 48 GB+ class card, not a 24 GB one


def test_context_beyond_window_with_named_model_scales_rope(run):
    r = run("summarise 16k-token contracts with llama-2-7b on one A100 80GB")
    a = r.architecture
    assert a.context_window == 4096 and a.required_tokens == 16384
    assert a.context_action == "rope_scaling" and a.rope_scaling and a.train_seq == 16384
    assert check(r, "context window").status == "warn"
    assert any("yarn" in w or "×" in w for w in r.efficiency.warnings) or "yarn" in str(a.rope_scaling).lower()


def test_context_beyond_window_with_size_budget_picks_long_context_model(run):
    r = run("summarise 16k-token contracts with a 7B model on one A100 80GB")
    assert r.architecture.context_action == "long_context_model"
    assert r.architecture.context_window >= 16384
    assert check(r, "context window").status == "pass"


def test_encoder_past_its_window_is_chunked(run):
    r = run("classify 4k-token contracts with bert-base on a T4")
    a = r.architecture
    assert a.base_model == "bert-base-uncased" and a.context_action == "chunking" and a.train_seq == 512
    assert r.objective.architecture == "encoder-only"


def test_inference_only_sizing(run):
    r = run("serve llama-2-13b on an L4 for 8 concurrent users at 4k tokens")
    assert r.task.mode == "inference" and r.efficiency.method == "none"
    i = r.inference
    assert i.concurrency == 8 and i.context_tokens == 4096
    assert i.kv_cache_gib == pytest.approx(25.0, rel=0.01)  # 8 × 4096 tokens × 0.78 MiB/token (13B, MHA, bf16)
    assert not i.fits and i.what_would_fit  # no format holds 8 × 4k on 24 GB: fewer streams or a bigger card
    assert r.training_config.available is False


def test_inference_quantises_only_when_needed(run):
    r = run("deploy llama-2-7b as a chatbot on an RTX 4090")
    assert r.inference.quantization == "bf16" and r.inference.fits
    r = run("deploy llama-2-13b as a chatbot on an RTX 4090")
    assert r.inference.quantization in ("int8", "nf4") and r.inference.fits


def test_pretraining_compute_budget(run):
    r = run("pre-train a language model from scratch with a budget of 1e21 FLOPs on 8x H100")
    assert r.task.mode == "pre-train" and r.efficiency.method == "full"
    p = r.efficiency.pretraining
    assert p and 2e9 < p["params"] < 4e9  # Chinchilla-optimal N for 1e21 FLOPs ≈ 2.9B
    assert p["tokens_per_param"] == pytest.approx(20, rel=0.3)
    assert p["training_days"] and p["training_days"] > 0
    assert r.efficiency.fits


def test_multi_gpu_full_fine_tune_shards(run):
    r = run("full fine-tune of llama-2-13b for code generation on 4x A100 80GB")
    e = r.efficiency
    assert e.method == "full" and e.sharding == "fsdp" and e.gpus == 4 and e.fits
    single = run("full fine-tune of llama-2-13b for code generation on one A100 80GB")
    # Unsharded, plain full fine-tuning of 13B does not fit 80 GB; the levers that keep the method make it fit.
    full_single = next(a for a in single.efficiency.alternatives if a.name.startswith("full fine-tune"))
    assert not full_single.fits and e.peak_vram_gib < full_single.total_gib / 2
    assert single.efficiency.method == "full" and "8-bit AdamW" in single.efficiency.strategy


def test_deployment_without_sampling_bounds_is_flagged(run):
    r = run("deploy a 7B chatbot on an RTX 4090 with temperature 1.0 and no top-p or top-k")
    c = check(r, "no deployment")
    assert c.status == "fail" and "unbounded" in c.detail
    assert r.inference.sampling["top_p"] < 1 or r.inference.sampling["top_k"] > 0  # the plan is bounded


def test_impossible_request_says_what_would_make_it_possible(run):
    r = run("full fine-tune llama-3.1-405b on one RTX 3060")
    assert not r.efficiency.fits and r.efficiency.strategy.startswith("nothing fits")
    assert any("smaller model" in w for w in r.efficiency.what_would_fit)


def test_hyperparameters_differ_across_scales(run):
    small = run("fine-tune llama-2-7b for legal summarisation on one A100 80GB").efficiency.hyperparameters
    big = run("fine-tune a 70B model with QLoRA for chat on one A100 80GB").efficiency.hyperparameters
    assert small["learning_rate"] != big["learning_rate"]


def test_options_override_text(run):
    r = run("summarise legal contracts", gpu="h100", gpus=2, model="mistral-7b-v0.1")
    assert (r.efficiency.gpu, r.efficiency.gpus, r.architecture.base_model) == ("h100-sxm", 2, "mistral-7b-v0.1")
    assert not any(a.field in ("gpu", "gpus", "base_model") for a in r.assumptions)


def test_layer_profile_reports_gqa_and_sliding_window(run):
    r = run("chat assistant with mistral-7b-v0.1 on an RTX 4090")
    lp = r.layer_profile
    assert lp.attention_type == "GQA" and lp.query_heads_per_kv_head == 4
    assert lp.sliding_window == 4096


def test_stated_method_is_where_the_ladder_starts(run):
    r = run("fine-tune llama-2-7b with LoRA for legal summarisation on one A100 80GB")
    assert r.task.method == "lora" and r.efficiency.method == "lora"  # full would fit, but LoRA was asked for
    assert run("fine-tune llama-2-7b for legal summarisation on one A100 80GB").efficiency.method == "full"
    r = run("full fine-tune llama-2-7b for chat on an RTX 4090")
    assert r.efficiency.method == "lora"  # the smallest change: the next method, not 4-bit weights
    assert any("method: stated full, planned lora" in w for w in r.efficiency.warnings)
    assert r.efficiency.stated_plan is not None and not r.efficiency.stated_plan.fits
    assert check(r, "stated constraints").status == "warn"


def test_latency_target_drives_weight_quantisation(run):
    r = run("serve llama-2-7b as a chatbot on an RTX 4090 at under 10 ms per token")
    i = r.inference
    # bf16 fits but its bandwidth roofline (~69 tokens/s, 14 ms/token) misses the target; int8 meets it.
    assert r.task.latency_ms == 10.0 and i.quantization == "int8"
    assert [a.name for a in i.alternatives] == ["bf16", "int8"] and i.alternatives[0].fits
    assert 1000 / i.decode_tok_s_upper <= 10.0


def test_data_parallel_batch_counts_every_gpu_and_sharding_never_drops_gpus(run):
    """The recipe's batch is global: 64 data-parallel GPUs each add micro-batch x accumulation (accumulation
    354 on 64 GPUs was a 64x batch). A 1B model pre-trains data-parallel (a replica fits: no sharding
    traffic); a 7B one is sharded over the 8 GPUs stated, never over fewer."""
    small = run("Pretrain a 1B code model; 64 H100s for 2 weeks").efficiency
    assert small.sharding == "ddp" and small.gpus == 64 and small.fits
    tool_batch = small.hyperparameters["batch_sequences"]
    assert tool_batch <= small.micro_batch * small.grad_accum * 64 < tool_batch + small.micro_batch * 64
    big = run("pretrain a 7B model on 8 H100s").efficiency
    assert big.fits and big.gpus == 8 and big.sharding == "fsdp"
    assert not any(a.changes.get("gpus", 8) < 8 for a in big.alternatives)
