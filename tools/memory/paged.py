"""Paged optimizers (bitsandbytes PagedAdamW / PagedAdamW8bit) that really page.

bitsandbytes allocates the state of every tensor of 100k+ elements with cudaMallocManaged (CUDA unified
memory, `F.get_paged`); the driver evicts those pages to host RAM when device allocations need the room and
migrates them back on access. The step prefetches one parameter's state at a time before updating it
(`Optimizer8bit.prefetch_state`). Dettmers et al. 2023 (QLoRA, §3 "Paged Optimizers"): states "are
automatically evicted to CPU RAM when the GPU runs out-of-memory and paged back into GPU memory when the
memory is needed in the optimizer update step".

So the least GPU memory the optimizer needs is the never-paged small tensors' state plus the largest paged
tensor's (prefetched for its update); the rest can sit in host RAM. That is what the estimate counts on the
GPU, and the rest is host RAM (`host_bytes`). It costs PCIe traffic only when memory is short: the evicted
pages come in for the step and go out again when forward needs the room. Unified-memory pages are outside
PyTorch's caching allocator: torch.cuda.max_memory_allocated never shows them; nvidia-smi shows the resident ones."""

from __future__ import annotations

from qkv.tools.inventory import TensorGroup
from qkv.tools.memory.dtypes import count
from qkv.tools.memory.optimizer import PAGED_MIN_NUMEL, paged_split
from qkv.tools.memory.schema import MemoryRequest

# PCIe 4.0 x16: 16 GT/s × 16 lanes × 128/130 encoding = 31.5 GB/s per direction (PCI-SIG PCIe 4.0 spec), the
# ceiling of any host-device migration on such a card; page-fault migration reaches less.
PCIE4_X16_BYTES_PER_S = 31.5e9


def paged_states(groups: list[TensorGroup], req: MemoryRequest, state_dtype_bytes: float,
                 share: float) -> tuple[float, float, str]:
    """(GPU-resident state bytes, host RAM bytes, note) for a paged optimizer; `share` is this GPU's fraction
    of the state (1, or 1/N under sharding)."""
    base = req.optimizer.removeprefix("paged-")
    small, largest, paged = paged_split(groups, base, state_dtype_bytes)
    resident = (small + largest) * share
    host = max(paged - largest, 0.0) * share
    traffic = 2 * host
    note = (f"paged ({base} state): tensors under {PAGED_MIN_NUMEL:,} elements {count(small * share)} B stay on the "
            f"GPU, the largest paged tensor's {count(largest * share)} B is paged in for its update, the other "
            f"{count(host)} B can live in host RAM (CUDA unified memory, evicted under pressure). Cost when evicted: "
            f"up to {traffic / 1e9:.2f} GB over PCIe per step (in for the step, out for the next forward), "
            f"≥ {traffic / PCIE4_X16_BYTES_PER_S * 1e3:.0f} ms at PCIe 4.0 x16's 31.5 GB/s; none when the GPU has "
            "room (QLoRA §3: paging is rare, and paged and regular optimizers trained a 65B model on a 48 GB GPU at "
            "the same speed at batch 16)")
    return resident, host, note
