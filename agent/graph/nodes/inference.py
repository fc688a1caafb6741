"""Step 5, inference: weights format (highest precision that fits with the margin, and meets a latency
target when one is given), KV cache, attention kernel, sampling bounds (hard rule 3), and roofline
latency/throughput bounds."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.nodes.common import Calls, task_of, unavailable
from qkv.agent.graph.nodes.efficiency import _estimate, attention_for, family_of
from qkv.tools.memory.schema import to_gib

CUDA_FORMATS = ("bf16", "int8", "nf4")
APPLE_FORMATS = ("Q8_0", "Q4_K_M")
# Report task label → the sampling tool's preset name (labels not listed use the preset of the same name).
SAMPLING_TASK = {"ner": "extraction", "retrieval": "extraction", "generation": "creative",
                 "language-modelling": "creative"}
NOT_DECODING = "not applicable: an encoder-only model emits labels or spans, with no decoding to bound"


def _formats(task, gpu) -> tuple[str, ...]:
    """Weight formats to try, best first: the stated one first; fp16 where the GPU has no bf16 arithmetic."""
    from qkv.tools.serve.formats import has_bf16

    formats = APPLE_FORMATS if gpu.unified_memory else CUDA_FORMATS
    if not gpu.unified_memory and not has_bf16(gpu):  # Turing/Volta compute in fp16: no bf16 arithmetic
        formats = ("fp16", *formats[1:])
    if task.weights:  # the user's format is evaluated first, whatever the default list holds
        formats = (task.weights, *(f for f in formats if f != task.weights))
    return formats


def _search(task, arch, gpu, formats, layouts, context: int, sequences: int, attention: str,
            calls: Calls) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(the first layout × format that fits with the margin and meets the stated targets, or None; every row
    tried). `sequences` = concurrency × beams: each holds its own KV cache."""
    from qkv.tools.memory.schema import MemoryRequest
    from qkv.tools.serve.roofline import meets_speed_targets

    concurrency = task.concurrency or 1
    ext = {"rope_scaling": "yarn", "sliding_window": "sliding"}.get(arch["context_action"])
    tried: list[dict[str, Any]] = []
    for n in layouts:
        for fmt in formats:
            req = MemoryRequest(model=arch["base_model"] if not arch.get("config") else "inline",
                                method="inference", weights=fmt, seq=context, batch=sequences, gpu=task.gpu,
                                gpus=n, sharding="fsdp" if n > 1 else "none", attention=attention,
                                context_extension=ext, cuda_context_gib=0.0 if gpu.gpu_class == "cpu" else 0.5)
            row = _try(arch, req, gpu, gpu.usable_bytes, concurrency, n, calls)
            tried.append(row)
            # Without a bandwidth figure (a GPU known only by its memory) a speed target cannot be checked.
            targets_ok = meets_speed_targets(row["decode_tok_s_upper"], concurrency, task.latency_ms,
                                             task.throughput_tok_s, gpu.bandwidth_gb_s is not None)
            if row["fits"] and not row["tight"] and targets_ok:
                return row, tried
    return None, tried


def _words(task, field: str) -> str:
    return next((s.text for s in task.stated if s.field == field), field)


def _sampling(task, obj: dict[str, Any], calls: Calls) -> tuple[dict, str, list, dict, list]:
    """(recommended policy, description, issues of the user's stated policy, provenance, notes)."""
    from qkv.tools.errors import UnknownName
    from qkv.tools.knowledge.sampling_rules import check_sampling, recommend_sampling
    from qkv.tools.sampling import SamplingPolicy

    name = SAMPLING_TASK.get(obj["task"], obj["task"])
    notes: list[str] = []
    provenance: dict[str, str] = {}
    try:
        rec = calls("knowledge.recommend_sampling", recommend_sampling, name)
    except UnknownName:
        name = "chat"
        rec = calls("knowledge.recommend_sampling", recommend_sampling, name)
    policy = rec.policy
    notes += list(rec.notes)
    for field, fig in rec.settings.items():
        provenance[f"sampling.{field}"] = f"{fig.provenance}: " + ", ".join(fig.sources or [fig.formula or ""])
    issues: list[dict[str, Any]] = []
    if task.sampling:
        stated = SamplingPolicy(**{**SamplingPolicy().model_dump(), **task.sampling})
        check = calls("knowledge.check_sampling", check_sampling, stated, name)
        issues = [i.model_dump() for i in check.issues]
        provenance["sampling_issues"] = "rule: hard rule 3 (qkv.tools.sampling / knowledge.check_sampling)"
    sampling = {"temperature": policy.temperature, "top_p": policy.top_p, "top_k": policy.top_k,
                "max_new_tokens": policy.max_new_tokens, "repetition_penalty": policy.repetition_penalty,
                "num_beams": policy.num_beams, "length_penalty": policy.length_penalty, "preset": name}
    return sampling, policy.describe(), issues, provenance, notes


