"""Step 3, efficiency: walk the memory tool's strategy ladder in cost order (full → LoRA → QLoRA →
+ checkpointing → micro-batch 1 → sharding) one rung per visit until a rung fits with the safety
margin; when none fits on the user's hardware, say what would (more GPUs, a bigger GPU, a smaller model).

Hyperparameters come from the knowledge tool for the chosen size and method (hard rule 2)."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.nodes.common import Calls, task_of, unavailable
from qkv.agent.graph.nodes.efficiency_alternatives import weigh, what_would_fit
from qkv.tools.memory.schema import to_gib

# Ampere and later run FlashAttention-2 (Dao 2023; flash-attn README: Ampere, Ada, Hopper GPUs).
FLASH_ARCHS = ("Ampere", "Ada", "Hopper", "Blackwell")


def attention_for(gpu_name: str, family: str = "llama") -> str:
    """'flash' where FlashAttention-2 runs (Ampere or newer NVIDIA, and a model family transformers has a
    FlashAttention-2 path for: the Llama-style decoders), else PyTorch 'sdpa'."""
    from qkv.tools.catalog.gpus import get_gpu

    g = get_gpu(gpu_name)
    gpu_ok = g.vendor.lower().startswith("nvidia") and g.architecture.startswith(FLASH_ARCHS)
    return "flash" if gpu_ok and family == "llama" else "sdpa"


def family_of(arch: dict[str, Any]) -> str:
    from qkv.tools.arch import spec_from_config

    return spec_from_config(_resolved(arch).config).family


def _hparams(arch: dict[str, Any], method: str, seq: int, calls: Calls) -> dict[str, Any] | None:
    from qkv.tools.knowledge.hparams import HparamRequest
    from qkv.tools.knowledge.hparams import recommend_hparams as fn

    ref = {"params": float(arch["params"])} if arch.get("config") else {"model": arch["base_model"]}
    plan = calls("knowledge.recommend_hparams", fn, HparamRequest(**ref, method=method, seq=seq))
    out: dict[str, Any] = {"method": plan.method}
    prov: dict[str, str] = {}
    units: dict[str, str] = {}
    for key in ("learning_rate", "schedule", "warmup", "weight_decay", "batch_sequences", "batch_tokens",
                "max_grad_norm", "optimizer", "quantization", "steps", "warmup_steps"):
        fig = getattr(plan, key, None)
        if fig is not None:
            out[key] = fig.value
            prov[key] = f"{fig.provenance}: " + ", ".join(fig.sources or [fig.formula or "qkv.tools.knowledge"])
            if fig.unit:
                units[key] = fig.unit
    if plan.lora is not None:
        for key in ("r", "alpha", "dropout", "targets"):
            fig = getattr(plan.lora, key)
            out[f"lora_{key}"] = fig.value
            prov[f"lora_{key}"] = f"{fig.provenance}: " + ", ".join(fig.sources)
        out["peft_defaults"] = plan.lora.peft_defaults
    out["notes"] = list(plan.notes)
    out["provenance"] = prov
    out["units"] = units  # the report and the runnable config state each value in this unit
    return out


# The efficiency step's loop state in the graph state, beside its section: the ladder, the rungs tried, the
# memory request, the LoRA settings kept between rungs. Never report figures (the report step drops them).
WORKING_KEYS = frozenset({"base", "hp_lora", "ladder", "request", "settled", "tried"})



def _base_request(task, arch: dict[str, Any], hp: dict[str, Any] | None, method: str):
    """The memory request for the user's plan: every stated setting as stated, the rest from the
    hyperparameter tool (micro-batch, LoRA shape) or the memory tool's defaults."""
    from qkv.tools.catalog.gpus import get_gpu
    from qkv.tools.knowledge.budget import accumulation, per_gpu_share
    from qkv.tools.memory.schema import MemoryRequest

    gpus = task.gpus or 1
    small = arch["params"] < 1e9
    # The recipe's batch is global: every data-parallel GPU (DDP or FSDP) adds micro-batch × accumulation.
    per_gpu = per_gpu_share(int(hp.get("batch_sequences", 1)), gpus) if hp else 1
    batch = per_gpu if hp and small else 1
    accum = accumulation(per_gpu, batch, 1) if hp else 1
    if task.micro_batch:
        batch = task.micro_batch
        accum = task.grad_accum or (accumulation(per_gpu, batch, 1) if hp else 1)
    elif task.grad_accum:
        accum = task.grad_accum
    lora: dict[str, Any] = {}
    if hp and "lora_r" in hp:
        targets = hp["lora_targets"]
        lora = {"lora_r": int(hp["lora_r"]), "lora_alpha": int(hp["lora_alpha"]),
                "lora_dropout": float(hp["lora_dropout"]),
                "lora_targets": targets if isinstance(targets, list) else [targets]}
    ext = task.context_extension
    if arch["context_action"] == "rope_scaling":
        ext = ext or "yarn"
    elif arch["context_action"] == "sliding_window":
        ext = "sliding"
    device = get_gpu(task.gpu)
    return MemoryRequest(
        model=arch["base_model"] if not arch.get("config") else "inline", method=method, batch=batch,
        seq=arch["train_seq"], grad_accum=accum, precision=_precision(task),
        attention=attention_for(task.gpu, family_of(arch)), gpu=task.gpu, gpus=gpus,
        sharding=task.sharding or _default_sharding(task, gpus), context_extension=ext,
        grad_checkpointing=bool(task.grad_checkpointing),
        cuda_context_gib=0.0 if device.gpu_class == "cpu" else 0.5, **lora)


