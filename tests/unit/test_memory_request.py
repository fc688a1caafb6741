"""The memory request as users and other libraries write it: documented aliases accepted, unknown keys refused,
a GPU given by its memory, and QLoRA's checkpointing default (peft's prepare_model_for_kbit_training)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from qkv.tools.errors import BadInput
from qkv.tools.memory.estimate import estimate_memory
from qkv.tools.memory.schema import MemoryRequest


def test_aliases_mean_the_same_request():
    ours = MemoryRequest(model="llama-2-7b", method="lora", grad_checkpointing=True, seq=4096, batch=2, gpus=2,
                         grad_accum=4, lora_targets=["q_proj"])
    theirs = MemoryRequest.model_validate({
        "model": "llama-2-7b", "method": "lora", "gradient_checkpointing": True, "max_seq_length": 4096,
        "per_device_train_batch_size": 2, "num_gpus": 2, "gradient_accumulation_steps": 4,
        "target_modules": ["q_proj"]})
    assert theirs == ours


def test_unknown_keys_are_refused_not_ignored():
    with pytest.raises(ValidationError, match="seq_lenght"):
        MemoryRequest.model_validate({"model": "llama-2-7b", "seq_lenght": 65536})


def test_a_gpu_given_by_its_memory():
    req = MemoryRequest(model="llama-2-7b", method="qlora", gpu_memory_gib=8)
    assert req.gpu == "gpu-8gib" and estimate_memory(req).fit.usable_bytes == 8 * 2**30
    with pytest.raises(BadInput, match="one of them"):
        MemoryRequest(model="llama-2-7b", gpu="rtx-4090", gpu_memory_gib=24)


def test_qlora_checkpoints_unless_told_otherwise():
    assert MemoryRequest(model="llama-2-7b", method="qlora").grad_checkpointing is True
    assert MemoryRequest(model="llama-2-7b", method="qlora", grad_checkpointing=False).grad_checkpointing is False
    assert MemoryRequest(model="llama-2-7b", method="lora").grad_checkpointing is False
