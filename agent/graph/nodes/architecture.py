"""Step 2, architecture: the base model (named, or chosen from the catalog for the size budget and the
context need), its exact parameter count, layer profile and the context plan (hard rule 1).

Pre-training has no base model: the scaling tool turns the compute budget into a compute-optimal size
and the sizing tool proposes a shape for it."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.nodes.common import Calls, task_of, unavailable
from qkv.agent.graph.sections import LayerProfileSection
from qkv.tools.knowledge.context_rules import RELATIVE_PRETRAIN_TOKENS

KIND_OF_FAMILY = {"encoder-only": "encoder", "decoder-only": "decoder", "encoder-decoder": "encoder-decoder"}


def _choice_request(task, obj: dict[str, Any], kind: str, budget: float | None, need: int):
    """What the base model must do, from the task: languages, code or not, chat/serving or not."""
    from qkv.tools.knowledge.model_choice import ChoiceRequest

    code = obj.get("task") == "code" or task.domain == "code"
    instruct = obj.get("task") == "chat" or bool(task.deploy) or task.mode == "inference"
    return ChoiceRequest(kind=kind, params=budget, need_tokens=need, languages=list(task.languages),
                         instruct=instruct, code=code)


def _candidates(task, obj, kind: str, budget: float | None, need: int, calls: Calls
                ) -> tuple[str, list[dict[str, Any]], str, list[str]]:
    """The capability-filtered choice (qkv.tools.knowledge.model_choice): the name, the table of candidates
    with the reason each lost, the rationale and any relaxed filter."""
    from qkv.tools.knowledge.model_choice import choose_model

    choice = calls("knowledge.choose_model", choose_model, _choice_request(task, obj, kind, budget, need))
    table = [{"model": c.model, "params": c.params, "context_window": c.context_window,
              "effective_context": c.effective_context, "languages": c.languages, "variant": c.variant,
              "licence": c.licence, "pretraining_tokens": c.pretraining_tokens,
              "covers_need": (c.effective_context or c.context_window or RELATIVE_PRETRAIN_TOKENS) >= need,
              "verdict": c.verdict, "lost_because": "; ".join(c.reasons), "source": c.source}
             for c in choice.candidates]
    return choice.chosen, table, choice.rationale, list(choice.warnings)


def _capability_gaps(name: str, task, obj) -> list[str]:
    """What the model lacks for this task (languages, instruct variant), from the catalog's capabilities."""
    from qkv.tools.catalog.models import find_model

    entry = find_model(name)
    caps = entry.capabilities if entry else None
    if caps is None:
        return []
    gaps = [f"does not cover {', '.join(lang for lang in task.languages if lang not in caps.languages)} "
            f"({caps.languages_source.split(':')[0]})"] if any(
        lang not in caps.languages for lang in task.languages) else []
    if (obj.get("task") == "chat" or task.deploy) and caps.variant == "base" and caps.instruct_variant:
        gaps.append(f"is a base model (its instruct variant {caps.instruct_variant} is the start for chat and serving)")
    return gaps


def _near_budget(kind: str, budget: float, calls: Calls) -> bool:
    """Whether a catalog model of `kind` lies within 1.5x of `budget` parameters."""
    from qkv.tools.catalog.summary import summarize_models
    from qkv.tools.knowledge.model_choice import within_size_band

    return any(r.kind == kind and within_size_band(r.params, budget)
               for r in calls("catalog.summarize_models", summarize_models))


def _capabilities_of(name: str) -> dict[str, Any] | None:
    """The catalog's published capabilities of the chosen model (each with its source), if catalogued."""
    from qkv.tools.catalog.models import find_model

    entry = find_model(name)
    return entry.capabilities.model_dump() if entry and entry.capabilities else None


def layer_profile_of(spec, source: str) -> dict[str, Any]:
    """Attention-head distribution and sparsity, read from the config (qkv.tools.knowledge.structure)."""
    from qkv.tools.knowledge.structure import layer_structure

    return layer_structure(spec, source).model_dump()


def _knowledge_profile(resolved, seq: int, calls: Calls) -> dict[str, Any]:
    """Parameter shares, the layer pattern and the quadratic share at the task's length (knowledge tool)."""
    from qkv.tools.knowledge.layer_profile import layer_profile as fn
    if resolved.origin != "catalog":
        return {}  # the tool resolves by reference; a proposed config has no reference to give it
    from qkv.tools.knowledge.layer_profile import ProfileRequest

    lp = calls("knowledge.layer_profile", fn, ProfileRequest(model=resolved.name, seq=seq))

    def val(fig) -> Any:
        return fig.value if fig is not None else None

    return {
        "pattern": lp.pattern, "share_attention": val(lp.share_attention), "share_mlp": val(lp.share_mlp),
        "share_embeddings": val(lp.share_embeddings), "attention_share_of_flops": val(lp.attention_share),
        "crossover_seq": val(lp.crossover_seq), "at_seq": seq, "profile_notes": list(lp.notes),
        "profile_provenance": "analytic: qkv.tools.knowledge.layer_profile (Hoffmann et al. 2022 App. F FLOPs)",
    }