def inference_node(state: dict[str, Any]) -> dict[str, Any]:
    """Step 5: the weight format and GPU layout that hold the load with the margin and meet the stated
    targets, the bounded decoding plan (hard rule 3), and the serving engine's plan."""
    from qkv.tools.catalog.gpus import get_gpu
    from qkv.tools.serve.roofline import kv_sequences

    task = task_of(state)
    arch, obj = state["architecture"], state["objective"]
    calls = Calls()
    gpu = get_gpu(task.gpu)
    gpus = task.gpus or 1
    concurrency = task.concurrency or 1
    context = arch["train_seq"] if arch["context_action"] != "chunking" else arch["context_window"]
    formats = _formats(task, gpu)
    attention = attention_for(task.gpu, family_of(arch))
    # One GPU first (no interconnect traffic); the user's other GPUs only when one cannot hold the model.
    layouts = [1] + ([gpus] if gpus > 1 else [])
    if task.mode == "inference" and gpus > 1 and any(x.field == "gpus" for x in task.stated):
        layouts = [gpus]  # serving on the GPUs the user named: tensor-parallel over all of them
    sampling, described, issues, s_prov, notes = _sampling(task, obj, calls)
    # Each beam is a sequence with its own KV cache: the cache holds concurrency × beams sequences.
    stated = task.sampling or {}
    greedy = stated.get("temperature") == 0 and "num_beams" not in stated  # the user's greedy is one beam
    beams = 1 if obj["architecture"] == "encoder-only" or greedy else int(
        stated.get("num_beams") or sampling.get("num_beams") or 1)
    chosen, tried = _search(task, arch, gpu, formats, layouts, context, kv_sequences(concurrency, beams), attention,
                            calls)
    settled = chosen is not None
    chosen = chosen or tried[-1]
    est = chosen["est"]
    departs: list[str] = []
    if task.weights and chosen["name"] != task.weights:
        departs.append(f"weights: stated {task.weights}, planned {chosen['name']} ({task.weights} "
                       + ("does not fit with the margin" if not tried[0]["fits"] or tried[0]["tight"] else
                          "misses a stated target") + ")")
    sampling, described, issues, s_prov, chosen = _decoding(task, obj, chosen, sampling, described, issues, s_prov,
                                                            departs)
    prefill, prefill_src = _prefill(arch, gpu, context, chosen["gpus"], calls)
    kernel = "flash_attention_2" if attention == "flash" else "sdpa"
    would: list[str] = []
    if not settled:
        notes.append("no weight format meets " + ("the memory budget" if not chosen["fits"] else "the targets") +
                     f" on {gpus} × {gpu.display_name}; the smallest is shown")
        would = _inference_would_fit(arch, est.request, gpu, calls)
    if arch["context_action"] == "chunking":
        notes.append(f"inputs are chunked to the {arch['context_window']:,}-token window")
    inf = {
        "quantization": chosen["name"], "gpus": chosen["gpus"], "what_would_fit": would,
        "weights_gib": chosen["weights_gib"], "kv_cache_gib": chosen["kv_cache_gib"],
        "kv_dtype": est.request.kv_dtype, "peak_vram_gib": est.total_gib, "fits": settled,
        "context_tokens": context, "concurrency": concurrency, "attention_kernel": kernel,
        "sampling": sampling, "sampling_policy": described, "sampling_issues": issues, "departures": departs,
        "decode_tok_s_upper": chosen["decode_tok_s_upper"],
        "prefill_s_lower": round(prefill, 4) if prefill else None, "beams": beams,
        "alternatives": [{"name": r["label"], "total_gib": r["total_gib"], "fits": r["fits"], "tight": r["tight"],
                          "changes": {"weights": r["name"], "gpus": r["gpus"]}} for r in tried],
        "notes": [
            *notes,
            f"attention kernel: {kernel} on {gpu.architecture}" + (
                "" if kernel == "flash_attention_2" else " (FlashAttention-2 needs an Ampere-or-newer NVIDIA GPU); "
                "PyTorch SDPA picks its memory-efficient kernel"),
            "on a CPU (this machine) transformers runs attn_implementation='sdpa'"],
        "breakdown": [{"name": t.name, "gib": t.gib, "formula": t.formula} for t in [*est.terms, *est.overhead]],
        "provenance": {
            "weights_gib": "analytic: qkv.tools.memory inference estimate",
            "kv_cache_gib": "analytic: qkv.tools.memory (2 × layers × kv_heads × head_dim × tokens × bytes)",
            "peak_vram_gib": "analytic: qkv.tools.memory inference estimate",
            "decode_tok_s_upper": _decode_source(gpu, obj["architecture"]),
            "prefill_s_lower": prefill_src,
            **s_prov,
            "attention_kernel": "cited: flash-attn README (Ampere/Ada/Hopper); PyTorch SDPA otherwise",
        },
    }
    _with_serving(inf, _serving(task, arch, obj, gpu, context, sampling, calls, inf["notes"]), settled)
    return {"inference": inf, "unavailable": unavailable(state), "calls": calls.items}


