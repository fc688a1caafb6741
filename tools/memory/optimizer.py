"""Optimizer state bytes per trainable tensor, and the step's transient memory."""

from __future__ import annotations

from qkv.tools.inventory import TensorGroup

# bitsandbytes 8-bit optimizers: 1 byte per state value plus an fp32 absmax per 256-value block
# (bitsandbytes/optim/optimizer.py, blocksize 256); tensors under 4096 elements stay 32-bit.
BNB_BLOCK = 256
BNB_MIN_8BIT = 4096


def state_bytes(groups: list[TensorGroup], optimizer: str, state_dtype_bytes: float) -> float:
    """Bytes of optimizer state for these trainable tensors."""
    total = 0.0
    for g in groups:
        one = g.numel // g.repeat
        if optimizer in ("adamw", "paged-adamw"):
            per = 2 * state_dtype_bytes * one  # exp_avg and exp_avg_sq
        elif optimizer in ("adamw-8bit", "paged-adamw-8bit"):
            per = 2 * one * (1 + 4 / BNB_BLOCK) if one >= BNB_MIN_8BIT else 2 * 4 * one
        elif optimizer == "sgd":
            per = state_dtype_bytes * one  # momentum buffer
        elif optimizer == "adafactor":
            # Factored second moment (row + column statistics) for matrices, full for vectors; no
            # first moment (beta1=None, the HF/T5 default). Shazeer & Stern 2018.
            per = 4 * (sum(g.shape[-2:]) * (g.shape[0] if len(g.shape) == 3 else 1) if len(g.shape) >= 2 else one)
        else:
            raise ValueError(optimizer)
        total += per * g.repeat
    return total


def step_temporary_bytes(groups: list[TensorGroup], optimizer: str, state_dtype_bytes: float,
                         foreach: bool) -> float:
    """Transient bytes during optimizer.step(). torch AdamW's foreach path materialises
    sqrt(exp_avg_sq) for all tensors of a group at once (torch/optim/adamw.py _multi_tensor_adamw);
    bitsandbytes' kernels and the single-tensor path update one tensor at a time."""
    trainable = sum(g.numel for g in groups)
    largest = max((g.numel // g.repeat for g in groups), default=0)
    if optimizer == "adamw":
        return state_dtype_bytes * (trainable if foreach else largest)
    if optimizer == "adafactor":
        return 2 * 4 * largest  # update and its square for the largest tensor
    return 0.0


# bitsandbytes Optimizer8bit.get_state_buffer: a tensor of fewer than 1e5 elements gets an ordinary device buffer;
# larger ones a paged buffer (F.get_paged: cudaMallocManaged), which the driver evicts to host RAM under pressure.
PAGED_MIN_NUMEL = 100_000


def paged_split(groups: list[TensorGroup], optimizer: str, state_dtype_bytes: float) -> tuple[float, float, float]:
    """(never-paged state, the largest paged tensor's state, all paged state) in bytes. bitsandbytes' step
    prefetches one parameter's paged state at a time (prefetch_state, then update_step, then sync), so the
    least a paged optimizer needs on the GPU is its small tensors' state plus one large tensor's."""
    small = largest = paged = 0.0
    for g in groups:
        held = state_bytes([g], optimizer, state_dtype_bytes)  # all `repeat` tensors' state: repeat × one's
        if g.numel // g.repeat < PAGED_MIN_NUMEL:
            small += held
        else:
            paged += held
            largest = max(largest, held / g.repeat)
    return small, largest, paged
