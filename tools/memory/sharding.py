"""Per-GPU model-state bytes under data parallelism, DeepSpeed ZeRO and FSDP.

Mixed precision under DeepSpeed follows DeepSpeed's own estimator (docs/code-docs/source/memory.rst,
estimate_zero2/zero3_model_states_mem_needs): 16-bit params and grads (2 + 2 B) replicated under
ZeRO-1/2, fp32 master weights + fp32 grads + Adam moments (4 + 4 + 8 = 16 B) partitioned; ZeRO-3
partitions everything (18 B/param / N) and gathers the largest layer (4 B/param of it)."""

from __future__ import annotations


def deepspeed_mixed_states(total: float, trainable: float, largest_layer: float, gpus: int, stage: int,
                           offload: str) -> float:
    """Per-GPU model-state bytes of DeepSpeed ZeRO with bf16/fp16 mixed precision and Adam."""
    frozen = total - trainable
    if stage in (1, 2):
        # Stage 1 and 2 share one optimizer in DeepSpeed (stage_1_and_2.py) and one estimate.
        if offload != "none":
            return 2 * total
        return 2 * total + 2 * trainable + 16 * trainable / gpus
    gathered = 4 * largest_layer
    if offload == "optimizer+params":
        return gathered
    if offload == "optimizer":
        return gathered + 2 * total / gpus
    return gathered + (2 * frozen + 18 * trainable) / gpus


def sharded_states(weights: float, grads: float, states: float, gpus: int, scheme: str, offload: str,
                   gathered: float) -> tuple[float, float, float, float]:
    """Per-GPU (weights, grads, states, gathered-layer) bytes for pure-precision training or FSDP:
    ZeRO-1 shards optimizer state, ZeRO-2 also gradients, ZeRO-3/FSDP also weights and gathers one
    layer (its weights and gradients) at a time."""
    if scheme in ("none", "ddp"):
        return weights, grads, states, 0.0
    if offload != "none":
        states = 0.0
        grads = 0.0 if scheme != "zero1" else grads
    if scheme == "zero1":
        return weights, grads, states / gpus, 0.0
    if scheme == "zero2":
        return weights, grads / gpus, states / gpus, 0.0
    if offload == "optimizer+params":
        return 0.0, 0.0, 0.0, gathered
    return weights / gpus, grads / gpus, states / gpus, gathered
