"""The trainer under `accelerate launch` / torchrun: this process's rank and the world size, the launches
refused before the model loads (FSDP on CPU, the chunked loss under DDP), and the note that says what the
launch became. Checkpoint sealing across ranks lives in checkpoints.py."""

from __future__ import annotations

import os

from qkv.tools.errors import BadInput
from qkv.tools.train.config import TrainConfig


def world() -> tuple[int, int]:
    """(rank, number of processes) as `accelerate launch` / torchrun set them for this process; (0, 1) alone.
    Read from the environment because the files below are touched before the process group exists."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def check_scale_out(cfg: TrainConfig, cuda: bool) -> None:
    """Refuse, before the model loads, a multi-process launch that would not do what its config says."""
    _, size = world()
    if size == 1:
        return
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not cuda:
        import accelerate

        # accelerate switches to FSDP only for accelerator device types (its MULTI_CPU state keeps the plugin
        # unused), so the run would train as plain DDP while the config promised sharding
        raise BadInput(f"FSDP on CPU: accelerate {accelerate.__version__} enables FSDP only on GPUs and would run "
                       "this launch as plain DDP (every process holding the whole model)",
                       expected="configs/accelerate-ddp-cpu.yaml on CPU (DDP over gloo), or FSDP on CUDA GPUs")
    if cfg.train.loss == "chunked":
        raise BadInput(f"train.loss chunked under {size} processes: the chunked loss runs the model's body itself "
                       "and would bypass DDP's gradient sync", expected="train.loss: standard under DDP/FSDP")


def scale_out_note(trainer, processes: int) -> str:
    """What the launch became: the distributed type and backend accelerate set up, and the global batch."""
    state = trainer.accelerator.state
    kind = "FSDP" if trainer.is_fsdp_enabled else "DDP"
    args = trainer.args
    micro, accum = args.per_device_train_batch_size, args.gradient_accumulation_steps
    return (f"scale-out: {processes} processes, {kind} over {state.backend} "
            f"(accelerate {state.distributed_type.value}); global batch {micro * accum * processes} sequences = "
            f"micro_batch {micro} x grad_accum {accum} x {processes}")