def _choose(task, obj: dict[str, Any], kind: str, need: int, calls: Calls):
    """The model to design with: a proposed architecture (pre-training, or a stated size no catalog model
    has), the model the request names, the intake's default when it has what the task needs, or the
    capability-filtered choice. Returns (resolved model, pre-training budget, why, candidates, notes)."""
    from qkv.tools.modelref import resolve_model
    from qkv.tools.params import count_params

    candidates: list[dict[str, Any]] = []
    pretraining: dict[str, Any] | None = None
    resolved = None
    if task.mode == "pre-train" and kind == "decoder":
        resolved, pretraining = _pretrain_model(task, need, calls)
    elif task.param_budget and not task.base_model and kind == "decoder" and not _near_budget(kind, task.param_budget,
                                                                                             calls):
        # No catalog model within 1.5x of the stated size: design one of that size rather than swap the size.
        resolved, _ = _pretrain_model(task.model_copy(update={"compute_flops": None, "data_tokens": None}), need,
                                      calls)
    notes: list[str] = []
    if resolved is None:
        stated_model = any(s.field == "base_model" for s in task.stated)
        gaps = _capability_gaps(task.base_model, task, obj) if task.base_model else []
        if task.base_model and stated_model:
            name = task.base_model
            why = "named in the request"
            notes += [f"{name} {g} — kept, because the request names it" for g in gaps]
        elif task.base_model and not gaps:
            name = task.base_model
            why = "no model or size named: the intake's default model (see assumptions), which has what the task needs"
        else:
            budget = task.param_budget
            if task.base_model:  # an assumed default that lacks a capability: choose at its size instead
                budget = float(calls("params.count_params", count_params,
                                     resolve_model(task.base_model)).total)
                notes.append(f"the default {task.base_model} " + " and ".join(gaps) + ": chosen by capability instead")
            name, candidates, why, relaxed = _candidates(task, obj, kind, budget, need, calls)
            notes += relaxed
        resolved = calls("modelref.resolve_model", resolve_model, name)
    elif task.mode == "pre-train":
        why = "proposed by the sizing tool for the compute-optimal parameter count"
    else:
        why = (f"no catalog {kind} model is within 1.5× of the stated {task.param_budget / 1e9:g}B parameters: the "
               "sizing tool proposes an architecture of that size")
    return resolved, pretraining, why, candidates, notes


def architecture_node(state: dict[str, Any]) -> dict[str, Any]:
    """Choose and describe the model; decide the context plan."""
    from qkv.tools.arch import spec_from_config
    from qkv.tools.params import count_params

    task = task_of(state)
    obj = state["objective"]
    calls = Calls()
    need = task.max_doc_tokens or task.doc_tokens or 2048
    kind = KIND_OF_FAMILY[obj["architecture"]]
    resolved, pretraining, why, candidates, notes = _choose(task, obj, kind, need, calls)
    provenance: dict[str, str] = {}
    resolved = resolved.model_copy(update={"source": resolved.source.split(";")[0]})  # the URL, not the notes
    spec = spec_from_config(resolved.config)
    count = calls("params.count_params", count_params, resolved)
    window = spec.max_positions or (RELATIVE_PRETRAIN_TOKENS if spec.position == "relative" else None)
    detail = f"{need:,} tokens fit the {window:,}-token window" if window else "no hard window in the config"
    action, train_seq, rope = "ok", need, None
    if window is not None and need > window:
        action, detail = "pending", "the context step decides"  # routing sends the run to `context`
    elif candidates and need > 4096:
        action, detail = "long_context_model", (
            f"{need:,} tokens: chose {resolved.name} for its {window:,}-token window over shorter-window models "
            "of the same size")
    caps = _capabilities_of(resolved.name) or {}
    if action != "pending" and caps.get("effective_context") and need > caps["effective_context"]:
        # A claimed window is not an effective one: past the measured length quality drops (RULER).
        detail += (f"; beyond the published effective context of {caps['effective_context']:,} tokens "
                   f"({caps['effective_context_source']}): measure long-context quality before trusting it")
    profile = LayerProfileSection(**layer_profile_of(spec, resolved.source),
                                  **_knowledge_profile(resolved, need, calls)).model_dump()
    if candidates:
        provenance["base_model"] = ("rule: qkv.tools.knowledge.model_choice (languages, specialisation, size, "
                                    "effective context, instruct variant, then pretraining tokens; sources in the "
                                    "catalog's capabilities)")
    provenance.update({
        "params": f"analytic: qkv.tools.params closed-form count of {resolved.source}",
        "context_window": f"config: {resolved.source} (max_position_embeddings)",
        "required_tokens": "task: stated or assumed document length",
    })
    arch = {
        "base_model": resolved.name, "model_source": resolved.source, "params": count.total,
        "active_params": count.active, "context_window": window,
        "required_tokens": need, "train_seq": train_seq, "context_action": action, "context_detail": detail,
        "rope_scaling": rope, "candidates": candidates, "rationale": why, "provenance": provenance,
        "capabilities": caps or None, "choice_notes": notes,
        "config": resolved.config if resolved.origin != "catalog" else None,
    }
    return {"architecture": arch, "layer_profile": profile, "pretraining": pretraining,
            "unavailable": unavailable(state), "calls": calls.items}