PRECISION_WHY = {
    "bf16-mixed": "rule: pre-training keeps fp32 master weights and AdamW states (Megatron-LM, torchtitan; "
                  "Micikevicius et al. 2018): pure 16-bit states lose small updates over a long run",
    "fp16-mixed": "rule: no bf16 on this GPU, so fp16 AMP with fp32 master weights and loss scaling "
                  "(Micikevicius et al. 2018)",
    "bf16": "rule: fine-tuning in pure bf16 as qkv's trainer runs it (weights loaded in bf16, AdamW states in "
            "the parameters' dtype; torchtune's recipes do the same)",
}


def _precision(task) -> str:
    """The memory tool's precision for the plan: the precision rule's choice for the GPU and the stated dtype
    (qkv.tools.knowledge.precision), in the estimator's terms. The report's precision line is the same choice."""
    from qkv.tools.knowledge.precision import memory_precision, training_precision

    pretrain = task.mode == "pre-train"
    return memory_precision(training_precision(task.gpu, task.precision, pretrain), pretrain)


def _default_sharding(task, gpus: int) -> str:
    """Several GPUs and no sharding stated. Pre-training: data parallel (a replica per GPU, the least
    communication); its ladder adds FSDP rungs only when a replica does not fit. Fine-tuning: FSDP over the
    user's GPUs, which keeps the stated method on the GPUs they have before any lever that changes it (the
    fine-tuning ladder tries sharding last)."""
    if gpus <= 1:
        return "none"
    return "ddp" if task.mode == "pre-train" else "fsdp"


def pins(task) -> dict[str, Any]:
    """The plan settings the user stated, as memory-request fields: the ladder may not change them
    unless nothing that keeps them fits (then the change is a stated departure)."""
    out: dict[str, Any] = {}
    if task.method:
        out["method"] = task.method
    if task.micro_batch:
        out["batch"] = task.micro_batch
    if task.grad_checkpointing is not None:
        out["grad_checkpointing"] = task.grad_checkpointing
    if task.sharding:
        out["sharding"] = task.sharding
    return out


def departures(task, changes: dict[str, Any]) -> list[str]:
    """Each stated setting the planned rung changes, in words."""
    words = {"method": "method", "batch": "micro-batch", "grad_checkpointing": "gradient checkpointing",
             "sharding": "sharding", "gpus": "GPU count"}
    out = []
    for key, value in pins(task).items():
        if key in changes and changes[key] != value:
            out.append(f"{words[key]}: stated {value}, planned {changes[key]}")
    return out


def _resolved(arch: dict[str, Any]):
    from qkv.tools.modelref import ResolvedModel, resolve_model

    if arch.get("config"):
        return ResolvedModel(name=arch["base_model"], origin="config.json", source=arch["model_source"],
                             config=arch["config"])
    return resolve_model(arch["base_model"])


def _estimate(arch: dict[str, Any], req, calls: Calls):
    from qkv.tools.arch import spec_from_config
    from qkv.tools.memory.estimate import estimate_resolved

    resolved = _resolved(arch)
    return calls("memory.estimate", estimate_resolved, resolved, spec_from_config(resolved.config), req)


