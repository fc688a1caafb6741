"""The traced result: exact peak tensor bytes, where it happens, and what is live then."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field

from qkv.tools.memory.schema import MemoryRequest, to_gib

CATEGORIES = ("parameters", "gradients", "optimizer state", "activations", "KV cache", "temporaries")


class ModuleActivation(BaseModel):
    module: str = Field(description="module path, layer indices folded to *")
    bytes: int


class TraceResult(BaseModel):
    """Peak live tensor bytes of one steady-state training step (the second) or one inference
    prefill, traced on fake CPU tensors through the real transformers code."""

    request: MemoryRequest
    model: str
    peak_bytes: int = Field(description="peak live tensor bytes (exact, before allocator rounding)")
    peak_phase: str = Field(description="forward, backward, optimizer, or prefill")
    categories: dict[str, int] = Field(description="bytes per category at the peak")
    phase_peaks: dict[str, int] = Field(description="peak live bytes within each phase")
    top_modules: list[ModuleActivation] = Field(description="saved activations by module at the end of forward")
    allocated_bytes: int = Field(description="peak with the caching allocator's 512 B rounding")
    reserved_bytes: int = Field(description="peak segment bytes the caching allocator holds (modelled)")
    total_bytes: int = Field(description="reserved + CUDA context")
    host_bytes: int = Field(0, description="peak host RAM of offloaded activations (save_on_cpu), traced")
    analytic_adjustments: list[str] = Field(
        default_factory=list, description="terms added analytically (e.g. 4-bit weight bytes)")
    seconds: float
    provenance: Literal["traced"] = "traced"

    @computed_field
    @property
    def peak_gib(self) -> float:
        return to_gib(self.peak_bytes)

    @computed_field
    @property
    def reserved_gib(self) -> float:
        return to_gib(self.reserved_bytes)