def _decoding(task, obj, chosen: dict[str, Any], sampling: dict[str, Any], described: str,
              issues: list[dict[str, Any]], s_prov: dict[str, str], departs: list[str]):
    """The decoding plan: none for an encoder; the user's bounded decoding over the task's preset; or the
    preset with the departure named when the stated decoding is unbounded (hard rule 3).
    Returns (sampling, described, issues, provenance, chosen row)."""
    if obj["architecture"] == "encoder-only":
        sampling, described, issues = {}, NOT_DECODING, []
        chosen = {**chosen, "decode_tok_s_upper": None}  # one forward pass per input: no decode loop to bound
        s_prov = {"sampling": "rule: an encoder-only model emits labels or spans; there is no decoding to bound"}
    elif task.sampling:
        if any(i["level"] == "fail" for i in issues):
            departs.append(f"decoding: stated {task.sampling} is unbounded (hard rule 3); planned {described}")
        else:  # the user's bounded decoding is the plan; the preset fills what they left open
            from qkv.tools.sampling import SamplingPolicy

            keep = {k: v for k, v in task.sampling.items() if k in SamplingPolicy.model_fields}
            if keep.get("temperature") == 0 and "num_beams" not in keep:
                keep["num_beams"] = 1  # greedy decoding is one beam, whatever the task's preset searches
            policy = SamplingPolicy(**{**{k: v for k, v in sampling.items() if k in SamplingPolicy.model_fields},
                                       **keep})
            sampling = {**sampling, **keep, "preset": f"stated (over the {sampling.get('preset')} preset)"}
            described = policy.describe()
            s_prov = {**s_prov, **{f"sampling.{k}": f"stated: '{_words(task, 'sampling')}'" for k in keep}}
    return sampling, described, issues, s_prov, chosen


def _with_serving(inf: dict[str, Any], serving: dict[str, Any] | None, settled: bool) -> None:
    """Attach the serving engine's plan; it becomes the plan of record when only it holds the load."""
    inf["serving"] = serving
    # The engine's plan replaces the transformers rows only when it holds the load AND meets every stated
    # target: a plan that fits memory at 14.6 ms/token does not meet "0.1 ms per token".
    targets_met = bool(serving) and all(t.get("met", True) for t in serving.get("targets") or [])
    if serving and not settled and serving["fits"] and targets_met and serving["weights"] in ("bf16", "fp16", "fp8"):
        _engine_plan_of_record(inf, serving)
    elif serving and serving["fits"] and inf["quantization"] in ("int8", "nf4"):
        inf["notes"].append(f"bitsandbytes {inf['quantization']} is how transformers loads it here, not a serving "
                            f"format: served with {serving['engine']}, {serving['weights']} weights hold the load "
                            "(the serving plan above)")