def _ladder(task, arch: dict[str, Any], base, calls: Calls) -> list[dict[str, Any]]:
    """The rungs to try, in cost order, from the memory tool (pre-training: full-parameter rungs)."""
    from qkv.tools.catalog.gpus import get_gpu
    from qkv.tools.memory.verdict import fit_report, fit_state, full_parameter_rungs

    if task.mode == "pre-train" or arch.get("config"):
        usable = get_gpu(task.gpu).usable_bytes
        out = []
        for name, changes in calls("memory.full_parameter_rungs", full_parameter_rungs, task.gpus or 1):
            total = _estimate(arch, base.model_copy(update=changes), calls).total_bytes
            fits, tight = fit_state(total, usable)
            out.append({"name": name, "changes": changes, "total_bytes": total, "fits": fits, "tight": tight})
            if fits and not out[-1]["tight"] and changes.get("gpus", 0) >= (task.gpus or 1):
                break
        return out
    report = calls("memory.fit_report", fit_report, base.model_copy(update={"method": "full"}))
    tool = [(o.name, dict(o.changes)) for o in report.ladder]
    return _honouring(task, arch, base, tool, calls)


def _on_hardware(rung: dict[str, Any], gpus: int) -> bool:
    return int(rung["changes"].get("gpus", gpus)) <= gpus


LABEL = {"full": "full fine-tune", "lora": "LoRA", "qlora": "QLoRA"}


def _honouring(task, arch, base, tool: list[tuple[str, dict[str, Any]]], calls: Calls) -> list[dict[str, Any]]:
    """Rungs in the order a researcher tries them for a user who stated part of the plan: the stated
    method with the levers that keep it (gradient checkpointing, micro-batch 1 with the same effective
    batch) and every stated setting pinned; then the memory tool's ladder with the pins kept where they can
    be; then its rungs that must change a stated setting, each marked with its departures."""
    from qkv.tools.catalog.gpus import get_gpu
    from qkv.tools.knowledge.budget import global_batch
    from qkv.tools.memory.verdict import fit_state

    pinned = pins(task)
    effective = global_batch(base.batch, base.grad_accum, 1)
    rungs: list[tuple[str, dict[str, Any]]] = []
    if task.method:
        m = LABEL[task.method]
        rungs += [(f"{m} (as stated)", {"method": task.method}),
                  (f"{m} + gradient checkpointing", {"method": task.method, "grad_checkpointing": True}),
                  (f"{m} + checkpointing + micro-batch 1",
                   {"method": task.method, "grad_checkpointing": True, "batch": 1, "grad_accum": effective})]
    elif task.micro_batch:
        # A stated micro-batch leaves checkpointing as the lever that keeps it: tried with each method in turn.
        for method in ("full", "lora", "qlora"):
            rungs += [(LABEL[method], {"method": method}),
                      (f"{LABEL[method]} + gradient checkpointing", {"method": method, "grad_checkpointing": True})]
    rungs += tool
    usable = get_gpu(task.gpu).usable_bytes
    keep, depart, seen = [], [], set()
    for name, changes in rungs:
        honoured = {**changes, **pinned}
        conflict = any(k in changes and changes[k] != v for k, v in pinned.items())
        final = {**{k: v for k, v in pinned.items() if k not in changes}, **changes} if conflict else honoured
        key = tuple(sorted((k, str(v)) for k, v in final.items()))
        if key in seen:
            continue
        seen.add(key)
        total = _estimate(arch, base.model_copy(update=final), calls).total_bytes
        fits, tight = fit_state(total, usable)
        row = {"name": name, "changes": final, "total_bytes": total, "fits": fits, "tight": tight,
               "departs": departures(task, final)}
        (depart if row["departs"] else keep).append(row)
    return keep + depart


