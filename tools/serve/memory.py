"""One GPU's memory under a serving layout. Weight and KV bytes come from `qkv.tools.memory.infer` (the
estimator's own functions), so `qkv serve` and `qkv vram --method inference` agree on both."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from qkv.tools.arch import ModelSpec
from qkv.tools.catalog.gpus import GpuSpec
from qkv.tools.memory.infer import (
    kv_bytes_per_sequence,
    kv_shards,
    serving_weight_term,
    weight_term,
    workspace_term,
)
from qkv.tools.memory.schema import MemoryRequest
from qkv.tools.modelref import ResolvedModel
from qkv.tools.serve.engines import EngineProfile
from qkv.tools.serve.schema import MemoryItem

DRIVER_VISIBLE = 0.99  # share of the nominal memory the CUDA driver exposes (vLLM PR #10511, issue #12330 logs)


@dataclass
class Layout:
    """One candidate: parallelism, formats, and the per-GPU memory it leads to."""

    tp: int
    pp: int
    replicas: int
    weights: str
    kv: str
    prefill_tokens: int
    items: list[MemoryItem] = field(default_factory=list)
    usable: int = 0
    pool_bytes: int = 0
    token_bytes: int = 0  # KV bytes per token on one GPU
    weights_total: int = 0

    @property
    def label(self) -> str:
        par = f"TP {self.tp}" + (f" × PP {self.pp}" if self.pp > 1 else "")
        rep = f", {self.replicas} replicas" if self.replicas > 1 else ""
        return f"{par}{rep}, {self.weights} weights, {self.kv} KV"


def weights_bytes(spec: ModelSpec, fmt: str, resolved: ResolvedModel) -> MemoryItem:
    """Whole-model weight bytes in a serving format (the estimator's figure; a .gguf file's own size
    when the model is that file and no other format is asked for)."""
    if resolved.gguf_file_bytes and fmt == "gguf-file":
        return MemoryItem(name="weights", bytes=resolved.gguf_file_bytes, provenance="measured",
                          formula=f"size of {resolved.source}")
    if fmt in ("int8", "nf4"):  # bitsandbytes (the transformers profile): the estimator's own weight term
        term = weight_term(spec, MemoryRequest(model=resolved.name or "inline", method="inference", weights=fmt),
                           resolved)
    else:
        term = serving_weight_term(spec, fmt, resolved)
    return MemoryItem(name="weights", bytes=term.bytes, formula=term.formula,
                      provenance="cited" if term.provenance == "cited" else "analytic", source=term.note or "")


def token_bytes(spec: ModelSpec, kv: str, tp: int, pp: int) -> int:
    """KV bytes one token takes on one GPU: the estimator's per-sequence formula at one token, split by
    KV head over tensor parallelism and by layer over pipeline stages."""
    return math.ceil(kv_bytes_per_sequence(spec, kv, 1) / kv_shards(spec, tp) / pp)


def kv_blocks(pool_bytes: int, token_bytes: int, block_size: int) -> int:
    """Whole blocks of `block_size` tokens a pool holds (vLLM: num_gpu_blocks = available // page size)."""
    return pool_bytes // (block_size * token_bytes) if token_bytes else 0


def rank_spec(spec: ModelSpec, tp: int) -> ModelSpec:
    """The shapes one tensor-parallel rank computes: heads, KV heads and MLP width split tp ways."""
    if tp == 1:
        return spec
    return spec.model_copy(update={"heads": max(1, spec.heads // tp), "kv_heads": max(1, spec.kv_heads // tp),
                                   "intermediate": max(1, spec.intermediate // tp)})


def workspace(spec: ModelSpec, tp: int, tokens: int, sampler_rows: int, name: str) -> MemoryItem:
    """Activation peak of one prefill step of `tokens` tokens on one rank (the estimator's workspace term
    on the rank's shapes) plus the engine's sampler rows of fp32 logits."""
    term = workspace_term(rank_spec(spec, tp), MemoryRequest(model=name, method="inference", seq=tokens, batch=1))
    sampler = sampler_rows * spec.vocab * 4
    formula = term.formula + (f" + sampler {sampler_rows} rows × {spec.vocab:,} vocab × 4 B" if sampler else "")
    return MemoryItem(name="activation workspace", bytes=term.bytes + sampler, formula=formula,
                      source="bounded by the tokens prefilled per step (chunked prefill)")


def paged_layout(lay: Layout, spec: ModelSpec, resolved: ResolvedModel, gpu: GpuSpec, profile: EngineProfile,
                 utilization: float) -> Layout:
    """vLLM/SGLang: pool = utilization × memory − weights − activation peak − non-torch memory."""
    total = weights_bytes(spec, lay.weights, resolved)
    per = lay.tp * lay.pp
    w = MemoryItem(name="weights", bytes=total.bytes // per, provenance=total.provenance,
                   formula=f"{total.formula} / {per} GPUs", source=total.source)
    rows = profile.sampler_rows if spec.kind != "encoder" else 0  # an encoder (pooling) model samples nothing
    act = workspace(spec, lay.tp, lay.prefill_tokens, rows, resolved.name)
    ctx = MemoryItem(name="CUDA context + NCCL (non-torch)", bytes=profile.non_torch_bytes, provenance="assumed",
                     formula=f"{profile.non_torch_bytes / 2**30:g} GiB", source="vLLM logs 'non_torch_memory'")
    # vLLM budgets from the memory the driver exposes (torch.cuda.mem_get_info), about 1% under the size sold:
    # H100 80GB 79.22 GiB (vLLM PR #10511's profiling log), A100 40GB 39.50 GiB (vLLM issue #12330's log).
    usable = int(gpu.usable_bytes * DRIVER_VISIBLE)
    budget = int(usable * utilization)
    pool = budget - w.bytes - act.bytes - ctx.bytes
    graphs = MemoryItem(name="CUDA graphs", bytes=profile.cuda_graph_bytes, provenance="assumed",
                        formula=f"{profile.cuda_graph_bytes / 2**30:g} GiB outside the utilization budget",
                        source="captured after the KV pool is allocated")
    spill = max(0, graphs.bytes - (usable - budget))  # graphs that do not fit the headroom come out of the pool
    pool -= spill
    lay.token_bytes = token_bytes(spec, lay.kv, lay.tp, lay.pp) if spec.kind != "encoder" else 0
    lay.pool_bytes = max(0, pool)
    kv = MemoryItem(name="KV pool" if spec.kind != "encoder" else "free (batches of inputs)", bytes=lay.pool_bytes,
                    formula=f"{utilization:g} × {usable / 2**30:.2f} GiB − weights − workspace − non-torch"
                            + (f" − {spill / 2**30:.2f} GiB graphs over the headroom" if spill else ""),
                    source=f"{lay.token_bytes:,} B/token/GPU ({lay.kv})" if lay.token_bytes else "no KV cache")
    lay.items, lay.usable = [w, kv, act, ctx, graphs], usable
    lay.weights_total = total.bytes
    return lay


def contiguous_layout(lay: Layout, spec: ModelSpec, resolved: ResolvedModel, gpu: GpuSpec, profile: EngineProfile,
                      held_tokens: int, sequences: int, prompt: int) -> Layout:
    """transformers / llama.cpp: a KV cache sized to what is held (no pool), weights split over the GPUs
    layer by layer, and the prefill workspace of the engine's batch."""
    from qkv.tools.serve.llamacpp import compute_buffer, output_buffer

    total = weights_bytes(spec, lay.weights, resolved)
    n = lay.pp
    w = MemoryItem(name="weights", bytes=total.bytes // n, provenance=total.provenance,
                   formula=total.formula + (f" / {n} GPUs (layer split)" if n > 1 else ""), source=total.source)
    lay.token_bytes = token_bytes(spec, lay.kv, 1, n) if spec.kind != "encoder" else 0
    kv_bytes = math.ceil(kv_bytes_per_sequence(spec, lay.kv, held_tokens) / n) if spec.kind != "encoder" else 0
    kv = MemoryItem(name="KV cache", bytes=kv_bytes,
                    formula=f"{held_tokens:,} tokens held × {lay.token_bytes:,} B/token ({lay.kv})"
                            + (f" / {n} GPUs" if n > 1 else ""))
    if profile.name == "llama.cpp":
        act = compute_buffer(spec, n_ctx=held_tokens, n_ubatch=lay.prefill_tokens, flash_attn=gpu.gpu_class != "cpu")
        out = output_buffer(spec, sequences)
        items = [w, kv, act, out]
    else:
        term = workspace_term(spec, MemoryRequest(model=resolved.name, method="inference", seq=prompt,
                                                  batch=sequences))
        act = MemoryItem(name="activation workspace", bytes=term.bytes, formula=term.formula,
                         source="whole prompts of the batch in one forward (no chunked prefill)")
        ctx = MemoryItem(name="CUDA context", bytes=profile.non_torch_bytes, provenance="assumed",
                         formula=f"{profile.non_torch_bytes / 2**30:g} GiB")
        items = [w, kv, act, ctx]
    lay.items, lay.usable = items, gpu.usable_bytes
    lay.pool_bytes = max(0, gpu.usable_bytes - sum(i.bytes for i in items) + kv.bytes)
    lay.weights_total = total.bytes
    return lay
