"""The serving planner: the smallest tensor-parallel layout and the highest-precision formats that hold the
stated load, with each GPU's memory and the roofline bounds checked against the stated targets."""

from __future__ import annotations

import math

from qkv.tools.arch import ModelSpec, spec_from_config
from qkv.tools.catalog.gpus import GpuSpec, get_gpu
from qkv.tools.errors import BadInput, ContextExceeded
from qkv.tools.serve import formats
from qkv.tools.serve.engines import PROFILES, EngineProfile, prefill_bound
from qkv.tools.serve.memory import Layout, contiguous_layout, kv_blocks, paged_layout
from qkv.tools.serve.report import frontier_points, latency_and_targets, throughput_rows, unchecked_targets
from qkv.tools.serve.schema import KvPool, Option, ServingPlan, ServingRequest

NODE_GPUS = 8  # GPUs one NVLink/NVSwitch domain holds (HGX/DGX boards): tensor parallelism stays inside it


class _Load:
    """The stated load in tokens: prompt, output, sequences per request, tokens held per request."""

    def __init__(self, req: ServingRequest, profile: EngineProfile) -> None:
        self.prompt = req.prompt_tokens or req.context - req.output_tokens
        self.output = req.output_tokens
        self.seqs = max(req.beams, req.samples)
        self.shares_prompt = profile.shares_prompt
        # Paged engines share the prompt's blocks between a request's beams/samples (copy-on-write,
        # Kwon et al. 2023 §4.4); a contiguous cache copies the prompt per sequence.
        self.held = (self.prompt + self.seqs * self.output if profile.shares_prompt
                     else self.seqs * (self.prompt + self.output))
        self.context = self.prompt + self.output

    def blocks(self, block: int, context: int | None = None) -> int:
        """Pool blocks (cache cells for a contiguous cache, block 1) one request takes at `context` tokens:
        the prompt's blocks once and one output tail per sequence when the engine shares the prompt, else
        every sequence's whole context (as `held` counts)."""
        ctx = context or self.context
        if not self.shares_prompt:
            return self.seqs * math.ceil(ctx / block)
        out = min(self.output, ctx)
        return math.ceil((ctx - out) / block) + self.seqs * math.ceil(out / block)


def _tp_degrees(spec: ModelSpec, limit: int) -> list[int]:
    """Tensor-parallel degrees up to `limit` that split the model evenly: the degree divides the attention
    heads, and divides the KV heads or is a multiple of them (KV heads replicated, as vLLM does)."""
    kv = max(1, spec.kv_heads)
    return [t for t in range(1, limit + 1) if spec.heads % t == 0 and (kv % t == 0 or t % kv == 0)]


def _check(req: ServingRequest, spec: ModelSpec, name: str, profile: EngineProfile) -> None:
    if req.prompt_tokens is None and req.output_tokens >= req.context:
        raise BadInput(f"--output-tokens {req.output_tokens} is not less than --context {req.context}",
                       expected="a context that holds the prompt and the output tokens")
    if req.prompt_tokens is not None and req.prompt_tokens + req.output_tokens > req.context:
        raise BadInput(f"prompt {req.prompt_tokens} + output {req.output_tokens} tokens exceed --context "
                       f"{req.context}", expected="prompt + output ≤ context")
    tp = req.tensor_parallel or 1
    if tp > 1 and not profile.tensor_parallel:
        # Refused, not noted: planning TP 1 instead would report a deployment other than the one stated.
        raise BadInput(f"--tensor-parallel {tp} with --engine {req.engine}: the {req.engine} profile has no "
                       "tensor parallelism (it splits layers over GPUs)",
                       expected="--tensor-parallel 1 (or none), or an engine with tensor parallelism",
                       choices=[e for e, p in PROFILES.items() if p.tensor_parallel])
    if tp > req.gpus:
        raise BadInput(f"--tensor-parallel {tp} on {req.gpus} GPU(s)", expected=f"a degree ≤ --gpus ({req.gpus})")
    valid = _tp_degrees(spec, req.gpus)
    if tp not in valid:
        raise BadInput(f"--tensor-parallel {tp} does not split {name}'s {spec.heads} attention heads "
                       f"({spec.kv_heads} KV heads) evenly",
                       expected=f"a degree that divides the heads: {', '.join(map(str, valid))}")
    window = spec.max_positions
    if window and req.context > window:
        raise ContextExceeded(f"--context {req.context:,} exceeds {name}'s {window:,}-token window",
                              expected=f"--context ≤ {window:,}")


