"""Per-GPU model-state bytes under data parallelism, DeepSpeed ZeRO, FSDP and FSDP2.

Mixed precision under DeepSpeed follows DeepSpeed's own estimators (deepspeed/runtime/zero/stage_1_and_2.py
estimate_zero2_model_states_mem_needs, stage3.py estimate_zero3_model_states_mem_needs): 16-bit params
(2 B) replicated under ZeRO-1/2; the fp32 master weights, fp32 gradient partition and Adam moments
(4 + 4 + 8 = 16 B) partitioned; ZeRO-2 also partitions the 16-bit gradients (2 B), ZeRO-1 keeps them
whole. ZeRO-3 partitions everything (18 B/param / N) and gathers the largest layer (4 B/param of it).
ZeRO-2 can instead follow the ZeRO paper (Rajbhandari et al. 2020, §5.2), whose K = 12 counts no fp32
gradient: (2 + (2 + 12) / N) Ψ. docs/memory-model.md §6 gives both and why DeepSpeed's is the default."""

from __future__ import annotations

import math

from qkv.tools.inventory import TensorGroup

# Bytes per trainable parameter that ZeRO-2 partitions, by accounting.
ZERO2_PARTITIONED = {
    # DeepSpeed's estimator since PR #5099 (2024-06): 2 grads_16bit + 4 grads_32bit + 4 params_32bit + 8 Adam.
    "deepspeed": 18,
    # ZeRO paper, P_os+g: 2 (fp16 grads) + K, K = 12 (fp32 params, momentum, variance for mixed-precision Adam).
    "paper": 2 + 12,
}


def deepspeed_mixed_states(total: float, trainable: float, largest_layer: float, gpus: int, stage: int,
                           offload: str, accounting: str = "deepspeed") -> float:
    """Per-GPU model-state bytes of DeepSpeed ZeRO with bf16/fp16 mixed precision and Adam. `accounting`
    (deepspeed | paper) applies to stage 2 only."""
    frozen = total - trainable
    if stage in (1, 2) and offload != "none":
        return 2 * total  # 16-bit params on the GPU; optimizer state and its gradients on the host
    if stage == 1:
        # 16-bit grads replicated, 16 B partitioned (DeepSpeed's ZeRO-2 estimate before PR #5099, which is
        # what ZeRO-1 holds).
        return 2 * total + 2 * trainable + 16 * trainable / gpus
    if stage == 2:
        return 2 * total + ZERO2_PARTITIONED[accounting] * trainable / gpus
    gathered = 4 * largest_layer
    if offload == "optimizer+params":
        return gathered
    if offload == "optimizer":
        return gathered + 2 * total / gpus
    return gathered + (2 * frozen + 18 * trainable) / gpus


def sharded_states(weights: float, grads: float, states: float, gpus: int, scheme: str, offload: str,
                   gathered: float) -> tuple[float, float, float, float]:
    """Per-GPU (weights, grads, states, gathered-layer) bytes for pure-precision training or FSDP:
    ZeRO-1 shards optimizer state, ZeRO-2 also gradients, ZeRO-3/FSDP/FSDP2 also weights and gather
    layers while they compute (`gathered`, computed by the caller)."""
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


def fsdp2_padding(groups: list[TensorGroup], gpus: int) -> float:
    """FSDP2's per-rank share relative to an exact 1/N split: each parameter is chunked on dim 0
    (torch.chunk), and every rank's shard is padded to ceil(dim0 / N) rows so all-gathers are even."""
    exact = sum(g.numel for g in groups) / gpus
    if not exact:
        return 1.0
    padded = 0
    for g in groups:
        if g.role in ("norm", "bias") and len(g.shape) == 2:  # inventory stacks a layer's norms: k 1-D tensors
            padded += g.repeat * g.shape[0] * math.ceil(g.shape[1] / gpus)
            continue
        rows = g.shape[0] if g.shape else 1
        padded += g.repeat * math.ceil(rows / gpus) * math.prod(g.shape[1:])
    return padded / exact


def fsdp2_gathered(unit_params: int, unit_trainable: int, weight_bytes: float, grad_bytes: float) -> float:
    """FSDP2's unsharded working set at its backward peak (reshard_after_forward=True, the default): the
    all-gathered params of the unit computing and of the next unit prefetched (2 units), the current unit's
    unsharded gradients, and the previous unit's reduce-scatter input still in flight (torch FSDP2 allows one
    reduce-scatter in flight, torch/distributed/fsdp/_fully_shard/_fsdp_param_group.py)."""
    return 2 * unit_params * weight_bytes + 2 * unit_trainable * grad_bytes