def _serving(task, arch, obj, gpu, context: int, sampling: dict[str, Any], calls: Calls,
             notes: list[str]) -> dict[str, Any] | None:
    """The serving engine's plan (qkv.tools.serve): vLLM's paged pool and chunked prefill on CUDA GPUs,
    llama.cpp on Apple silicon and CPUs; None (said in notes) for a model known only by its shapes."""
    from pydantic import ValidationError

    from qkv.tools.errors import QkvError
    from qkv.tools.serve import ServingRequest, plan_serving
    from qkv.tools.serve.roofline import output_tokens

    if arch.get("config"):
        notes.append("serving plan: not computed for an architecture sized from scratch (no checkpoint to serve)")
        return None
    engine = "llama.cpp" if gpu.unified_memory or gpu.gpu_class == "cpu" else "vllm"
    encoder = obj["architecture"] == "encoder-only"
    output = 1 if encoder else output_tokens(sampling.get("max_new_tokens"), context)
    try:
        plan = calls("serve.plan_serving", plan_serving, ServingRequest(
            model=arch["base_model"], gpu=task.gpu, gpus=task.gpus or 1, concurrency=task.concurrency or 1,
            context=max(context, output + 1), output_tokens=output, engine=engine,
            beams=1 if encoder else int(sampling.get("num_beams") or 1), tpot_ms=task.latency_ms))
    except QkvError as err:
        notes.append(f"serving plan: not computed ({err})")
        return None
    except ValidationError as err:  # a stated load beyond what the planner takes (e.g. > 1,024 GPUs)
        from qkv.tools.errors import validation_summary

        notes.append(f"serving plan: not computed ({validation_summary(err)})")
        return None
    return plan.model_dump(mode="json", exclude={"request", "sources"})


def _engine_plan_of_record(inf: dict[str, Any], sv: dict[str, Any]) -> None:
    """When only a serving engine holds the load (its chunked prefill bounds the workspace and its paged
    pool holds the KV), its plan is the plan; the transformers rows stay as the alternatives tried."""
    from qkv.tools.serve.report import plan_figures

    fig = plan_figures(sv)
    inf.update({
        "quantization": sv["weights"], "gpus": sv["gpus_used"], "weights_gib": fig["weights_gib"],
        "kv_cache_gib": fig["kv_cache_gib"], "kv_dtype": sv["kv_dtype"], "peak_vram_gib": fig["peak_vram_gib"],
        "fits": True, "what_would_fit": [], "decode_tok_s_upper": fig["decode_tok_s_upper"],
        "prefill_s_lower": fig["prefill_s_lower"],
        "breakdown": [{"name": m["name"], "gib": m["gib"], "formula": m["formula"]} for m in sv["per_gpu"]],
    })
    inf["notes"] = [n for n in inf["notes"] if not n.startswith("no weight format meets")] + [
        f"planned with the {sv['engine']} profile: chunked prefill bounds the workspace to "
        f"{sv['prefill_tokens_per_step']:,} tokens per step and the paged KV pool holds the load; transformers "
        "generate (every prompt prefilled at once) does not fit — its rows are the alternatives"]
    inf["provenance"].update({
        "weights_gib": "analytic: qkv.tools.serve (weights from qkv.tools.memory.infer) per GPU",
        "kv_cache_gib": "analytic: qkv.tools.serve KV held by the load per GPU (paged blocks)",
        "peak_vram_gib": "analytic: qkv.tools.serve per-GPU sum (weights, KV pool, workspace, overheads)",
        "decode_tok_s_upper": "analytic: qkv.tools.serve roofline (bytes per step ÷ bandwidth + TP all-reduce)",
        "prefill_s_lower": "analytic: qkv.tools.serve roofline TTFT (matmul + attention FLOPs ÷ TP × peak)"})


