"""Exact parameter counts: closed form = the real transformers class on the meta device = published."""

from __future__ import annotations

import pytest

from qkv.tools.catalog.models import list_models
from qkv.tools.modelref import resolve_model
from qkv.tools.params import ParamCountRequest, count_params, param_count
from tests.anchors import load_anchor

FACTS = load_anchor("facts.json")
MEMORY = load_anchor("memory.json")


def _exact(text: str) -> int:
    return int(text.split()[0].replace(",", ""))


@pytest.mark.slow
@pytest.mark.parametrize("name", [m.name for m in list_models()])
def test_closed_form_equals_meta_device_instantiation(name):
    count = count_params(resolve_model(name), exact=True)
    assert count.total == count.meta_total


@pytest.mark.parametrize(("case", "model"), [
    ("params-llama2-7b", "llama-2-7b"),
    ("params-bert-base", "bert-base-uncased"),
    ("params-gpt2-small", "gpt2"),
])
def test_fact_anchors_exact(case, model):
    assert param_count(ParamCountRequest(model=model)).total == _exact(FACTS[case]["expected"])


def test_memory_anchor_param_counts_exact():
    for case in MEMORY.values():
        if case["kind"] == "param_count":
            assert param_count(ParamCountRequest(model="llama-3.1-8b")).total == case["expected"]["value"]
        expected = case["model"].get("params")
        if expected and "Llama-2-7b" in case["model"]["name"]:
            assert param_count(ParamCountRequest(model="llama-2-7b")).total == expected


def test_breakdown_adds_up_and_tied_heads_count_once():
    gpt2 = param_count(ParamCountRequest(model="gpt2"))
    assert gpt2.lm_head == 0  # tied to wte
    assert gpt2.embedding == 50257 * 768 + 1024 * 768
    assert gpt2.non_embedding == gpt2.total - gpt2.embedding
    llama = param_count(ParamCountRequest(model="llama-2-7b"))
    assert llama.lm_head == 32000 * 4096
    assert llama.attention + llama.mlp + llama.norm_and_bias + llama.embedding + llama.lm_head == llama.total


def test_moe_active_parameters():
    mixtral = param_count(ParamCountRequest(model="mixtral-8x7b"))
    assert mixtral.total == 46_702_792_704
    # 2 of 8 experts per token: 6 experts' weights idle in every layer.
    expert = 3 * 4096 * 14336
    assert mixtral.active == mixtral.total - 32 * 6 * expert


def test_gguf_file_counts_match_closed_form(gemma_gguf):
    count = count_params(resolve_model(str(gemma_gguf)))
    assert count.method == "gguf-tensors"
    assert count.gguf_total == count.total == 268_098_176
    catalog = param_count(ParamCountRequest(model="gemma-3-270m"))
    assert catalog.total == count.total


def test_config_json_and_folder_resolve(tmp_path):
    import json

    from qkv.tools.catalog.models import get_model

    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(get_model("smollm2-135m").config))
    by_folder = param_count(ParamCountRequest(model=str(folder)))
    by_file = param_count(ParamCountRequest(model=str(folder / "config.json")))
    assert by_folder.total == by_file.total == 134_515_008
    assert by_folder.model == "my-model"