def _pretrain_model(task, need: int, calls: Calls):
    """Compute-optimal size (scaling tool) and a shape for it (sizing tool), as a resolved model."""
    from qkv.tools.catalog.gpus import get_gpu
    from qkv.tools.knowledge.scaling import ScaleRequest
    from qkv.tools.knowledge.scaling import scale as scale_mod
    from qkv.tools.knowledge.sizing import SizeRequest
    from qkv.tools.knowledge.sizing import size_architecture as size_fn
    from qkv.tools.modelref import ResolvedModel

    device = get_gpu(task.gpu)
    # Training time needs the device's 16-bit peak; a device known only by its memory has none to use.
    gpu = task.gpu if (device.bf16_dense_tflops or device.fp16_dense_tflops) else None
    if task.compute_flops:
        sreq = ScaleRequest(flops=task.compute_flops, gpu=gpu, gpus=task.gpus or 1)
    elif task.param_budget:
        sreq = ScaleRequest(params=task.param_budget, gpu=gpu, gpus=task.gpus or 1)
    elif task.data_tokens:
        sreq = ScaleRequest(tokens=task.data_tokens, gpu=gpu, gpus=task.gpus or 1)
    else:
        return None, None
    report = calls("knowledge.scaling.scale", scale_mod, sreq)
    params = task.param_budget or float(report.params.value)
    proposal = calls("knowledge.sizing.size_architecture", size_fn,
                     SizeRequest(params=params, context=max(need, 2048)))
    pre = {
        "basis": report.basis, "params": float(report.params.value), "tokens": float(report.tokens.value),
        "flops": float(report.flops.value), "tokens_per_param": float(report.tokens_per_param.value),
        "loss": float(report.loss.value),
        "training_days": float(report.training.days.value) if report.training else None,
        "gpu_hours": float(report.training.gpu_hours.value) if report.training else None,
        "mfu": float(report.training.mfu.value) if report.training else None,
        "proposed_params": proposal.params, "notes": list(report.notes),
        "sources": sorted(set(report.sources) | set(proposal.sources)),
        "provenance": "analytic: qkv.tools.knowledge.scaling (Hoffmann et al. 2022, Besiroglu et al. 2024) and "
                      "qkv.tools.knowledge.sizing",
    }
    if task.param_budget and task.compute_flops and gpu and (task.gpu_hours or task.wall_hours):
        pre.update(_fixed_size_budget(task, gpu, float(proposal.params), calls))
    name = f"proposed-{proposal.params / 1e9:.2f}B"
    resolved = ResolvedModel(name=name, origin="config.json", source="qkv.tools.knowledge.sizing",
                             config=proposal.config)
    return resolved, pre


def _fixed_size_budget(task, gpu: str, params: float, calls: Calls) -> dict[str, Any]:
    """The size is fixed and the hardware time is stated: spend the budget on tokens (budget tool)."""
    from qkv.tools.knowledge.budget import ComputeBudgetRequest, compute_budget, wall_hours
    from qkv.tools.knowledge.scaling import loss

    gpus = task.gpus or 1
    hours = wall_hours(task.wall_hours, task.gpu_hours, gpus)
    cb = calls("knowledge.compute_budget", compute_budget,
               ComputeBudgetRequest(gpu=gpu, gpus=gpus, hours=hours, params=params, unique_tokens=task.data_tokens))
    tokens = float(cb.planned_tokens.value)
    return {
        "loss": loss(params, tokens),
        "basis": "fixed size, stated hardware time", "params": params, "tokens": tokens,
        "flops": float(cb.planned_flops.value), "tokens_per_param": float(cb.tokens_per_param.value),
        "budget_flops": float(cb.flops.value), "chinchilla_tokens": float(cb.chinchilla_tokens.value),
        "used_share": float(cb.used_share.value), "budget_reason": cb.reason,
        "training_days": float(cb.days.value), "gpu_hours": float(cb.gpu_hours.value),
        "notes": [cb.reason, *cb.notes],
        "budget_provenance": {"flops": cb.flops.formula, "tokens": cb.planned_tokens.formula,
                              "sources": ", ".join(cb.sources)},
        "provenance": "analytic: qkv.tools.knowledge.budget.compute_budget (C = GPUs × hours × peak × MFU; D = C/6N; "
                      "≤ 4 epochs of unique data, Muennighoff et al. 2023) and qkv.tools.knowledge.sizing",
    }


