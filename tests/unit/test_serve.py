"""The serving planner: layouts, per-GPU memory equal to the estimator's, decoding plans that count what
they hold, and roofline bounds checked against targets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from qkv.tools.errors import BadInput, ContextExceeded, UnknownName
from qkv.tools.memory.estimate import estimate_memory
from qkv.tools.memory.schema import MemoryRequest
from qkv.tools.serve import ServingRequest, fewest_gpus, plan_serving

GIB = 1024**3


def _plan(**kw):
    return plan_serving(ServingRequest(**kw))


def test_acceptance_70b_50_users_8k_on_4_h100():
    """'Serve Llama-3.1-70B for 50 concurrent users with 8k context on 4 H100s, p50 under 50 ms per token'."""
    p = _plan(model="llama-3.1-70b", gpu="h100-sxm", gpus=4, concurrency=50, context=8192, tpot_ms=50)
    assert p.fits and p.tensor_parallel == 4 and p.pipeline_parallel == 1 and p.replicas == 1
    assert p.weights in ("bf16", "fp8") and p.kv_dtype in ("bf16", "fp8")
    assert p.kv.tokens >= p.kv.tokens_needed >= 50 * 8192 and p.kv.max_concurrency >= 50
    # The prefill workspace is bounded by the tokens per step (8192), not 50 simultaneous 8k prompts.
    ws = p.item("activation workspace")
    assert p.prefill_tokens_per_step == 8192 and ws.gib < 3
    assert sum(m.bytes for m in p.per_gpu if m.name != "CUDA graphs") <= p.usable_bytes
    tpot = next(t for t in p.targets if t.name == "tpot_ms")
    assert tpot.met and tpot.bound == p.latency.tpot_ms < 50
    # Bytes read per step ≈ weights/4 + 50 × 8192 × KV bytes/token/GPU: the roofline the review derived.
    assert p.latency.decode_bytes_per_step == p.item("weights").bytes + 50 * 8192 * p.kv.bytes_per_token


def test_weights_and_kv_equal_the_estimator():
    p = _plan(model="llama-3.1-70b", gpu="h100-sxm", gpus=4, concurrency=50, context=8192)
    est = estimate_memory(MemoryRequest(model="llama-3.1-70b", method="inference", weights=p.weights,
                                        kv_dtype=p.kv_dtype, seq=8192, batch=50, gpus=4, sharding="fsdp"))
    terms = {t.name: t.bytes for t in est.terms}
    assert p.item("weights").bytes == terms["weights"]
    assert p.kv.bytes_per_token * 8192 * 50 == terms["KV cache"]


def test_kv_split_never_exceeds_kv_heads():
    """TP 8 over a model with 8 KV heads splits K/V 8 ways; TP 4 over 2 KV heads keeps 2 ways (replicas)."""
    from qkv.tools.arch import spec_from_config
    from qkv.tools.memory.infer import kv_shards
    from qkv.tools.modelref import resolve_model

    spec = spec_from_config(resolve_model("qwen2.5-0.5b").config)  # 2 KV heads
    assert kv_shards(spec, 4) == 2 and kv_shards(spec, 1) == 1


def test_beams_and_samples_multiply_the_kv_cache():
    one = _plan(model="llama-3.1-8b", gpu="a100-80gb-sxm", concurrency=4, context=4096, output_tokens=512)
    beams = _plan(model="llama-3.1-8b", gpu="a100-80gb-sxm", concurrency=4, context=4096, output_tokens=512, beams=4)
    # Paged engines share the prompt's blocks: only the output tails multiply.
    assert beams.kv.tokens_needed == one.kv.tokens_needed + 4 * 3 * 512
    assert beams.sequences_per_request == 4 and "4 sequence(s)" in beams.decoding
    hf1 = _plan(model="llama-3.1-8b", gpu="a100-80gb-sxm", concurrency=4, context=4096, engine="transformers")
    hf4 = _plan(model="llama-3.1-8b", gpu="a100-80gb-sxm", concurrency=4, context=4096, engine="transformers",
                samples=4)
    # transformers generate expands the prompt per sequence: the whole cache is ×4.
    assert hf4.item("KV cache").bytes == 4 * hf1.item("KV cache").bytes


def test_contiguous_cache_counts_the_prompt_per_sequence():
    """transformers copies the prompt per beam: the KV the load needs, the concurrency that fits and the
    frontier all count beams × context tokens per request, as the KV cache item does."""
    p = _plan(model="llama-3.1-8b", gpu="h100-sxm", engine="transformers", beams=4, concurrency=2, context=4096)
    held = 4 * 4096
    assert p.kv.tokens_needed == 2 * held == p.item("KV cache").bytes // p.kv.bytes_per_token
    assert p.kv.max_concurrency == p.kv.tokens // held
    assert next(f.max_concurrency for f in p.frontier if f.context == 4096) == p.kv.tokens // held


def test_encoder_gets_no_decoding_plan():
    p = _plan(model="bert-base-uncased", gpu="t4", concurrency=8, context=256, output_tokens=1)
    assert p.kv is None and p.latency is None and p.throughput == []
    assert p.decoding.startswith("not applicable")
    assert p.weights == "fp16"  # Turing has no bf16


def test_nf4_is_not_a_serving_format_on_hopper():
    p = _plan(model="llama-3.1-8b", gpu="h100-sxm", weights="nf4")
    assert p.weights != "nf4"
    assert any("not a serving format" in n for n in p.notes)


def test_missed_tpot_names_computed_levers():
    p = _plan(model="llama-3.1-70b", gpu="h100-sxm", gpus=4, concurrency=50, context=8192, tpot_ms=5)
    t = next(t for t in p.targets if t.name == "tpot_ms")
    assert not t.met
    text = " ".join(t.levers)
    assert "TP 8" in text and "needs 8 GPUs" in text and "fp8 weights" in text and "speculative" in text
    assert "smaller model" in text or "fewer concurrent" in text


def test_levers_and_notes_offer_only_what_the_engine_serves():
    """transformers on an H100: no FP8 W8A8 and no TP lever (the profile refuses both); the FP8 note of a
    vLLM bf16 plan quotes no family-specific recovery figure."""
    p = _plan(model="llama-3.1-8b", gpu="h100-sxm", engine="transformers", context=32000, ttft_ms=1, tpot_ms=0.1)
    levers = " ".join(lv for t in p.targets for lv in t.levers)
    assert p.targets and not any(t.met for t in p.targets)
    assert "FP8" not in levers and "TP " not in levers and "prefix caching" in levers
    v = _plan(model="llama-3.1-8b", gpu="h100-sxm", context=32000, ttft_ms=1)
    assert "FP8 W8A8" in " ".join(v.targets[0].levers) and "TP 2" in " ".join(v.targets[0].levers)
    note = next(n for n in v.notes if n.startswith("FP8 weights"))
    assert "Kurtic" not in note and "%" not in note


def test_decode_compute_counts_qk_and_av():
    """Decode attention per token: QKᵀ and AV over the context, 4 × layers × context × q_dim FLOPs."""
    from qkv.tools.arch import spec_from_config
    from qkv.tools.catalog.gpus import get_gpu
    from qkv.tools.modelref import resolve_model
    from qkv.tools.serve.roofline import decode_step

    spec = spec_from_config(resolve_model("llama-3.1-8b").config)
    gpu = get_gpu("h100-sxm")
    kw = dict(weights_gpu=0, kv_token_bytes=0, batch=1, context=8192, tp=1, peak_tflops=1e-3)
    s = decode_step(spec, gpu, active_params=0, **kw)
    assert s.bound == "compute"
    assert s.seconds == pytest.approx(4 * spec.layers * 8192 * spec.q_dim / 1e9)


def test_ttft_counts_attention_flops_on_the_serving_gpus():
    p = _plan(model="qwen2.5-7b", gpu="h100-sxm", gpus=2, concurrency=1, context=32000, output_tokens=256)
    # At 31.7k prompt tokens causal attention is ~30% of prefill FLOPs (L·P·q_dim ÷ (N + L·P·q_dim)).
    assert p.latency.attention_flop_share > 0.25
    # 2 GPUs but one replica per GPU (TP 1): the prefill runs on one GPU, not on the GPU count.
    assert p.tensor_parallel == 1 and p.replicas == 2
    assert p.latency.ttft_ms == pytest.approx(p.latency.prefill_flops / 989e12 * 1e3, rel=1e-4)


def test_a_target_the_gpu_cannot_check_is_never_counted_as_met():
    """'gpu-24gib' has no bandwidth or peak: the targets are said to be unchecked, not met."""
    p = _plan(model="llama-3.1-8b", gpu="gpu-24gib", tpot_ms=0.001, ttft_ms=0.001)
    assert p.latency is None and p.targets == []
    assert any(n.startswith("tpot_ms target 0.001 ms not checked: the GPU's memory bandwidth") for n in p.notes)
    assert any(n.startswith("ttft_ms target 0.001 ms not checked: the GPU's peak FLOP/s") for n in p.notes)
    assert p.tried and not any(o.meets_targets for o in p.tried)
    few = fewest_gpus(ServingRequest(model="llama-3.1-8b", gpu="gpu-24gib", tpot_ms=0.001))
    assert few.gpus_used == 1 and few.targets == []
    assert any("chosen by memory alone" in n and "tpot_ms" in n for n in few.notes)
    # On a GPU with figures the same target is checked, missed at every count: no plan.
    assert fewest_gpus(ServingRequest(model="llama-3.1-8b", gpu="h100-sxm", tpot_ms=0.001), counts=(1, 2)) is None


def test_pipeline_parallel_when_one_node_is_not_enough():
    p = _plan(model="llama-3.1-405b", gpu="h100-sxm", gpus=16, concurrency=8, context=8192)
    assert p.fits and p.tensor_parallel == 8 and p.pipeline_parallel == 2


def test_throughput_table_and_frontier():
    p = _plan(model="llama-3.1-8b", gpu="h100-sxm", concurrency=64, context=8192)
    rows = {r.concurrency: r for r in p.throughput}
    assert 64 in rows and rows[1].tpot_ms < rows[64].tpot_ms and rows[1].tokens_per_s < rows[64].tokens_per_s
    f = {x.context: x.max_concurrency for x in p.frontier}
    assert f[8192] == p.kv.max_concurrency and f[4096] >= 2 * f[8192] - 1


@pytest.mark.parametrize(("kw", "err"), [
    ({"output_tokens": 4096, "context": 4096}, BadInput),
    ({"context": 200_000}, ContextExceeded),
    ({"gpu": "h1000"}, UnknownName),
    ({"tensor_parallel": 8}, BadInput),
])
def test_bad_input_is_one_clear_error(kw, err):
    with pytest.raises(err):
        _plan(**{"model": "llama-3.1-8b", "gpu": "h100-sxm", **kw})


def test_stated_tp_must_split_the_heads():
    """Llama-3.1-8B has 32 heads and 8 KV heads: TP 3 would floor each rank's heads; the error names 1, 2, 4."""
    with pytest.raises(BadInput, match=r"1, 2, 4\b"):
        _plan(model="llama-3.1-8b", gpu="h100-sxm", gpus=4, tensor_parallel=3)
    assert _plan(model="llama-3.1-8b", gpu="h100-sxm", gpus=4, tensor_parallel=4).tensor_parallel == 4


@pytest.mark.parametrize("engine", ["transformers", "llama.cpp"])
def test_stated_tp_on_an_engine_without_tensor_parallelism(engine):
    """Planning TP 1 replicas instead would show a deployment other than the one asked for."""
    with pytest.raises(BadInput, match="no tensor parallelism"):
        _plan(model="llama-3.1-8b", gpu="h100-sxm", gpus=2, tensor_parallel=2, engine=engine)
    assert _plan(model="llama-3.1-8b", gpu="h100-sxm", gpus=2, tensor_parallel=1, engine=engine).tensor_parallel == 1


def test_request_forbids_unknown_keys():
    with pytest.raises(ValidationError):
        ServingRequest(model="llama-3.1-8b", gpu="h100-sxm", tp_size=2)
