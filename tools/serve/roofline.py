"""Roofline bounds for serving: decode is memory-bound (every weight and the KV of every sequence are read
once per step), prefill is compute-bound (2 FLOPs per active parameter per token, plus attention), and
tensor parallelism adds two all-reduces of the hidden state per layer (Megatron-LM, Shoeybi et al. 2019).

All figures are bounds: 100% of peak bandwidth and FLOP/s, no kernel-launch or scheduling time."""

from __future__ import annotations

from dataclasses import dataclass

from qkv.tools.arch import ModelSpec
from qkv.tools.catalog.gpus import GpuSpec


@dataclass(frozen=True)
class Step:
    """One decode step's cost on one GPU."""

    seconds: float
    bytes_read: int
    allreduce_s: float
    bound: str


def allreduce_seconds(spec: ModelSpec, gpu: GpuSpec, tp: int, tokens: int) -> float:
    """Two ring all-reduces per layer of tokens × hidden × 2 B: each GPU sends and receives
    2 (tp − 1) / tp of the buffer at half the vendor's bidirectional link figure (NCCL's bus bandwidth)."""
    if tp <= 1 or not gpu.interconnect_gb_s:
        return 0.0
    buffer = tokens * spec.hidden * 2
    per_direction = gpu.interconnect_gb_s * 1e9 / 2
    return 2 * spec.layers * (2 * (tp - 1) / tp) * buffer / per_direction


def decode_step(spec: ModelSpec, gpu: GpuSpec, *, weights_gpu: int, kv_token_bytes: int, batch: int,
                context: int, tp: int, active_params: int, peak_tflops: float | None) -> Step | None:
    """Time per output token at `batch` sequences of `context` tokens: max(bytes ÷ bandwidth, FLOPs ÷ peak)
    plus the all-reduce. FLOPs per sequence: 2 per active parameter, plus attention of the new token over
    the context, QKᵀ and AV at 2 FLOPs per multiply-add each: 4 × layers × context × q_dim (as
    `prefill_flops` counts both). None when the GPU's bandwidth is unknown."""
    if not gpu.bandwidth_gb_s:
        return None
    read = weights_gpu + batch * context * kv_token_bytes
    mem_s = read / (gpu.bandwidth_gb_s * 1e9)
    flops = (2 * active_params + 4 * spec.layers * context * spec.q_dim) * batch / tp
    comp_s = flops / (peak_tflops * 1e12) if peak_tflops else 0.0
    ar = allreduce_seconds(spec, gpu, tp, batch)
    return Step(seconds=max(mem_s, comp_s) + ar, bytes_read=read, allreduce_s=ar,
                bound="memory" if mem_s >= comp_s else "compute")


def prefill_flops(spec: ModelSpec, active_params: int, prompt: int) -> tuple[float, float]:
    """(total FLOPs, attention-score FLOPs) of a causal prefill: 2 × active params × P for the matmuls,
    and per layer QKᵀ and AV over the causal triangle, 2 × 2 × P²/2 × q_dim (Kaplan et al. 2020, eq. 2.1,
    without the context-length approximation)."""
    attn = 2.0 * spec.layers * prompt * prompt * spec.q_dim
    return 2.0 * active_params * prompt + attn, attn


def ttft_seconds(spec: ModelSpec, gpu: GpuSpec, *, active_params: int, prompt: int, tp: int, weights_gpu: int,
                 peak_tflops: float | None) -> tuple[float, float, float] | None:
    """(TTFT, FLOPs, attention share): the prompt's FLOPs over the tp GPUs at peak, never less than one
    read of the weights, plus the prompt's all-reduces. None when the GPU's peak is unknown."""
    if not peak_tflops:
        return None
    flops, attn = prefill_flops(spec, active_params, prompt)
    comp = flops / tp / (peak_tflops * 1e12)
    mem = weights_gpu / (gpu.bandwidth_gb_s * 1e9) if gpu.bandwidth_gb_s else 0.0
    return max(comp, mem) + allreduce_seconds(spec, gpu, tp, prompt), flops, attn / flops


def decode_upper_tok_s(bandwidth_gb_s: float | None, step_bytes: int, sequences: int) -> float | None:
    """Tokens/s upper bound of memory-bound decoding: every step reads `step_bytes` (weights + KV cache, one
    GPU's share; GPUs read their shards in parallel) and yields one token per sequence. None without a
    bandwidth figure (a GPU known only by its memory)."""
    if not step_bytes or not bandwidth_gb_s:
        return None
    return bandwidth_gb_s * 1e9 / step_bytes * sequences


def prefill_lower_s(spec: ModelSpec, gpu: GpuSpec, active_params: int, prompt: int) -> tuple[float, float, float]:
    """(seconds, FLOPs, attention FLOPs) of one prompt at one GPU's dense 16-bit peak, a lower bound at full
    utilisation. The caller checks the GPU has a 16-bit figure (bf16, else fp16)."""
    peak = gpu.bf16_dense_tflops or gpu.fp16_dense_tflops
    flops, attn = prefill_flops(spec, active_params, prompt)
    return flops / (peak * 1e12), flops, attn


def meets_speed_targets(decode_tok_s: float | None, concurrency: int, tpot_ms: float | None,
                        throughput_tok_s: float | None, bandwidth_known: bool) -> bool:
    """Whether a decode bound meets the stated targets: time per output token of one stream (1000 ms ÷ the
    per-stream tokens/s) and aggregate tokens/s. Without a bandwidth figure neither can be checked, so
    neither rules a plan out (the report says the bound was not computed)."""
    if not bandwidth_known:
        return True
    per_stream = decode_tok_s / concurrency if decode_tok_s else None
    latency_ok = tpot_ms is None or bool(per_stream and 1000 / per_stream <= tpot_ms)
    throughput_ok = throughput_tok_s is None or bool(decode_tok_s and decode_tok_s >= throughput_tok_s)
    return latency_ok and throughput_ok


def kv_sequences(concurrency: int, beams: int) -> int:
    """Sequences a KV cache holds without prompt sharing: every beam of every request has its own."""
    return concurrency * beams


def output_tokens(max_new_tokens: int | None, context: int, default: int = 256) -> int:
    """Tokens generated per request, inside the context (at least one; the sampling plan's max_new_tokens,
    else `default`)."""
    return min(int(max_new_tokens or default), max(1, context - 1))


def planning_output_tokens(context: int, cap: int = 256) -> int:
    """Tokens per reply to plan with when none are stated: `cap`, or an eighth of a short context."""
    return min(cap, max(1, context // 8))