def _pick_option(plan, spec, *, fixed: bool):
    """The knowledge tool's options, filtered by two rules of this agent: a model the user named is kept
    (no switch to another model), and a switch never changes the architecture family (an encoder task
    stays on an encoder). In order: the tool's recommendation if allowed, YaRN, a sliding window,
    chunking."""
    def allowed(o) -> bool:
        if not o.applicable:
            return False
        if o.kind == "sliding_window" and spec.position == "learned":
            return False  # a learned position table has no rows past its window, windowed or not
        if o.kind in ("long_context_model", "alibi_model"):
            if fixed or not o.model:
                return False
            from qkv.tools.arch import spec_from_config
            from qkv.tools.modelref import resolve_model

            return spec_from_config(resolve_model(o.model).config).kind == spec.kind
        return True

    if plan.recommended is not None and allowed(plan.recommended):
        return plan.recommended
    for kind, name in (("rope_scaling", "yarn"), ("sliding_window", None), ("chunking", None)):
        for o in plan.options:
            if o.kind == kind and (name is None or name in o.name.lower()) and allowed(o):
                return o
    return next(o for o in plan.options if allowed(o))


def spec_of(arch: dict[str, Any]):
    """The ModelSpec of the chosen model (catalog name, or the config carried in the state)."""
    from qkv.tools.arch import spec_from_config
    from qkv.tools.modelref import resolve_model

    if arch.get("config"):
        return spec_from_config(arch["config"])
    return spec_from_config(resolve_model(arch["base_model"]).config)


def context_node(state: dict[str, Any]) -> dict[str, Any]:
    """Hard rule 1: the required length exceeds the window — extend it, or chunk, and say which."""
    calls = Calls()
    arch = dict(state["architecture"])
    spec = calls("arch.spec_from_config", spec_of, arch)
    need = arch["required_tokens"]
    from qkv.tools.knowledge.context_rules import ContextRequest
    from qkv.tools.knowledge.context_rules import context_plan as rules_fn

    # An architecture sized from scratch is checked by its config; it is never swapped for another model.
    plan = calls("knowledge.context_plan", rules_fn,
                 ContextRequest(model=arch["base_model"], tokens=need, config=arch.get("config")))
    rec = _pick_option(plan, spec, fixed=bool(task_of(state).base_model or arch.get("config")))
    action = "long_context_model" if rec.kind in ("long_context_model", "alibi_model") else rec.kind
    rope, train_seq = None, need
    detail = f"{need:,} tokens = ×{plan.factor:.2f} the {int(plan.window.value):,}-token window: {rec.name}"
    detail += f" — {rec.reason}" if rec.reason else ""
    others = [o.name for o in plan.options if o.applicable and o.kind == "long_context_model" and o is not rec]
    if others and action != "long_context_model":
        detail += "; long-context alternatives: " + ", ".join(others)
    if action == "rope_scaling":
        rope = rec.config_block
    elif action == "chunking":
        train_seq = int(plan.window.value)
    elif action == "long_context_model" and rec.model:
        from qkv.tools.arch import spec_from_config
        from qkv.tools.modelref import resolve_model
        from qkv.tools.params import count_params

        resolved = calls("modelref.resolve_model", resolve_model, rec.model)
        count = calls("params.count_params", count_params, resolved)
        new_spec = spec_from_config(resolved.config)
        arch.update({"base_model": resolved.name, "model_source": resolved.source.split(";")[0],
                     "params": count.total, "active_params": count.active,
                     "context_window": new_spec.max_positions})
        arch["_profile"] = layer_profile_of(new_spec, resolved.source.split(";")[0])
    arch["context_caveats"] = list(plan.caveats)
    source = "analytic: qkv.tools.knowledge.context_rules.context_plan"
    arch.update({"context_action": action, "context_detail": detail, "train_seq": train_seq, "rope_scaling": rope})
    arch["provenance"] = {**arch.get("provenance", {}), "context_action": source, "train_seq": source}
    update: dict[str, Any] = {"architecture": arch, "unavailable": unavailable(state), "calls": calls.items}
    if "_profile" in arch:
        update["layer_profile"] = arch.pop("_profile")
    return update
