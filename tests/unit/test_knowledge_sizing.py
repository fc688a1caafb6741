"""Architecture sizing: exact counts through the foundation's counter, shapes like published models."""

from __future__ import annotations

import json

import pytest

from qkv.tools.errors import BadInput
from qkv.tools.knowledge.scaling import chinchilla_optimal
from qkv.tools.knowledge.sizing import SizeRequest, kv_heads_for, size_architecture, swiglu_ffn
from qkv.tools.modelref import resolve_model
from qkv.tools.params import count_params


@pytest.fixture(scope="module")
def proposals() -> dict[float, object]:
    return {p: size_architecture(SizeRequest(params=p)) for p in (1.35e8, 1e9, 7e9, 70e9)}


@pytest.mark.parametrize("target", [1.35e8, 1e9, 7e9, 70e9])
def test_proposal_hits_the_target_and_is_well_formed(proposals, target):
    p = proposals[target]
    assert abs(p.relative_error) < 0.03
    assert p.params == sum(p.params_breakdown.values())
    assert p.hidden.value == p.heads.value * p.head_dim.value
    assert p.heads.value % p.kv_heads.value == 0 and p.kv_heads.value <= 8
    assert p.heads.value // p.kv_heads.value >= 4  # GQA groups of at least 4 queries
    assert p.intermediate.value == swiglu_ffn(p.hidden.value) and p.intermediate.value % 256 == 0
    # the aspect ratio is within the range of the published models it is compared with
    ratios = [s.aspect_ratio for s in p.compared_with]
    assert min(ratios) * 0.6 <= p.aspect_ratio <= max(ratios) * 1.6
    assert len(p.compared_with) == 5


def test_the_count_is_the_foundations_count_of_the_written_config(proposals, tmp_path):
    p = proposals[7e9]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(p.config))
    counted = count_params(resolve_model(str(path)))
    assert counted.total == p.params
    assert counted.attention == p.params_breakdown["attention"] and counted.mlp == p.params_breakdown["mlp"]


def test_seven_billion_looks_like_the_seven_billion_models(proposals):
    p = proposals[7e9]
    assert p.hidden.value == 4096 and p.head_dim.value == 128  # Llama-2-7B, Mistral-7B, GPT-3 6.7B width
    assert {"llama-2-7b", "mistral-7b-v0.1"} <= {s.name for s in p.compared_with}
    assert p.vocab.value == 128_256 and p.vocab.provenance == "cited"
    small = proposals[1.35e8]
    assert small.head_dim.value == 64 and small.tie_embeddings.value is True and small.vocab.value == 32_000


def test_flops_budget_sizes_the_chinchilla_optimum():
    p = size_architecture(SizeRequest(flops=1e21))
    assert p.params == pytest.approx(chinchilla_optimal(1e21).params, rel=0.03)
    assert p.tokens.value / p.params == pytest.approx(20.4, rel=0.05)
    assert "hoffmann2022" in p.target_params.sources


def test_choices_change_the_shape_and_count():
    mha = size_architecture(SizeRequest(params=1e9, attention="mha"))
    mqa = size_architecture(SizeRequest(params=1e9, attention="mqa"))
    assert mha.kv_heads.value == mha.heads.value and mha.attention_type == "MHA"
    assert mqa.kv_heads.value == 1 and mqa.attention_type == "MQA"
    rms = size_architecture(SizeRequest(params=1e9))
    ln = size_architecture(SizeRequest(params=1e9, norm="layernorm"))
    extra = rms.layers.value * 2 * rms.hidden.value + rms.hidden.value
    assert ln.params - rms.params == extra and ln.norm.sources == ["ba2016"]
    alibi = size_architecture(SizeRequest(params=1e9, position="alibi", context=32768))
    assert alibi.position.sources == ["press2022"] and alibi.config["max_position_embeddings"] == 32768
    assert kv_heads_for(64, "gqa") == 8 and kv_heads_for(32, "gqa") == 8 and kv_heads_for(2, "gqa") == 2


@pytest.mark.parametrize("fields", [{}, {"params": 0}, {"params": -1e9}, {"flops": 0}, {"params": 1e9, "flops": 1e21},
                                    {"params": 1e15}, {"params": 1e9, "vocab": 1}, {"params": 1e9, "context": 4}])
def test_impossible_requests_are_clear_errors(fields):
    with pytest.raises(BadInput) as err:
        SizeRequest(**fields)
    assert "expected" in str(err.value)
