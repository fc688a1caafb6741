"""Peak GPU memory of inference (per GPU): weights in the chosen format, the KV cache, and the
prefill's activation workspace."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qkv.tools.arch import ModelSpec
from qkv.tools.inventory import apply_layout, inventory
from qkv.tools.memory.dtypes import (
    FLOAT_BYTES,
    GGUF_BPW,
    GGUF_SOURCE,
    INT8_BYTES,
    KV_BYTES,
    NF4_BITS,
    NF4_DQ_BITS,
    activation_bytes,
    count,
    is_gguf,
)
from qkv.tools.memory.schema import MemoryRequest, MemoryTerm
from qkv.tools.memory.terms import dequantised_weight_term
from qkv.tools.modelref import ResolvedModel

if TYPE_CHECKING:
    from qkv.tools.catalog.linear_modules import LinearLayout


def _kept_note(spec: ModelSpec, layout: LinearLayout | None) -> str:
    """What bitsandbytes leaves in 16 bits, in words."""
    kept = "embeddings, norms and lm_head stay 16-bit"
    skipped = [m for m in (layout.not_quantised if layout is not None else []) if m != "lm_head"]
    if skipped:
        kept += f", as does {', '.join(skipped)} (_keep_in_fp32_modules)"
    if layout is not None and layout.fused_expert_params:
        kept = (f"{kept}, and so do {spec.model_type}'s fused expert tensors ({', '.join(layout.fused_expert_names)}: "
                "3-D parameters, not nn.Linear modules) and its router")
    return "converts nn.Linear/Conv1D modules only; " + kept


def weight_term(spec: ModelSpec, req: MemoryRequest, resolved: ResolvedModel,
                layout: LinearLayout | None = None) -> MemoryTerm:
    """Weight bytes in the requested format (default: the precision's float type). `layout` (the real
    linear modules) decides what int8/nf4/fp4 quantise; without it the inventory's roles stand in."""
    groups = inventory(spec)
    if layout is not None:
        groups = apply_layout(groups, layout)
    total = sum(g.numel for g in groups)
    fmt = req.weights or ("fp32" if req.precision == "fp32" else req.precision.split("-")[0])
    compute = 2.0  # 16-bit compute dtype for everything bitsandbytes leaves unquantised
    if fmt in FLOAT_BYTES:
        return MemoryTerm(name="weights", bytes=int(total * FLOAT_BYTES[fmt]),
                          formula=f"{count(total)} params × {FLOAT_BYTES[fmt]:g} B ({fmt})")
    linear = [g for g in groups if g.is_quantised]
    qn = sum(g.numel for g in linear)
    if fmt == "int8":
        rows = sum(g.shape[-2] * g.repeat for g in linear)
        b = qn * INT8_BYTES + rows * 4 + (total - qn) * compute
        return MemoryTerm(name="weights", bytes=int(b),
                          formula=f"{count(qn)} linear × 1 B + {count(rows)} fp32 row scales + "
                                  f"{count(total - qn)} other × 2 B",
                          note="bitsandbytes LLM.int8 " + _kept_note(spec, layout))
    if fmt in ("nf4", "fp4"):
        bits = NF4_DQ_BITS if req.quant_double else NF4_BITS
        b = qn * bits / 8 + (total - qn) * compute
        return MemoryTerm(name="weights", bytes=int(b),
                          formula=f"{count(qn)} linear × {bits:.3f} bits + {count(total - qn)} other × 2 B",
                          note="bitsandbytes 4-bit " + _kept_note(spec, layout))
    if is_gguf(fmt):
        bpw = GGUF_BPW[fmt]
        return MemoryTerm(name="weights", bytes=int(total * bpw / 8), provenance="cited",
                          formula=f"{count(total)} params × {bpw} bits/weight ({fmt})", note=GGUF_SOURCE)
    raise ValueError(fmt)


