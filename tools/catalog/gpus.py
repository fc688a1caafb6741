"""The GPU catalog (`gpus.json`): memory, bandwidth, dense TFLOP/s and FP8 support, each with its source."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Literal

from pydantic import BaseModel, Field

from qkv.tools.errors import UnknownName, closest

GIB = 1024**3

# macOS lets the GPU wire about 75% of unified memory by default (Metal's
# recommendedMaxWorkingSetSize); the rest stays with the OS. Sources in gpus.json.
APPLE_GPU_SHARE = 0.75


class GpuSpec(BaseModel):
    """One accelerator as sold. Memory is binary (a '24 GB' card has 24 GiB)."""

    name: str
    aliases: list[str] = Field(default_factory=list)
    display_name: str
    vendor: str
    gpu_class: Literal["consumer", "workstation", "datacenter", "apple"] = Field(alias="class")
    architecture: str
    memory_gib: float
    memory_type: str
    bandwidth_gb_s: float
    bf16_dense_tflops: float | None
    fp16_dense_tflops: float | None
    fp8: bool
    fp8_dense_tflops: float | None
    unified_memory: bool
    tdp_w: float | None
    notes: str = ""
    source: str

    model_config = {"populate_by_name": True}

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * GIB)

    @property
    def usable_bytes(self) -> int:
        """Bytes a training or inference job may use: all of it on a discrete GPU, the default
        GPU share of unified memory on Apple silicon."""
        share = APPLE_GPU_SHARE if self.unified_memory else 1.0
        return int(self.memory_bytes * share)


@cache
def _load() -> dict[str, GpuSpec]:
    raw = json.loads(files("qkv.tools.catalog").joinpath("gpus.json").read_text())
    return {g["name"]: GpuSpec.model_validate(g) for g in raw["gpus"]}


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


@cache
def _index() -> dict[str, str]:
    index: dict[str, str] = {}
    for gpu in _load().values():
        for key in [gpu.name, gpu.display_name, *gpu.aliases]:
            index[_norm(key)] = gpu.name
    return index


def list_gpus() -> list[GpuSpec]:
    """All catalog GPUs, in file order."""
    return list(_load().values())


def get_gpu(name: str) -> GpuSpec:
    """The GPU for a name or alias (case-insensitive); an UnknownName error lists the closest names."""
    key = _index().get(_norm(name))
    if key is None:
        raise UnknownName(
            f"unknown GPU '{name}'",
            expected="a catalog GPU name (`qkv gpus`)",
            choices=closest(name, [g.name for g in _load().values()] + list(_index().keys())),
        )
    return _load()[key]
