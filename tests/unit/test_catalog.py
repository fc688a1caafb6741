"""The catalogs: every entry loads, carries a source, and unknown names get close suggestions."""

from __future__ import annotations

import pytest

from qkv.tools.arch import spec_from_config
from qkv.tools.catalog.gpus import get_gpu, list_gpus
from qkv.tools.catalog.models import get_model, list_models
from qkv.tools.errors import UnknownName

REQUIRED_MODELS = [
    "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "bert-base-uncased", "bert-large-uncased", "roberta-base",
    "t5-small", "t5-base", "t5-large", "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3.1-8b",
    "llama-3.1-70b", "llama-3.1-405b", "mistral-7b-v0.1", "mixtral-8x7b", "qwen2.5-0.5b", "qwen2.5-7b",
    "qwen2.5-72b", "gemma-2-2b", "gemma-3-270m", "phi-3-mini", "tinyllama-1.1b", "codellama-34b", "smollm2-135m",
    # the models users ask for now (issue 22): instruct variants, Gemma 2/3, a code family
    "llama-2-7b-chat", "llama-3.1-8b-instruct", "qwen2.5-7b-instruct", "mistral-7b-instruct-v0.3", "gemma-2-9b-it",
    "gemma-3-1b-it", "gemma-3-12b-it", "deepseek-coder-1.3b-base", "deepseek-coder-6.7b-base",
]
REQUIRED_GPUS = [
    "rtx-3060-12gb", "rtx-3090", "rtx-4060-ti-16gb", "rtx-4090", "rtx-5090", "t4", "l4", "a10g", "a100-40gb",
    "a100-80gb", "h100-pcie", "h100-sxm", "h200", "b200", "mi300x", "l40s",
]


def test_every_required_model_is_in_the_catalog_with_a_source():
    names = {m.name for m in list_models()}
    assert set(REQUIRED_MODELS) <= names
    for m in list_models():
        assert m.source.strip(), m.name
        spec_from_config(m.config)  # every config normalises


def test_every_model_carries_sourced_capabilities():
    names = {m.name for m in list_models()}
    for m in list_models():
        caps = m.capabilities
        assert caps is not None, m.name
        assert caps.languages and caps.languages_source.strip() and caps.licence_source.strip(), m.name
        assert (caps.effective_context is None) == (caps.effective_context_source is None), m.name
        assert (caps.pretraining_tokens is None) == (caps.pretraining_tokens_source is None), m.name
        if caps.instruct_variant:  # the base model's instruct variant is in the catalog, with the same shapes
            variant = get_model(caps.instruct_variant)
            assert caps.instruct_variant in names and variant.capabilities.variant == "instruct"
            assert spec_from_config(variant.config).hidden == spec_from_config(m.config).hidden


def test_published_language_tables_are_recorded():
    assert get_model("llama-2-7b").capabilities.languages == ["en"]  # Touvron et al. 2023, Table 10
    assert "hi" in get_model("llama-3.1-8b").capabilities.languages
    assert "ar" not in get_model("llama-3.1-8b").capabilities.languages
    assert {"ar", "hi"} <= set(get_model("qwen2.5-7b-instruct").capabilities.languages)
    assert get_model("llama-3.1-8b-instruct").capabilities.effective_context == 32768  # RULER


@pytest.mark.parametrize(("name", "published"), [
    ("gemma-2-9b-it", 9.24e9), ("mistral-7b-instruct-v0.3", 7.25e9), ("deepseek-coder-1.3b-base", 1.35e9),
    ("deepseek-coder-6.7b-base", 6.74e9), ("gemma-3-1b-it", 1.0e9), ("qwen2.5-7b-instruct", 7.62e9)])
def test_new_configs_count_to_their_published_size(name, published):
    from qkv.tools.catalog.summary import summarize_models

    row = next(r for r in summarize_models() if r.name == name)
    assert abs(row.params / published - 1) < 0.01, (name, row.params)


def test_models_are_found_by_alias_and_hub_id_case_insensitively():
    assert get_model("meta-llama/Llama-2-7b-hf").name == "llama-2-7b"
    assert get_model("LLAMA-2-7B").name == "llama-2-7b"


def test_unknown_model_suggests_the_closest_names():
    with pytest.raises(UnknownName) as err:
        get_model("llama-2-8b")
    assert "llama-2-7b" in err.value.choices[:3]
    assert "did you mean" in str(err.value)


@pytest.mark.parametrize("name", REQUIRED_GPUS)
def test_required_gpus_resolve(name):
    gpu = get_gpu(name)
    assert gpu.memory_gib > 0 and gpu.bandwidth_gb_s > 0 and gpu.source


def test_gpu_catalog_has_twenty_entries_and_apple_unified_memory():
    gpus = list_gpus()
    assert len(gpus) >= 20
    apple = [g for g in gpus if g.gpu_class == "apple"]
    assert apple and all(g.unified_memory for g in apple)
    # A unified-memory machine lends the GPU only part of its memory by default.
    assert all(g.usable_bytes < g.memory_bytes for g in apple)
    assert get_gpu("4090").memory_gib == 24
    assert get_gpu("h100-sxm").bf16_dense_tflops == pytest.approx(989, rel=0.01)
    assert get_gpu("t4").bf16_dense_tflops is None  # Turing has no BF16 tensor cores


def test_unknown_gpu_suggests_close_names():
    with pytest.raises(UnknownName) as err:
        get_gpu("rtx-4900")
    assert any("4090" in c for c in err.value.choices)
