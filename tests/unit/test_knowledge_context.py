"""Context rules: RoPE scaling types and YaRN defaults (facts.json rope-types-hf, checked against the
installed transformers source), KV-cache sizes (kv-cache-llama2-vs-llama3), options and errors."""

from __future__ import annotations

import math
import re
from importlib.util import find_spec
from pathlib import Path

import pytest

from qkv.tools.errors import BadInput, ContextExceeded, UnknownName
from qkv.tools.knowledge.context_rules import ROPE_TYPES, ContextRequest, context_plan, rope_block
from tests.anchors import load_anchor

FACTS = load_anchor("facts.json")
GIB = 1024**3


def _rope_utils_source() -> str:
    """transformers' modeling_rope_utils.py as text (importing it would import torch)."""
    return Path(find_spec("transformers").origin).parent.joinpath("modeling_rope_utils.py").read_text()


def test_rope_types_match_the_anchor_and_transformers():
    text = FACTS["rope-types-hf"]["expected"]
    listed = re.match(r"([\w, ]+?) \(", text).group(1).split(", ")
    assert tuple(listed) == ROPE_TYPES
    src = _rope_utils_source()
    table = re.search(r"^ROPE_INIT_FUNCTIONS[^=]*= \{(.*?)^\}", src, re.S | re.M).group(1)
    installed = set(re.findall(r'"(\w+)":', table))
    assert set(ROPE_TYPES) - {"default"} <= installed


def test_yarn_block_has_the_anchor_defaults():
    text = FACTS["rope-types-hf"]["expected"]
    beta_fast = float(re.search(r"beta_fast \((\d+)\)", text).group(1))
    beta_slow = float(re.search(r"beta_slow \((\d+)\)", text).group(1))
    assert "0.1·ln(factor)+1" in text
    for factor in (2.0, 4.0, 8.0, 32.0):
        block, params = rope_block("yarn", factor, 4096, 10_000.0)
        assert block["factor"] == factor and block["original_max_position_embeddings"] == 4096
        assert block["attention_factor"] == pytest.approx(0.1 * math.log(factor) + 1, abs=1e-6)
        assert block["beta_fast"] == beta_fast and block["beta_slow"] == beta_slow
        assert params == {"rope_theta": 10_000.0, **block}
    src = _rope_utils_source()
    assert 'get("beta_fast") or 32' in src and 'get("beta_slow") or 1' in src
    assert "0.1 * mscale * math.log(scale) + 1.0" in src
    llama3, _ = rope_block("llama3", 8.0, 8192, 500_000.0)
    assert llama3 == {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192}
    with pytest.raises(BadInput):
        rope_block("ntk-by-parts", 2.0, 4096, None)


def test_kv_cache_reproduces_the_anchor_and_attributes_gqa():
    text = FACTS["kv-cache-llama2-vs-llama3"]["expected"]
    # "Llama-2-7B: 2·32·32·128·2 = 524,288 B (0.5 MiB/token) → 2 GiB …; Llama-3-8B (8 KV heads): 131,072 B"
    l2_bytes, l3_bytes = (int(x.replace(",", "")) for x in re.findall(r"(\d{3},\d{3}) B\b", text))
    l2 = context_plan(ContextRequest(model="llama-2-7b", tokens=4096, kv_dtype="fp16"))
    l3 = context_plan(ContextRequest(model="llama-3.1-8b", tokens=4096, kv_dtype="fp16"))
    assert l2.kv_bytes_per_token.value == l2_bytes == 524_288
    assert l3.kv_bytes_per_token.value == l3_bytes == 131_072
    assert l2.kv_cache.value == 2 * GIB  # "→ 2 GiB at 4096 tokens"
    assert l2.kv_bytes_per_token.value / l3.kv_bytes_per_token.value == 4
    assert "GQA" in l3.kv_bytes_per_token.note and "×4" in l3.kv_bytes_per_token.note
    assert "ainslie2023" in l3.kv_bytes_per_token.sources