# Serving formats outside bitsandbytes (vLLM/SGLang kernels). FP8 W8A8 (llm-compressor / Meta's FP8
# checkpoints): 1 byte per linear weight plus one fp32 scale per output channel. AWQ/GPTQ INT4 at group
# size 128: 4 bits + one fp16 scale and one packed 4-bit zero point per 128 weights = 4 + 20/128 bits
# (AutoAWQ / AutoGPTQ packing, run by vLLM's Marlin kernels). Embeddings, norms and lm_head stay 16-bit.
SERVING_INT4_BITS = 4 + (16 + 4) / 128
SERVING_QUANTISED_ROLES = ("attention", "mlp", "experts")


def serving_weight_term(spec: ModelSpec, fmt: str, resolved: ResolvedModel) -> MemoryTerm:
    """Weight bytes of a serving format: bf16/fp16/fp32 and GGUF types as `weight_term` computes them,
    fp8 and awq-int4/gptq-int4 over the linear layers of the blocks (the layers those kernels replace)."""
    if fmt in FLOAT_BYTES or is_gguf(fmt):
        req = MemoryRequest(model=resolved.name or "inline", method="inference", weights=fmt)  # type: ignore[arg-type]
        return weight_term(spec, req, resolved)
    groups = inventory(spec)
    total = sum(g.numel for g in groups)
    linear = [g for g in groups if g.role in SERVING_QUANTISED_ROLES and len(g.shape) >= 2]
    qn = sum(g.numel for g in linear)
    if fmt == "fp8":
        rows = sum(g.shape[-2] * (g.shape[0] if len(g.shape) == 3 else 1) * g.repeat for g in linear)
        return MemoryTerm(name="weights", bytes=int(qn + rows * 4 + (total - qn) * 2),
                          formula=f"{count(qn)} linear × 1 B (fp8) + {count(rows)} fp32 channel scales + "
                                  f"{count(total - qn)} other × 2 B",
                          note="FP8 W8A8 checkpoint (per-channel scales); embeddings, norms and lm_head bf16")
    if fmt in ("awq-int4", "gptq-int4"):
        return MemoryTerm(name="weights", bytes=int(qn * SERVING_INT4_BITS / 8 + (total - qn) * 2),
                          formula=f"{count(qn)} linear × {SERVING_INT4_BITS:.4f} bits (int4, group 128) + "
                                  f"{count(total - qn)} other × 2 B",
                          note=f"{fmt.split('-')[0].upper()} INT4 packing; embeddings, norms and lm_head fp16")
    raise ValueError(fmt)


def kv_bytes_per_sequence(spec: ModelSpec, kv_dtype: str, seq: int) -> int:
    """KV bytes one sequence of `seq` tokens holds on one (unsharded) model: 2 (K and V) × KV heads ×
    head dim × bytes × (full layers × seq + sliding layers × min(seq, window)), plus cross-attention K/V
    for an encoder-decoder. The one formula the estimator and the serving planner share."""
    return int(_kv_bytes(spec, kv_dtype, seq))


def _kv_bytes(spec: ModelSpec, kv_dtype: str, seq: int) -> float:
    if spec.kind == "encoder":
        return 0.0
    full_layers = spec.layers - spec.sliding_layers
    tokens = full_layers * seq + spec.sliding_layers * min(seq, spec.sliding_window or seq)
    if spec.kind == "encoder-decoder":
        tokens += spec.layers * seq  # cross-attention K/V over the encoder output (same length)
    return 2 * spec.kv_dim * KV_BYTES[kv_dtype] * tokens


def kv_shards(spec: ModelSpec, tensor_parallel: int) -> int:
    """How many ways tensor parallelism splits the KV cache: by KV head, so at most `kv_heads` ways (with
    fewer KV heads than GPUs each GPU keeps a replica of one head, as vLLM does)."""
    return max(1, min(tensor_parallel, spec.kv_heads))


