"""The GPU catalog (`gpus.json`): memory, bandwidth, dense TFLOP/s, FP8 support and the GPU-to-GPU
interconnect, each with its source."""

from __future__ import annotations

import json
import re
from functools import cache
from importlib.resources import files
from typing import Literal

from pydantic import BaseModel, Field

from qkv.tools.errors import BadInput, UnknownName, closest

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
    gpu_class: Literal["consumer", "workstation", "datacenter", "apple", "stated", "cpu"] = Field(alias="class")
    architecture: str
    memory_gib: float
    memory_type: str
    bandwidth_gb_s: float | None = Field(description="memory bandwidth, GB/s (None: not known for a stated size)")
    bf16_dense_tflops: float | None
    fp16_dense_tflops: float | None
    fp8: bool
    fp8_dense_tflops: float | None
    unified_memory: bool
    tdp_w: float | None
    notes: str = ""
    source: str
    interconnect: str | None = Field(None, description="GPU-to-GPU link: NVLink generation, or the PCIe slot")
    interconnect_gb_s: float | None = Field(
        None, description="GPU-to-GPU bandwidth, GB/s, both directions summed as vendors print it (None: unknown)")
    interconnect_source: str = ""

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


STATED = re.compile(r"^(gpu|cpu)-(\d+(?:\.\d+)?)gib$")


def stated_device(kind: Literal["gpu", "cpu"], memory_gib: float) -> str:
    """The name of a device known only by its memory: 'gpu-8gib' (a GPU of exactly 8 GiB) or 'cpu-32gib'."""
    if not (memory_gib > 0):
        raise BadInput(f"a {kind.upper()} with {memory_gib:g} GiB", expected="a positive memory size")
    return f"{kind}-{memory_gib:g}gib"


def _stated_spec(kind: str, memory_gib: float) -> GpuSpec:
    """A device known only by its memory: no bandwidth or compute figures are borrowed from another card."""
    gpu = kind == "gpu"
    return GpuSpec(
        name=f"{kind}-{memory_gib:g}gib", display_name=(f"a GPU with {memory_gib:g} GiB" if gpu else
                                                        f"a CPU with {memory_gib:g} GiB of RAM"),
        vendor="unspecified" if gpu else "cpu", gpu_class="stated" if gpu else "cpu", architecture="unspecified",
        memory_gib=memory_gib, memory_type="unspecified" if gpu else "system RAM", bandwidth_gb_s=None,
        bf16_dense_tflops=None, fp16_dense_tflops=None, fp8=False, fp8_dense_tflops=None, unified_memory=False,
        tdp_w=None, notes="memory as stated by the user; bandwidth and compute unknown", source="stated by the user",
        interconnect_source="unknown: only the memory was stated")


def get_gpu(name: str) -> GpuSpec:
    """The GPU for a name or alias (case-insensitive); an UnknownName error lists the closest names.

    'gpu-8gib' and 'cpu-32gib' name a device known only by its memory (see `stated_device`)."""
    stated = STATED.match(_norm(name))
    if stated:
        size = float(stated.group(2))
        if size <= 0:
            raise BadInput(f"'{name}' has no memory", expected="a positive size, e.g. gpu-8gib")
        return _stated_spec(stated.group(1), size)
    key = _index().get(_norm(name))
    if key is None:
        raise UnknownName(
            f"unknown GPU '{name}'",
            expected="a catalog GPU name (`qkv gpus`)",
            choices=closest(name, [g.name for g in _load().values()] + list(_index().keys())),
        )
    return _load()[key]
