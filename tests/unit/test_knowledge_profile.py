"""Layer profiles of catalog models: attention type, windows, MoE, shares and the quadratic share."""

from __future__ import annotations

import pytest

from qkv.tools.errors import BadInput, UnknownName
from qkv.tools.knowledge.layer_profile import ProfileRequest, describe_pattern, layer_profile


def _p(model: str, seq: int = 4096):
    return layer_profile(ProfileRequest(model=model, seq=seq))


def test_llama2_7b_is_dense_mha_and_its_crossover_is_closed_form():
    p = _p("llama-2-7b")
    assert len(p.layers) == 32 and p.pattern == "global ×32" and p.attention_type == "MHA"
    assert all(x.group_ratio == 1 and x.head_dim == 128 for x in p.layers)
    h, i = 4096, 11008
    per_layer = 4 * h * h + 3 * h * i  # q, k, v, o + gate, up, down
    assert p.layers[0].params_attention + p.layers[0].params_mlp == per_layer
    # 2·s·q_dim per token per layer (scores) = 2·P_layer per token (linear) → s* = P_layer / (2·q_dim)
    assert p.crossover_seq.value == -(-per_layer // (2 * h)) == 24_704
    assert p.layers[0].attention_score_flops == 4 * 4096 * 4096 * h
    assert p.layers[0].kv_bytes_per_token == 2 * 4096 * 2
    shares = p.share_attention.value + p.share_mlp.value + p.share_embeddings.value + p.share_norm_bias.value
    assert shares == pytest.approx(1.0)
    assert "hoffmann2022" in p.crossover_seq.sources


def test_gqa_ratio_of_llama31():
    p = _p("llama-3.1-8b")
    assert p.attention_type == "GQA" and p.layers[0].group_ratio == 4 and "ainslie2023" in p.sources


def test_gemma3_local_global_pattern_and_mqa():
    p = _p("gemma-3-270m", seq=8192)
    assert p.pattern == "sliding 512 ×5, global ×1; repeated 3×" and p.attention_type == "MQA"
    sliding, glob = p.layers[0], p.layers[5]
    assert sliding.attention == "sliding" and sliding.window == 512 and glob.attention == "global"
    q_dim = 4 * 256
    assert sliding.attention_score_flops == 4 * 8192 * 512 * q_dim
    assert glob.attention_score_flops == 4 * 8192 * 8192 * q_dim
    assert p.share_embeddings.value > 0.5  # a 262K vocabulary dominates a 270M model
    assert "gemma2025" in p.sources


def test_mistral_windows_mean_attention_never_dominates():
    p = _p("mistral-7b-v0.1", seq=32768)
    assert all(x.attention == "sliding" and x.window == 4096 for x in p.layers)
    assert p.crossover_seq.value is None and any("never" in n for n in p.notes)


def test_mixtral_moe_routing():
    p = _p("mixtral-8x7b")
    assert p.experts == 8 and p.experts_per_token == 2 and p.params_active < p.params_total
    layer = p.layers[0]
    assert layer.params_mlp_active < layer.params_mlp
    router = 8 * 4096
    assert layer.params_mlp_active - router == (layer.params_mlp - router) * 2 // 8


def test_gpt2_crossover_is_about_six_times_d_model_and_share_grows_with_length():
    p = _p("gpt2", seq=1024)
    assert p.crossover_seq.value == pytest.approx(6 * 768, rel=0.01)  # 12d² linear vs 2·s·d scores per token
    shares = [_p("gpt2", seq=s).attention_share.value for s in (128, 1024, 8192)]
    assert shares == sorted(shares) and shares[-1] > 0.5


def test_encoders_and_encoder_decoders():
    bert = _p("bert-base-uncased", seq=512)
    assert {x.attention for x in bert.layers} == {"bidirectional"} and all(x.kv_bytes_per_token == 0
                                                                          for x in bert.layers)
    t5 = _p("t5-small", seq=512)
    dec = [x for x in t5.layers if x.block == "decoder"]
    assert len(dec) == 6 and all(x.cross_attention for x in dec) and len(t5.layers) == 12


def test_pattern_words():
    assert describe_pattern(["sliding", "global"] * 3, 4096) == "sliding 4,096 ×1, global ×1; repeated 3×"
    assert describe_pattern(["global"] * 4, None) == "global ×4"


def test_bad_inputs():
    with pytest.raises(BadInput):
        _p("gpt2", seq=0)
    with pytest.raises(UnknownName):
        _p("gpt5")



def test_a_config_file_profiles_like_its_catalog_entry(tmp_path):
    """A model given as a config.json file (not a catalog name) gets the same profile; its window is read
    from the file (analytic provenance naming the file) rather than cited from the catalog."""
    import json

    from qkv.tools.catalog.models import get_model
    from qkv.tools.knowledge.context_rules import ContextRequest, context_plan

    path = tmp_path / "gemma" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(get_model("gemma-3-270m").config))
    from_file = layer_profile(ProfileRequest(model=str(path), seq=8192))
    from_catalog = _p("gemma-3-270m", seq=8192)
    assert from_file.pattern == from_catalog.pattern == "sliding 512 ×5, global ×1; repeated 3×"
    assert from_file.crossover_seq.value == from_catalog.crossover_seq.value
    plan = context_plan(ContextRequest(model=str(path), tokens=65_536))
    assert plan.window.value == 32_768 and plan.window.provenance == "analytic" and str(path) in plan.window.formula
    assert plan.action == "rope_scaling" and plan.recommended.config_block["factor"] == 2.0


def test_a_proposed_architecture_profiles_from_its_inline_config():
    """The sizing tool's proposal has no file yet: profile and context rules take its config inline."""
    from qkv.tools.knowledge.context_rules import ContextRequest, context_plan
    from qkv.tools.knowledge.sizing import SizeRequest, size_architecture

    proposal = size_architecture(SizeRequest(params=1e9, context=4096))
    p = layer_profile(ProfileRequest(model="proposed-1b", config=proposal.config, seq=4096))
    assert p.model == "proposed-1b" and p.params_total == proposal.params
    assert p.kv_heads == proposal.kv_heads.value and p.pattern == f"global ×{proposal.layers.value}"
    plan = context_plan(ContextRequest(model="proposed-1b", config=proposal.config, tokens=8192))
    assert plan.window.value == 4096 and plan.action == "rope_scaling"
    with pytest.raises(BadInput):
        layer_profile(ProfileRequest(model="x", config={"hidden_size": 8}))