def efficiency_node(state: dict[str, Any]) -> dict[str, Any]:
    """One visit = one rung of the ladder; the router loops back here until a rung settles it."""
    task = task_of(state)
    arch = state["architecture"]
    calls = Calls()
    if task.mode == "inference":
        from qkv.tools.catalog.gpus import get_gpu

        eff = {"method": "none", "strategy": "inference only: no training", "fits": True, "peak_vram_gib": None,
               "gpu": task.gpu, "gpus": task.gpus or 1, "usable_gib": to_gib(get_gpu(task.gpu).usable_bytes),
               "settled": True, "provenance": {"usable_gib": "cited: GPU catalog (qkv.tools.catalog.gpus)"}}
        return {"efficiency": eff, "rung": 0, "calls": calls.items}
    rung_i = int(state.get("rung") or 0)
    prev = state.get("efficiency") or {}
    if rung_i == 0 or not prev.get("ladder"):
        method0 = "pretrain" if task.mode == "pre-train" else "lora"
        # Stated LoRA shape and learning rate replace the tool's before any estimate: the memory of the
        # adapters the user asked for (rank 8 is not rank 64).
        hp = with_stated(task, _hparams(arch, method0, arch["train_seq"], calls), method0)
        base = _base_request(task, arch, hp, "full")
        ladder = _ladder(task, arch, base, calls)
        prev = {"ladder": ladder, "base": base.model_dump(mode="json"), "hp_lora": hp, "tried": []}
    from qkv.tools.catalog.gpus import get_gpu
    from qkv.tools.memory.schema import MemoryRequest

    gpus = task.gpus or 1
    rungs = [r for r in prev["ladder"] if _on_hardware(r, gpus)]
    rung = rungs[min(rung_i, len(rungs) - 1)]
    tight_keep = [r for r in rungs[:rung_i] if not r.get("departs") and r["fits"]]
    if rung.get("departs") and tight_keep:
        # Something that keeps every stated setting fits, only inside the safety margin: the user's settings
        # stand (with a warning) rather than being changed to win back the margin.
        rung = {**tight_keep[0], "tight_kept": True}
    base = MemoryRequest.model_validate(prev["base"])
    req = base.model_copy(update=rung["changes"])
    est = _estimate(arch, req, calls)
    usable = get_gpu(task.gpu).usable_bytes
    tried = [*prev.get("tried", []), {"name": rung["name"], "total_gib": to_gib(est.total_bytes),
                                      "fits": rung["fits"], "tight": rung["tight"]}]
    comfortable = rung["fits"] and (not rung["tight"] or bool(rung.get("tight_kept")))
    last = rung_i + 1 >= len(rungs)
    eff = {**prev, "tried": tried, "settled": comfortable or last}
    if not (comfortable or last):
        eff["strategy"] = f"tried {rung['name']}: {to_gib(est.total_bytes)} GiB per GPU, " + (
            "too tight" if rung["fits"] else "does not fit")
        return {"efficiency": eff, "rung": rung_i + 1, "unavailable": unavailable(state),
                "calls": calls.items}
    if not comfortable:
        # Nothing fits: the report evaluates the user's own plan (the cheapest rung that keeps every stated
        # setting) rather than the ladder's last resort, and says what would fit.
        keep = [r for r in rungs if not r.get("departs")] or rungs
        rung = min(keep, key=lambda r: r["total_bytes"])
        req = base.model_copy(update=rung["changes"])
        est = _estimate(arch, req, calls)
    method = req.method if task.mode != "pre-train" else "full"
    hp = prev.get("hp_lora")
    if task.mode != "pre-train" and method != "lora":
        hp = _hparams(arch, method, arch["train_seq"], calls) or hp
    hp = with_stated(task, hp, req.method)
    if hp and hp.get("batch_sequences") and not task.grad_accum and task.mode != "pre-train":
        # The effective batch is the recipe's for the method finally chosen (Alpaca's 128 for full fine-tuning,
        # QLoRA's 16): accumulation makes it up at the micro-batch that fits.
        dp = req.gpus if req.sharding != "none" else 1  # data-parallel GPUs each add a micro-batch per step
        from qkv.tools.knowledge.budget import accumulation

        req = req.model_copy(update={"grad_accum": accumulation(int(hp["batch_sequences"]), req.batch, dp)})
    eff.update(_settle(task, arch, req, est, rung, prev["ladder"], usable, hp, comfortable, calls))
    return {"efficiency": eff, "rung": 0, "unavailable": unavailable(state), "calls": calls.items}


STATED_HP = {"learning_rate": "learning_rate", "lora_r": "lora_r", "lora_alpha": "lora_alpha",
             "lora_targets": "lora_targets"}