def _parallel_layouts(req: ServingRequest, spec: ModelSpec, profile: EngineProfile) -> list[tuple[int, int]]:
    """(tp, pp) pairs, fewest GPUs first. TP divides the heads and stays in one node; pipeline stages
    span nodes when one node is not enough (Megatron-LM's TP-in-node, PP-across-nodes rule)."""
    if not profile.tensor_parallel:
        return [(1, 1)] + ([(1, req.gpus)] if req.gpus > 1 else [])
    if req.tensor_parallel:
        return [(req.tensor_parallel, 1)]
    tps = [t for t in _tp_degrees(spec, min(req.gpus, NODE_GPUS)) if t in (1, 2, 4, 8)]
    out = [(t, 1) for t in tps]
    top = tps[-1] if tps else 1
    out += [(top, p) for p in range(2, req.gpus // top + 1) if p <= spec.layers]
    return out


def _formats(req: ServingRequest, gpu: GpuSpec, notes: list[str]) -> tuple[list[str], list[str]]:
    """The weight and KV formats to try (the stated ones first), with refusals said in notes."""
    weights = formats.weight_candidates(req.engine, gpu)
    kvs = formats.kv_candidates(req.engine, gpu)
    for stated, pool, why in ((req.weights, weights, formats.refusal), (req.kv_dtype, kvs, formats.kv_refusal)):
        if stated:
            reason = why(stated, req.engine, gpu)
            if reason:
                notes.append(f"stated {stated} not planned: {reason}")
            else:
                pool[:] = [stated]
    weights = [w for w in weights if formats.refusal(w, req.engine, gpu) is None]
    kvs = [k for k in kvs if formats.kv_refusal(k, req.engine, gpu) is None]
    return weights, kvs


def _evaluate(lay: Layout, spec, resolved, gpu, profile, req, load: _Load) -> tuple[bool, int]:
    """(fits, requests per replica) for one layout."""
    per_replica = math.ceil(req.concurrency / lay.replicas)
    if profile.paged:
        paged_layout(lay, spec, resolved, gpu, profile, req.gpu_memory_utilization)
        blocks = kv_blocks(lay.pool_bytes, lay.token_bytes, req.block_size)
        need = per_replica * load.blocks(req.block_size) if spec.kind != "encoder" else 0
        return lay.pool_bytes > 0 and blocks >= need, per_replica
    seqs = per_replica * load.seqs
    contiguous_layout(lay, spec, resolved, gpu, profile, per_replica * load.held if spec.kind != "encoder" else 0,
                      seqs, load.prompt)
    return sum(i.bytes for i in lay.items) <= lay.usable, per_replica


def plan_serving(req: ServingRequest) -> ServingPlan:
    """Plan serving MODEL on GPUs for a load: tensor/pipeline parallelism, weight format, KV dtype, the
    tokens prefilled per step, each GPU's memory, the concurrency × context that fits, and roofline
    latency/throughput bounds checked against the stated TTFT/TPOT targets."""
    from qkv.tools.modelref import resolve_model
    from qkv.tools.params import count_params

    resolved = resolve_model(req.model, online=req.online)
    spec = spec_from_config(resolved.config)
    gpu = get_gpu(req.gpu)
    profile = PROFILES[req.engine]
    _check(req, spec, resolved.name, profile)
    if profile.paged and formats.generation(gpu) in ("apple", "cpu"):
        raise BadInput(f"{req.engine} needs a CUDA or ROCm GPU, not {gpu.display_name}",
                       expected="--engine llama.cpp (Metal/CPU) or transformers", choices=["llama.cpp", "transformers"])
    load = _Load(req, profile)
    notes: list[str] = []
    weights, kvs = _formats(req, gpu, notes)
    if req.engine == "llama.cpp" and resolved.gguf_file_bytes and not req.weights:
        weights = ["gguf-file"]
    if not weights or not kvs:
        raise BadInput(f"no weight/KV format the {req.engine} profile serves on {gpu.display_name}",
                       expected="another --engine or GPU", choices=list(PROFILES))
    prefill = prefill_bound(profile, gpu.memory_gib, req.max_num_batched_tokens) or load.prompt
    active = count_params(resolved).active
    tried: list[Option] = []
    chosen: tuple[Layout, int, bool] | None = None  # (layout, requests per replica, fits)
    first_fit: tuple[Layout, int, bool] | None = None
    last: tuple[Layout, int, bool] | None = None
    for fmt in weights:
        for kv in kvs if spec.kind != "encoder" else ["none"]:  # an encoder caches no K/V
            for tp, pp in _parallel_layouts(req, spec, profile):
                lay = Layout(tp=tp, pp=pp, replicas=max(1, req.gpus // (tp * pp)), weights=fmt, kv=kv,
                             prefill_tokens=prefill)
                fits, per_replica = _evaluate(lay, spec, resolved, gpu, profile, req, load)
                last = (lay, per_replica, fits)
                _, targets = latency_and_targets(spec, gpu, lay, req, load, active, per_replica)
                met = all(t.met for t in targets)
                # A target with no bound (GPU figures unknown) cannot tell layouts apart: it does not block
                # the choice, and no option claims to meet it.
                unchecked = unchecked_targets(req, targets)
                reason = (("fits" if fits else "the load does not fit") + ("" if met else "; misses a target")
                          + (f"; {', '.join(unchecked)} not checked" if unchecked else ""))
                tried.append(Option(label=lay.label, fits=fits, meets_targets=met and not unchecked, reason=reason))
                if fits and first_fit is None:
                    first_fit = last
                if fits and met:
                    chosen = last
                    break
            if chosen:
                break
        if chosen:
            break
    settled = chosen is not None
    lay, per_replica, fits = chosen or first_fit or last  # type: ignore[misc]
    if not settled:
        notes.append("no layout meets every target; the first that fits is shown" if first_fit
                     else "nothing tried holds the load; the last layout tried is shown")
    latency, targets = latency_and_targets(spec, gpu, lay, req, load, active, per_replica, levers=True,
                                           resolved=resolved, profile=profile, notes=notes)
    kv_pool = _kv_pool(lay, spec, req, load, profile, per_replica)
    if req.engine in ("vllm", "sglang") and lay.weights in ("bf16", "fp16") and gpu.fp8:
        # No published recovery figure is quoted: the ones there are measure particular model families.
        notes.append("FP8 weights (W8A8) would halve the weight bytes on this GPU; the accuracy FP8 keeps depends "
                     "on the model and the task, so measure it on the task first")
    return ServingPlan(
        request=req, model=resolved.name, engine=req.engine, gpu=gpu.name, gpu_display=gpu.display_name,
        tensor_parallel=lay.tp, pipeline_parallel=lay.pp, replicas=lay.replicas,
        gpus_used=lay.tp * lay.pp * lay.replicas, weights=lay.weights, kv_dtype=lay.kv,
        prefill_tokens_per_step=lay.prefill_tokens, sequences_per_request=load.seqs, per_gpu=lay.items,
        usable_bytes=lay.usable, kv=kv_pool, fits=fits, latency=latency,
        throughput=throughput_rows(spec, gpu, lay, req, load, active, kv_pool),
        frontier=frontier_points(spec, lay, req, load, kv_pool) if kv_pool else [], targets=targets,
        tried=tried, decoding=_decoding(spec, load, profile), notes=notes,
        sources=[profile.source, *formats.SOURCES.values()])


def _kv_pool(lay: Layout, spec: ModelSpec, req: ServingRequest, load: _Load, profile: EngineProfile,
             per_replica: int) -> KvPool | None:
    if spec.kind == "encoder" or not lay.token_bytes:
        return None
    block = req.block_size if profile.paged else 1
    blocks = kv_blocks(lay.pool_bytes, lay.token_bytes, block)
    per_request = load.blocks(block)
    max_conc = lay.replicas * (blocks // per_request)
    per_req_blocks = blocks // max(1, per_replica)
    max_ctx = per_req_blocks * block // load.seqs if load.seqs > 1 else per_req_blocks * block
    return KvPool(bytes_per_token=lay.token_bytes, pool_bytes=lay.pool_bytes, blocks=blocks if profile.paged else 0,
                  block_size=block, tokens=blocks * block, tokens_needed=per_replica * per_request * block,
                  max_concurrency=max_conc, max_context=min(max_ctx, spec.max_positions or max_ctx))


def _decoding(spec: ModelSpec, load: _Load, profile: EngineProfile) -> str:
    if spec.kind == "encoder":
        return ("not applicable: an encoder-only model emits labels or spans in one forward pass per input; "
                "no KV cache, no decode loop")
    share = "prompt blocks shared" if profile.shares_prompt else "prompt copied per sequence"
    return (f"{load.seqs} sequence(s) per request; each request holds {load.held:,} tokens of KV "
            f"(prompt {load.prompt:,} + {load.seqs} × {load.output:,} output; {share})")


def fewest_gpus(req: ServingRequest, counts: tuple[int, ...] = (1, 2, 4, 8, 16, 32)) -> ServingPlan | None:
    """The plan on the fewest GPUs (from `counts`, the usual node and TP sizes) that holds the load and meets
    every stated target it can check; None when even the largest count does not. For "on H100s" with no count.

    A stated target with no bound (a GPU known only by its memory has no bandwidth or peak figure) cannot be
    checked at any count: it neither rules a count out nor counts as met. The count is then chosen by memory
    alone, the plan has no check for that target, and its notes say so."""
    for n in counts:
        plan = plan_serving(req.model_copy(update={"gpus": n}))
        if plan.fits and all(t.met for t in plan.targets):
            unchecked = unchecked_targets(req, plan.targets)
            if unchecked:
                plan.notes.append(f"fewest_gpus: {n} GPU(s) chosen by memory alone; {' and '.join(unchecked)} "
                                  "could not be checked, so this count is not known to meet them")
            return plan
    return None
