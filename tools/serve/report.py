"""The planner's bounds for one layout: latency at the planned batch, targets with their levers, the
throughput-vs-concurrency table and the concurrency × context frontier."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from qkv.tools.arch import ModelSpec
from qkv.tools.catalog.gpus import GIB, GpuSpec
from qkv.tools.serve import formats, roofline
from qkv.tools.serve.schema import FrontierPoint, KvPool, Latency, ServingRequest, TargetCheck, ThroughputRow

if TYPE_CHECKING:
    from qkv.tools.serve.memory import Layout

# Speculative decoding: Leviathan et al. 2023 (ICML) report 2–3× on T5-XXL; Chen et al. 2023 (DeepMind)
# 2–2.5× on Chinchilla 70B. Both depend on the draft's acceptance rate on the task.
SPECULATIVE = ("speculative decoding (Leviathan et al. 2023: 2–3×; Chen et al. 2023: 2–2.5× on a 70B) when the "
               "draft's acceptance is high")


def _step(spec: ModelSpec, gpu: GpuSpec, lay: Layout, batch: int, context: int, active: int,
          weights_total: int | None = None, tp: int | None = None, kv_token_bytes: int | None = None):
    tp = tp or lay.tp
    w = (weights_total or lay.weights_total) // tp
    kv = (kv_token_bytes or lay.token_bytes) * lay.pp
    # The pipeline stages run one after another for one token: the KV of every stage is read per step.
    return roofline.decode_step(spec, gpu, weights_gpu=w, kv_token_bytes=kv, batch=batch,
                                context=context, tp=tp, active_params=active,
                                peak_tflops=formats.compute_tflops(gpu, lay.weights))


def latency_and_targets(spec: ModelSpec, gpu: GpuSpec, lay: Layout, req: ServingRequest, load, active: int,
                        per_replica: int, *, levers: bool = False, resolved=None, profile=None,
                        notes: list[str] | None = None) -> tuple[Latency | None, list[TargetCheck]]:
    """Roofline latency at `per_replica` requests (each holding its full context: the end of generation,
    the slowest step) and the stated targets. Latency is None when there is no decode loop or the GPU's
    bandwidth or peak FLOP/s is unknown; each target is checked against the bound that can be computed
    (TPOT needs the bandwidth, TTFT the peak), and one that cannot is left out of the checks and said in
    `notes`: it is never counted as met."""
    if spec.kind == "encoder":
        why = "an encoder-only model has no decode loop, so no latency bound is computed"
        _unchecked(req, [], {"tpot_ms": why, "ttft_ms": why}, notes)
        return None, []
    batch = per_replica * load.seqs
    step = _step(spec, gpu, lay, batch, load.context, active)
    peak = formats.compute_tflops(gpu, lay.weights)
    pre = roofline.ttft_seconds(spec, gpu, active_params=active, prompt=load.prompt, tp=lay.tp,
                                weights_gpu=lay.weights_total // lay.tp, peak_tflops=peak)
    lat = None
    if step is not None and pre is not None:
        ttft, flops, share = pre
        lat = Latency(
            tpot_ms=round(step.seconds * 1e3, 3), ttft_ms=round(ttft * 1e3, 3), decode_bytes_per_step=step.bytes_read,
            allreduce_ms=round(step.allreduce_s * 1e3, 4), prefill_flops=flops, attention_flop_share=round(share, 4),
            tokens_per_s=round(req.concurrency * req.samples / step.seconds, 1),
            formulas={
                "tpot_ms": f"(weights/TP {lay.weights_total // lay.tp / GIB:.2f} GiB + {batch} seqs × "
                           f"{load.context:,} tokens × {lay.token_bytes * lay.pp:,} B) ÷ {gpu.bandwidth_gb_s:g} GB/s "
                           f"+ all-reduce {step.allreduce_s * 1e3:.3f} ms ({step.bound}-bound)",
                "ttft_ms": f"(2 × {active:,} active params × {load.prompt:,} + 2 × {spec.layers} layers × "
                           f"{load.prompt:,}² × {spec.q_dim}) ÷ ({lay.tp} × {peak:g} TFLOP/s) + all-reduce",
                "allreduce": f"2 × {spec.layers} layers × 2(TP−1)/TP × tokens × {spec.hidden} × 2 B ÷ "
                             f"({gpu.interconnect_gb_s or 0:g} GB/s ÷ 2 per direction, {gpu.interconnect or 'none'})",
            })
    targets: list[TargetCheck] = []
    if req.tpot_ms is not None and step is not None:
        bound = round(step.seconds * 1e3, 3)
        met = bound <= req.tpot_ms
        targets.append(TargetCheck(name="tpot_ms", target=req.tpot_ms, bound=bound, met=met,
                                   levers=[] if met or not levers else
                                   _tpot_levers(spec, gpu, lay, req, load, active, batch, resolved, profile)))
    if req.ttft_ms is not None and pre is not None:
        bound = round(pre[0] * 1e3, 3)
        met = bound <= req.ttft_ms
        targets.append(TargetCheck(name="ttft_ms", target=req.ttft_ms, bound=bound, met=met,
                                   levers=[] if met or not levers else
                                   _ttft_levers(spec, gpu, lay, req, load, active, profile)))
    _unchecked(req, targets, {"tpot_ms": "the GPU's memory bandwidth is unknown",
                              "ttft_ms": "the GPU's peak FLOP/s is unknown"}, notes)
    return lat, targets


def unchecked_targets(req: ServingRequest, targets: list[TargetCheck]) -> list[str]:
    """The stated targets with no check in `targets` (no bound could be computed for them)."""
    checked = {t.name for t in targets}
    return [n for n in ("tpot_ms", "ttft_ms") if getattr(req, n) is not None and n not in checked]


def _unchecked(req: ServingRequest, targets: list[TargetCheck], why: dict[str, str], notes: list[str] | None) -> None:
    if notes is not None:
        notes += [f"{n} target {getattr(req, n):g} ms not checked: {why[n]}; the plan does not claim it is met"
                  for n in unchecked_targets(req, targets)]


def _tp_levers(spec, lay, profile) -> list[int]:
    """Higher TP degrees to suggest: none for an engine without tensor parallelism."""
    if profile is not None and not profile.tensor_parallel:
        return []
    return [tp for tp in (2, 4, 8) if tp > lay.tp and spec.heads % tp == 0]


def _tpot_levers(spec, gpu, lay, req, load, active, batch, resolved, profile=None) -> list[str]:
    """Each lever re-evaluated with the roofline: more TP, smaller weights, a smaller model, speculation."""
    from qkv.tools.serve.memory import weights_bytes

    out = []
    for tp in _tp_levers(spec, lay, profile):
        s = _step(spec, gpu, lay, batch, load.context, active, tp=tp)
        if s:
            need = "" if tp * lay.pp <= req.gpus else f", needs {tp * lay.pp} GPUs"
            out.append(f"TP {tp}: {s.seconds * 1e3:.1f} ms per token{need}")
    for fmt in ("fp8", "awq-int4"):
        if fmt != lay.weights and resolved is not None and formats.refusal(fmt, req.engine, gpu) is None:
            total = weights_bytes(spec, fmt, resolved).bytes
            s = _step(spec, gpu, lay, batch, load.context, active, weights_total=total)
            if s:
                out.append(f"{fmt} weights: {s.seconds * 1e3:.1f} ms per token (check accuracy)")
    if lay.kv != "fp8" and formats.kv_refusal("fp8", req.engine, gpu) is None:
        from qkv.tools.serve.memory import token_bytes

        s = _step(spec, gpu, lay, batch, load.context, active,
                  kv_token_bytes=token_bytes(spec, "fp8", lay.tp, lay.pp))
        if s:
            out.append(f"fp8 KV cache: {s.seconds * 1e3:.1f} ms per token")
    if gpu.bandwidth_gb_s:
        kv_read = batch * load.context * lay.token_bytes * lay.pp
        budget = req.tpot_ms / 1e3 * gpu.bandwidth_gb_s * 1e9 - kv_read
        if budget > 0:
            out.append(f"a smaller model: weights ≤ {budget / GIB:.1f} GiB per GPU meet {req.tpot_ms:g} ms")
        else:
            out.append(f"fewer concurrent sequences: the KV read alone exceeds {req.tpot_ms:g} ms")
    out.append(SPECULATIVE)
    return out


def _ttft_levers(spec, gpu, lay, req, load, active, profile=None) -> list[str]:
    """More TP, FP8 W8A8 prefill where the engine serves FP8 on this GPU, a shorter or cached prompt."""
    out = []
    for tp in _tp_levers(spec, lay, profile):
        r = roofline.ttft_seconds(spec, gpu, active_params=active, prompt=load.prompt, tp=tp,
                                  weights_gpu=lay.weights_total // tp,
                                  peak_tflops=formats.compute_tflops(gpu, lay.weights))
        if r:
            out.append(f"TP {tp}: TTFT ≥ {r[0] * 1e3:.0f} ms")
    if (gpu.fp8 and lay.weights != "fp8" and gpu.fp8_dense_tflops
            and formats.refusal("fp8", req.engine, gpu) is None):
        out.append(f"FP8 W8A8 runs prefill at {gpu.fp8_dense_tflops:g} vs {formats.compute_tflops(gpu, lay.weights):g} "
                   "TFLOP/s")
    out.append("a shorter prompt or prefix caching of shared prompt parts")
    return out


def throughput_rows(spec: ModelSpec, gpu: GpuSpec, lay: Layout, req: ServingRequest, load, active: int,
                    pool: KvPool | None) -> list[ThroughputRow]:
    """Per-user time per token and aggregate tokens/s as concurrency grows (powers of two, the stated one
    and the largest that fits), each at full context."""
    if pool is None:
        return []
    top = max(req.concurrency, pool.max_concurrency, 1)
    points = sorted({c for c in (2**k for k in range(0, 16)) if c <= top} | {req.concurrency, pool.max_concurrency}
                    - {0})
    if len(points) > 14:  # keep the table readable: thin the powers of two, keep the stated and the max
        keep = {req.concurrency, pool.max_concurrency, points[0]}
        points = sorted(keep | set(points[:: math.ceil(len(points) / 12)]))
    rows = []
    for c in points:
        batch = math.ceil(c / lay.replicas) * load.seqs
        s = _step(spec, gpu, lay, batch, load.context, active)
        if s is None:
            return []
        rows.append(ThroughputRow(concurrency=c, tpot_ms=round(s.seconds * 1e3, 3),
                                  tokens_per_s=round(c * req.samples / s.seconds, 1),
                                  fits=c <= pool.max_concurrency, bound=s.bound))  # type: ignore[arg-type]
    return rows


def frontier_points(spec: ModelSpec, lay: Layout, req: ServingRequest, load, pool: KvPool) -> list[FrontierPoint]:
    """The largest concurrency that fits at each context length (powers of two up to the window)."""
    window = spec.max_positions or max(req.context * 4, 8192)
    ctxs = sorted({2**k for k in range(10, 22) if 2**k <= window} | {req.context})
    out = []
    for ctx in ctxs:
        if ctx <= load.output:
            continue
        per = load.blocks(pool.block_size, ctx)
        out.append(FrontierPoint(context=ctx, max_concurrency=lay.replicas * ((pool.blocks or pool.tokens) // per)
                                 if per else 0))
    return out


def plan_figures(plan: dict) -> dict[str, float | None]:
    """The figures a design report quotes from a serving plan in its JSON form (`ServingPlan.model_dump`):
    weights, the KV the load holds and the per-GPU total in GiB, decode tokens/s, time to first token in s."""
    items = {m["name"]: m for m in plan["per_gpu"]}
    kv = plan.get("kv") or {}
    lat = plan.get("latency") or {}
    return {"weights_gib": items["weights"]["gib"],
            "kv_cache_gib": round(kv.get("tokens_needed", 0) * kv.get("bytes_per_token", 0) / GIB, 3),
            "peak_vram_gib": round(sum(m["gib"] for m in plan["per_gpu"]), 3),
            "decode_tok_s_upper": lat.get("tokens_per_s"),
            "prefill_s_lower": round(lat["ttft_ms"] / 1e3, 4) if lat.get("ttft_ms") is not None else None}