def _prefill(arch, gpu, context: int, gpus: int, calls: Calls) -> tuple[float | None, str]:
    """The prompt's FLOPs (matmuls and causal attention, qkv.tools.serve.roofline) at the GPU's dense 16-bit
    peak. transformers splits layers over GPUs (device_map), which run one after another: one GPU's FLOP/s."""
    from qkv.agent.graph.nodes.efficiency import _resolved
    from qkv.tools.arch import spec_from_config
    from qkv.tools.serve.roofline import prefill_lower_s

    peak = gpu.bf16_dense_tflops or gpu.fp16_dense_tflops
    if not peak:
        return None, "not computed: the GPU's dense 16-bit FLOP/s is not known"
    spec = spec_from_config(_resolved(arch).config)
    seconds, flops, attn = calls("serve.prefill_lower_s", prefill_lower_s, spec, gpu, arch["active_params"], context)
    dtype = "bf16" if gpu.bf16_dense_tflops else "fp16"
    return seconds, (
        f"analytic: (2 × active params × {context:,} + 2 × layers × {context:,}² × q_dim) FLOPs "
        f"(attention {attn / flops:.0%}) ÷ {peak:g} dense {dtype} TFLOP/s of one GPU (GPU catalog; the "
        f"{gpus} GPU(s) of a layer split run in turn); a lower bound at 100% utilisation")


def _decode_source(gpu, family: str) -> str:
    """Where the decode bound comes from, or why there is none."""
    if family == "encoder-only":
        return "not applicable: an encoder-only model does not decode"
    if not gpu.bandwidth_gb_s:
        return "not computed: the GPU's bandwidth is unknown (only its memory was stated)"
    return (f"analytic: roofline, {gpu.bandwidth_gb_s:g} GB/s (GPU catalog) ÷ bytes read per step (weights + KV "
            "cache) × concurrent sequences; an upper bound")


def _try(arch, req, gpu, usable: int, concurrency: int, n: int, calls: Calls) -> dict[str, Any]:
    """One weights format on n GPUs: totals, fit, and the decode roofline."""
    from qkv.tools.memory.verdict import fit_state
    from qkv.tools.serve.roofline import decode_upper_tok_s

    est = _estimate(arch, req, calls)
    fits, tight = fit_state(est.total_bytes, usable)
    decode = calls("serve.decode_upper_tok_s", decode_upper_tok_s, gpu.bandwidth_gb_s, est.decode_read_bytes,
                   concurrency)
    return {"name": req.weights, "label": req.weights + (f" over {n} GPUs" if n > 1 else ""), "gpus": n,
            "total_gib": est.total_gib, "fits": fits, "tight": tight,
            "weights_gib": to_gib(est.term_bytes("weights")), "kv_cache_gib": to_gib(est.term_bytes("KV cache")),
            "decode_tok_s_upper": round(decode, 1) if decode else None, "est": est}


def _inference_would_fit(arch, req, gpu, calls: Calls) -> list[str]:
    """When no format fits: the most concurrent sequences and the longest context that do (memory tool's
    searches), and the smallest catalog GPU that holds the request as asked."""
    from qkv.tools.memory.verdict import fit_report, smallest_gpu_holding

    out: list[str] = []
    if not arch.get("config"):
        rep = calls("memory.fit_report", fit_report, req)
        if rep.max_batch:
            out.append(f"{rep.max_batch} concurrent sequences of {req.seq:,} tokens fit with {req.weights} weights")
        if rep.max_seq and rep.max_seq < req.seq:
            out.append(f"{req.batch} sequences fit up to {rep.max_seq:,} tokens each with {req.weights} weights")
    total = _estimate(arch, req.model_copy(update={"gpus": 1, "sharding": "none"}), calls).total_bytes
    g = smallest_gpu_holding(total)
    if g is not None:
        out.append(f"one {g.display_name} ({g.memory_gib:g} GB) holds {to_gib(total)} GiB with {req.weights} weights")
    return out
