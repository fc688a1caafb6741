"""Engine profiles: how each serving engine lays out one GPU's memory, with the source of each default."""

from __future__ import annotations

from dataclasses import dataclass

from qkv.tools.catalog.gpus import GIB


@dataclass(frozen=True)
class EngineProfile:
    """What an engine reserves and how it prefills. Byte allowances are assumed (stated as such)."""

    name: str
    paged: bool  # KV in fixed-size blocks from one pre-allocated pool
    shares_prompt: bool  # parallel samples / beams share the prompt's blocks (copy-on-write)
    prefill_tokens: int | None  # tokens prefilled per engine step; None: the whole batch of prompts at once
    sampler_rows: int  # rows of fp32 logits the engine's profile run holds (vLLM's dummy sampler run)
    non_torch_bytes: int  # CUDA context, NCCL and cuBLAS workspaces: inside the utilization budget
    cuda_graph_bytes: int  # captured decode graphs: outside the budget (captured after the pool exists)
    tensor_parallel: bool
    source: str


# vLLM V1: chunked prefill always on; max_num_batched_tokens defaults to 8192 for the OpenAI server on
# GPUs with >= 70 GiB and 2048 below (vllm/engine/arg_utils.py, default_max_num_batched_tokens); the
# profile run pushes that many tokens through the model plus a dummy sampler over max_num_seqs = 256
# rows (vllm/v1/worker/gpu_model_runner.py profile_run / _dummy_sampler_run); the KV pool is
# gpu_memory_utilization x total - weights - peak activation - non-torch memory (gpu_worker.py
# determine_available_memory); CUDA graphs are captured afterwards, outside that budget (V1 logs print
# "Graph capturing finished in N secs, took X GiB"; the 1 GiB allowance is assumed, not measured here).
VLLM = EngineProfile(
    name="vllm", paged=True, shares_prompt=True, prefill_tokens=8192, sampler_rows=256,
    non_torch_bytes=int(0.5 * GIB), cuda_graph_bytes=int(1.0 * GIB), tensor_parallel=True,
    source="vLLM V1 gpu_worker.determine_available_memory; Kwon et al. 2023 (PagedAttention); "
           "Agrawal et al. 2024 (Sarathi-Serve, chunked prefill)")
# SGLang: token-granular pool (page size 1), chunked_prefill_size 8192 on large GPUs, mem_fraction_static
# plays the role of gpu_memory_utilization (sglang/srt/server_args.py).
SGLANG = EngineProfile(
    name="sglang", paged=True, shares_prompt=True, prefill_tokens=8192, sampler_rows=256,
    non_torch_bytes=int(0.5 * GIB), cuda_graph_bytes=int(1.0 * GIB), tensor_parallel=True,
    source="SGLang server_args.py (chunked_prefill_size, mem_fraction_static); Zheng et al. 2024 (RadixAttention)")
# llama.cpp: one contiguous KV buffer of n_ctx cells, prefill in micro-batches of n_ubatch = 512 tokens,
# a compute buffer reserved for the largest graph (measured against llama-cpp-python's logs in tests).
LLAMACPP = EngineProfile(
    name="llama.cpp", paged=False, shares_prompt=False, prefill_tokens=512, sampler_rows=0,
    non_torch_bytes=0, cuda_graph_bytes=0, tensor_parallel=False,
    source="llama.cpp src/llama-context.cpp (n_ubatch 512, KV buffer, compute buffer reservation)")
# transformers generate: a contiguous cache per sequence, the whole prompt of every sequence prefilled
# in one forward, prompts expanded per beam/sample (generation/utils.py _expand_inputs_for_generation).
TRANSFORMERS = EngineProfile(
    name="transformers", paged=False, shares_prompt=False, prefill_tokens=None, sampler_rows=0,
    non_torch_bytes=int(0.5 * GIB), cuda_graph_bytes=0, tensor_parallel=False,
    source="transformers generation/utils.py (static batch, expanded inputs, full-prompt prefill)")

PROFILES = {p.name: p for p in (VLLM, SGLANG, LLAMACPP, TRANSFORMERS)}


def prefill_bound(profile: EngineProfile, memory_gib: float, stated: int | None) -> int | None:
    """Tokens per prefill step: the user's, else the engine default (vLLM: 2048 below 70 GiB)."""
    if stated:
        return stated
    if profile.name == "vllm" and memory_gib < 70:
        return 2048
    return profile.prefill_tokens
