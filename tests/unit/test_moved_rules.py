"""The rules that moved from the design graph into tools (issue 19), checked on published shapes and exact
identities rather than through a whole design."""

from __future__ import annotations

import math

from qkv.tools.arch import spec_from_config
from qkv.tools.knowledge.budget import (
    accumulation,
    global_batch,
    per_gpu_share,
    run_intervals,
    trainable_flops_per_token,
)
from qkv.tools.knowledge.model_choice import within_size_band
from qkv.tools.knowledge.structure import layer_structure
from qkv.tools.modelref import resolve_model
from qkv.tools.serve.roofline import meets_speed_targets


def _spec(name: str):
    return spec_from_config(resolve_model(name).config)


def test_accumulation_makes_up_the_global_batch_over_data_parallel_gpus():
    # Alpaca's 128 sequences on 4 GPUs at micro-batch 4: 8 accumulation steps, and never a smaller batch.
    assert accumulation(128, 4, 4) == 8 and global_batch(4, 8, 4) == 128
    assert accumulation(100, 3, 2) == 17 and global_batch(3, 17, 2) >= 100
    assert accumulation(8, 16, 1) == 1 and per_gpu_share(130, 4) == 33


def test_flops_per_token_and_intervals():
    assert trainable_flops_per_token(7e9, full=True)[0] == 6 * 7e9  # Kaplan et al. 2020: 6N
    assert trainable_flops_per_token(7e9, full=False)[0] == 4 * 7e9  # no weight gradients
    assert run_intervals(1000) == {"eval_interval": 50, "checkpoint_interval": 100}
    assert run_intervals(30) == {"eval_interval": 10, "checkpoint_interval": 10}


def test_layer_structure_reads_gqa_and_sliding_window_from_the_config():
    s = layer_structure(_spec("mistral-7b-v0.1"), "config")  # 32 query heads over 8 KV heads, 4,096-token window
    assert (s.heads, s.kv_heads, s.query_heads_per_kv_head, s.attention_type) == (32, 8, 4, "GQA")
    assert s.sliding_window == 4096 and s.global_layers == s.layers - s.sliding_layers
    b = layer_structure(_spec("bert-base-uncased"), "config")
    assert (b.encoder_layers, b.decoder_layers, b.sparsity) == (12, 0, "dense (full attention, dense MLP)")


def test_a_proposed_architecture_gets_the_same_context_plan_as_a_catalog_model():
    # The design graph plans an architecture sized from scratch by passing its config to the same tool.
    from qkv.tools.knowledge.context_rules import ContextRequest, context_plan

    config = resolve_model("llama-2-7b").config
    proposed = context_plan(ContextRequest(model="proposed-6.74B", tokens=16_000, config=config))
    named = context_plan(ContextRequest(model="llama-2-7b", tokens=16_000))
    assert proposed.recommended.kind == named.recommended.kind == "rope_scaling"
    assert proposed.recommended.config_block == named.recommended.config_block
    assert proposed.recommended.config_block["factor"] == math.ceil(16_000 / 4096)  # YaRN ×4 over 4,096 tokens


def test_speed_targets_and_size_band():
    # 400 tok/s over 8 streams = 50 tok/s each = 20 ms per token.
    assert meets_speed_targets(400.0, 8, 20.0, None, True) and not meets_speed_targets(400.0, 8, 19.0, None, True)
    assert not meets_speed_targets(400.0, 8, None, 500.0, True)
    assert meets_speed_targets(None, 8, 1.0, 1e9, bandwidth_known=False)  # unknown bandwidth: cannot rule out
    assert within_size_band(7.24e9, 7e9) and not within_size_band(13e9, 7e9) and within_size_band(4.7e9, 7e9)