def kv_cache_term(spec: ModelSpec, req: MemoryRequest) -> MemoryTerm | None:
    """2 (K and V) × layers × KV heads × head dim × bytes × tokens held × batch; sliding-window
    layers hold at most the window."""
    if spec.kind == "encoder":
        return None
    kvb = KV_BYTES[req.kv_dtype]
    full_layers = spec.layers - spec.sliding_layers
    held_sliding = min(req.seq, spec.sliding_window or req.seq)
    formula = (f"2 × {spec.kv_heads} KV heads × {spec.head_dim} head dim × {kvb:g} B ({req.kv_dtype}) × "
               f"{req.batch} batch × ({full_layers} layers × {req.seq:,} tokens")
    formula += f" + {spec.sliding_layers} sliding layers × {held_sliding:,})" if spec.sliding_layers else ")"
    if spec.kind == "encoder-decoder":
        formula += " + cross-attention K/V over the encoder output"
    return MemoryTerm(name="KV cache", bytes=int(req.batch * _kv_bytes(spec, req.kv_dtype, req.seq)),
                      formula=formula,
                      note=f"{spec.attention_type}: {spec.heads} query heads share {spec.kv_heads} KV heads")


def workspace_term(spec: ModelSpec, req: MemoryRequest) -> MemoryTerm:
    """Transient bytes of the prefill: the largest set of live tensors inside one layer for the
    prompt chunk, plus fp32 logits for the last position (HF generate keeps only those)."""
    a = activation_bytes(req.precision)
    h, i = spec.hidden, spec.intermediate
    chunk = min(req.seq, req.prefill_chunk or req.seq)
    attn = 4 * h + a * (h + spec.q_dim + 2 * spec.kv_dim + spec.q_dim)
    mlp = 4 * h + a * h + 3 * a * i * max(1, spec.experts_per_token)
    per_tok = 2 * a * h + max(attn, mlp)
    scores = spec.heads * chunk * req.seq * (4 + 2 * a) if req.attention == "eager" else 0
    logits = spec.vocab * (a + 4) if spec.kind != "encoder" else 0
    b = req.batch * (chunk * per_tok + scores + logits)
    formula = f"{req.batch} × ({chunk:,} prefill tokens × {count(per_tok)} B"
    formula += f" + eager scores {count(scores)} B" if scores else ""
    formula += f" + last-token logits {count(logits)} B)"
    return MemoryTerm(name="activation workspace", bytes=int(b), formula=formula)


def estimate_inference(spec: ModelSpec, req: MemoryRequest, resolved: ResolvedModel,
                       layout: LinearLayout | None = None) -> list[MemoryTerm]:
    if resolved.gguf_file_bytes and req.weights is None:
        weights = MemoryTerm(name="weights", bytes=resolved.gguf_file_bytes, provenance="measured",
                             formula=f"size of {resolved.source}", note="GGUF file bytes (tensors + metadata)")
    else:
        weights = weight_term(spec, req, resolved, layout)
    terms = [weights]
    kv = kv_cache_term(spec, req)
    if kv:
        terms.append(kv)
    terms.append(workspace_term(spec, req))
    fmt = req.weights or ""
    if fmt in ("nf4", "fp4", "int8"):
        groups = inventory(spec)
        terms.append(dequantised_weight_term(apply_layout(groups, layout) if layout is not None else groups))
    if req.gpus > 1 and req.sharding != "ddp":
        for t in terms:
            if t.name == "weights":
                t.bytes = t.bytes // req.gpus
                t.formula += f" / {req.gpus} GPUs (even tensor-parallel split)"
            elif t.name == "KV cache":
                # Tensor parallelism splits K/V by head: never more ways than there are KV heads.
                ways = kv_shards(spec, req.gpus)
                t.bytes = t.bytes // ways
                t.formula += f" / {ways} (KV heads split over {req.gpus} GPUs)"
    return terms