def with_stated(task, hp: dict[str, Any] | None, method: str) -> dict[str, Any] | None:
    """The hyperparameter tool's plan with every value the user stated put in its place (provenance
    'stated'); where the tool recommends otherwise for this scale, a note says so (hard rule 2)."""
    if hp is None:
        return None
    out = {**hp, "provenance": dict(hp.get("provenance", {})), "notes": list(hp.get("notes", []))}
    for field, key in STATED_HP.items():
        value = getattr(task, field)
        if value is None or (key.startswith("lora_") and method not in ("lora", "qlora")):
            continue
        recommended = hp.get(key)
        out[key] = value
        words = next((s.text for s in task.stated if s.field == field), field)
        out["provenance"][key] = f"stated: '{words}'"
        if recommended is not None and recommended != value:
            out["notes"].append(f"{key} {value} as stated; qkv's recommendation for this scale and method is "
                                f"{recommended} ({hp.get('provenance', {}).get(key, 'qkv.tools.knowledge.hparams')})")
    return out


def _settle(task, arch, req, est, rung, ladder, usable, hp, comfortable, calls) -> dict[str, Any]:
    breakdown = [{"name": t.name, "gib": t.gib, "formula": t.formula} for t in [*est.terms, *est.overhead]]
    alternatives = [{"name": r["name"], "total_gib": to_gib(r["total_bytes"]), "fits": r["fits"], "tight": r["tight"],
                     "changes": r["changes"]} for r in ladder]
    out = {
        "method": req.method, "strategy": rung["name"] if comfortable else "nothing fits on this hardware",
        "fits": comfortable, "peak_vram_gib": est.total_gib, "gpu": task.gpu, "gpus": req.gpus,
        "usable_gib": to_gib(usable), "sharding": req.sharding,
        "quantization": "nf4" if req.method == "qlora" else None,
        "double_quant": req.method == "qlora" and req.quant_double, "grad_checkpointing": req.grad_checkpointing,
        "micro_batch": req.batch, "grad_accum": req.grad_accum, "breakdown": breakdown,
        "alternatives": alternatives, "hyperparameters": hp or {}, "warnings": list(est.warnings),
        "request": req.model_dump(mode="json"),
        "provenance": {
            "peak_vram_gib": "analytic: qkv.tools.memory estimate (allocated + allocator reserve + CUDA context)",
            "alternatives": "analytic: qkv.tools.memory.verdict strategy ladder",
            "usable_gib": "cited: GPU catalog (qkv.tools.catalog.gpus)",
            "request.precision": PRECISION_WHY.get(req.precision, "stated") if not task.precision else "stated",
            **({f"hyperparameters.{k}": v for k, v in (hp or {}).get("provenance", {}).items()}),
        },
    }
    if not arch.get("config"):
        from qkv.tools.memory.diagnose import diagnose

        out["diagnosis"] = calls("memory.diagnose", diagnose, req).model_dump(mode="json")
    if not comfortable:
        out["what_would_fit"] = what_would_fit(task, arch, req, est, ladder, calls, out.get("diagnosis"))
    elif task.mode != "pre-train" and not arch.get("config") and req.method in ("full", "lora") and not task.method:
        out["tradeoffs"] = weigh(task, arch, req, rung, calls)
    if rung.get("tight_kept"):
        out["warnings"].append(f"'{rung['name']}' keeps every stated setting and fits, but with less than the "
                               f"safety margin ({to_gib(rung['total_bytes'])} of {to_gib(usable)} GiB): expect "
                               "allocator fragmentation to matter; a smaller micro-batch with more accumulation would "
                               "give room")
    stated = ladder[0] if pins(task) else None
    if stated is not None:
        out["stated_plan"] = {"name": stated["name"], "total_gib": to_gib(stated["total_bytes"]),
                              "fits": stated["fits"], "tight": stated["tight"], "changes": stated["changes"]}
    out["departures"] = list(rung.get("departs", []))
    if out["departures"] and stated is not None:
        out["warnings"].append(
            f"your plan ('{stated['name']}') needs {to_gib(stated['total_bytes'])} GiB per GPU and "
            f"{'is too tight' if stated['fits'] else 'does not fit'} in {to_gib(usable)} GiB; nothing that keeps every "
            f"stated setting fits, so the plan changes {'; '.join(out['departures'])} ('{rung['name']}')")
    return out
