"""The paged profile against vLLM's own published profiling arithmetic (log lines quoted in vLLM's GitHub
issues). Our weights, KV bytes per token and block arithmetic must reproduce vLLM's figures within 3%."""

from __future__ import annotations

import pytest

from qkv.tools.arch import spec_from_config
from qkv.tools.memory.infer import serving_weight_term
from qkv.tools.modelref import resolve_model
from qkv.tools.serve.memory import kv_blocks, token_bytes

GIB = 1024**3


@pytest.fixture(scope="module")
def llama8b():
    resolved = resolve_model("llama-3.1-8b")
    return resolved, spec_from_config(resolved.config)


def test_h100_llama31_8b_kv_pool_tokens(llama8b):
    """vLLM issue #19996 (https://github.com/vllm-project/vllm/issues/19996), H100 80GB, Llama 3.1 8B,
    V1 engine with an EAGLE draft model, serve log:
        [gpu_worker.py:232] Available KV cache memory: 51.63 GiB
        [kv_cache_utils.py:716] GPU KV cache size: 410,128 tokens
    vLLM gives the EAGLE head's one decoder layer its own KV (same shape), so the pool serves 32 + 1 layers."""
    _, spec = llama8b
    with_draft = spec.model_copy(update={"layers": spec.layers + 1})
    per_token = token_bytes(with_draft, "bf16", tp=1, pp=1)
    assert per_token == 33 * 2 * 8 * 128 * 2  # 2 (K,V) × 8 KV heads × 128 × bf16, per layer
    tokens = kv_blocks(int(51.63 * GIB), per_token, 16) * 16
    assert tokens == pytest.approx(410_128, rel=0.03)
    assert abs(tokens - 410_128) <= 16  # in fact within one block: the reported GiB is rounded to 0.01


def test_a100_llama3_8b_budget_equation(llama8b):
    """vLLM issue #12330 (https://github.com/vllm-project/vllm/issues/12330), A100 40GB, Meta-Llama-3-8B
    (the same tensor shapes as Llama-3.1-8B), V0 engine log:
        Loading model weights took 14.9595 GB
        total_gpu_memory (39.50GiB) x gpu_memory_utilization (0.90) = 35.55GiB
        model weights take 14.96GiB; non_torch_memory takes 0.10GiB; PyTorch activation peak memory takes
        9.37GiB; the rest of the memory reserved for KV Cache is 11.12GiB.
        # GPU blocks: 5691, # CPU blocks: 2048
    Our weight bytes (the estimator's function) and block arithmetic, with vLLM's measured non-KV terms."""
    resolved, spec = llama8b
    weights = serving_weight_term(spec, "bf16", resolved).bytes
    assert weights / GIB == pytest.approx(14.9595, rel=0.001)
    pool = 0.90 * 39.50 * GIB - weights - 0.10 * GIB - 9.37 * GIB
    assert pool / GIB == pytest.approx(11.12, rel=0.03)
    blocks = kv_blocks(int(pool), token_bytes(spec, "bf16", tp=1, pp=1), 16)
    assert blocks == pytest.approx(5691, rel=0.03)


def test_h100_llama3_8b_kv_pool_from_the_planner_alone():
    """vLLM PR #10511 (https://github.com/vllm-project/vllm/pull/10511), a maintainer's sanity check on an
    H100 80GB, `vllm serve meta-llama/Meta-Llama-3-8B` (Llama-3.1-8B's tensor shapes), V0 engine:
        total_gpu_memory 79.22GiB · gpu_memory_utilization 0.90 · the current vLLM instance can use 71.29GiB
        model weights take 14.96GiB · non_torch_memory 1.79GiB · PyTorch activation peak memory 1.26GiB
        available_kv_cache_memory 53.29GiB
    Here nothing of vLLM's is plugged in: the planner's own driver-visible memory (0.99 × 80 GiB), weights,
    workspace at 8,192 batched tokens and assumed non-torch allowance give the pool."""
    from qkv.tools.serve import ServingRequest, plan_serving

    plan = plan_serving(ServingRequest(model="llama-3.1-8b", gpu="h100-sxm", context=8192))
    items = {m.name: m.bytes / GIB for m in plan.per_gpu}
    assert items["weights"] == pytest.approx(14.96, abs=0.01)
    assert items["activation workspace"] == pytest.approx(1.26, rel=0.15)  # ours 1.09: no per-kernel scratch
    assert plan.usable_bytes / GIB == pytest.approx(79.22, rel=0.002)
    assert items["KV pool"] == pytest.approx(53.29, rel=0.03)  # +2.7%: non-torch assumed 0.5 GiB, logged 1.79