def test_within_the_window_is_ok_with_the_lost_in_the_middle_caveat():
    plan = context_plan(ContextRequest(model="llama-2-7b", tokens=4096))
    assert plan.fits and plan.action == "ok" and not plan.options and plan.recommended is None
    assert any("Lost in the middle" in c for c in plan.caveats) and "liu2023" in plan.sources
    assert plan.window.value == 4096 and plan.window.provenance == "cited"


def test_a_modest_excess_recommends_rope_scaling_with_its_config_block():
    plan = context_plan(ContextRequest(model="llama-2-7b", tokens=16_000))
    assert not plan.fits and plan.action == "rope_scaling" and plan.factor == pytest.approx(16_000 / 4096)
    rec = plan.recommended
    assert rec.name == "yarn" and rec.config_block["factor"] == 4.0 and rec.applicable
    assert rec.kv_cache.value == 524_288 * 16_000  # RoPE scaling leaves the cache as full attention
    kinds = {o.kind for o in plan.options}
    assert kinds == {"rope_scaling", "sliding_window", "alibi_model", "chunking", "long_context_model"}
    assert {o.name for o in plan.options if o.kind == "rope_scaling"} == {"linear", "dynamic", "yarn", "llama3"}
    window = next(o for o in plan.options if o.kind == "sliding_window")
    assert window.kv_cache.value == 524_288 * 4096  # a rolling buffer of the window per layer
    assert all(o.kv_cache is not None for o in plan.options)
    dynamic = next(o for o in plan.options if o.name == "dynamic")
    assert dynamic.needs_finetuning == "no" and dynamic.config_block == {"rope_type": "dynamic", "factor": 4.0}


def test_a_large_excess_recommends_a_long_context_model_and_computes_its_cache():
    plan = context_plan(ContextRequest(model="llama-2-7b", tokens=100_000))
    assert plan.action == "long_context_model"
    assert plan.recommended.max_tokens >= 100_000
    by_name = {o.name: o for o in plan.options}
    assert by_name["linear"].applicable is False and by_name["yarn"].applicable is True
    l31 = by_name["llama-3.1-8b"]
    assert l31.kv_cache.value == 131_072 * 100_000 // 1  # bf16 = fp16 bytes


def test_learned_positions_cannot_use_rope_scaling():
    plan = context_plan(ContextRequest(model="gpt2", tokens=4096, need_full_attention=True))
    rope = [o for o in plan.options if o.kind == "rope_scaling"]
    assert rope and not any(o.applicable for o in rope) and "learned" in rope[0].reason
    assert plan.action == "long_context_model" and plan.recommended.kind == "long_context_model"
    assert not next(o for o in plan.options if o.kind == "chunking").applicable


def test_native_sliding_window_caps_the_cache():
    plan = context_plan(ContextRequest(model="mistral-7b-v0.1", tokens=50_000))
    assert any("sliding window" in c for c in plan.caveats)
    assert plan.kv_cache.value == 2 * 8 * 128 * 2 * 32 * 4096  # every layer holds at most its 4,096-token window


def test_impossible_lengths_are_context_exceeded_and_chunking_reaches_them():
    with pytest.raises(ContextExceeded) as err:
        context_plan(ContextRequest(model="llama-2-7b", tokens=10_000_000, need_full_attention=True))
    assert "131,072" in str(err.value) and "yarn" in str(err.value)
    plan = context_plan(ContextRequest(model="llama-2-7b", tokens=10_000_000))
    assert plan.action == "chunking" and plan.recommended.kv_cache.value == 524_288 * 4096


@pytest.mark.parametrize("fields", [{"tokens": 0}, {"tokens": -5}, {"tokens": 100, "batch": 0}])
def test_bad_inputs(fields):
    with pytest.raises(BadInput):
        context_plan(ContextRequest(model="llama-2-7b", **fields))
    with pytest.raises(UnknownName):
        context_plan(ContextRequest(model="llama-7", tokens=100))
