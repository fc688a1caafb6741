"""Last step: assemble the DesignReport — the resource budget, the ethical-evaluation plan, the three
hard-rule checks, the runnable training config (the trainer's YAML) and the narrative."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.nodes.common import Calls, task_of, unavailable
from qkv.agent.graph.nodes.training_plan import data_budget_of, precision_of, pretraining_of, training_config
from qkv.agent.graph.schemas import DesignReport
from qkv.agent.graph.sections import Efficiency, Ethics, ResourceBudget

# The evaluator's faithfulness proxies (qkv.tools.evaluate.schema.FaithfulnessReport fields).
FAITHFULNESS_FIELDS = ("unsupported_number_rate", "unsupported_entity_rate", "repetition_rate", "distinct_2")


def _checks(task, arch, eff, inf, hidden: int | None = None) -> list[dict[str, str]]:
    window = arch.get("context_window")
    need = arch["required_tokens"]
    action = arch["context_action"]
    effective = (arch.get("capabilities") or {}).get("effective_context")
    if action in ("ok", "long_context_model") and effective and need > effective:
        rule1 = ("warn", f"{need:,} tokens fit the {window:,}-token window of {arch['base_model']} but exceed its "
                 f"published effective context of {effective:,} tokens: measure long-context quality (RULER, "
                 "Hsieh et al. 2024) before trusting it")
    elif action == "ok":
        rule1 = ("pass", f"{need:,} tokens ≤ the {window:,}-token window of {arch['base_model']}"
                 if window else f"{arch['base_model']} has no hard window; {need:,} tokens planned")
    elif action == "long_context_model":
        rule1 = ("pass", f"{need:,} tokens: {arch['base_model']} was chosen for its {window:,}-token window")
    else:
        rule1 = ("warn", f"{need:,} tokens exceed the {window:,}-token window; planned with {action}: "
                 f"{arch['context_detail']} — measure long-context quality before trusting it")
    hp = eff.get("hyperparameters") or {}
    if eff.get("method") == "none":
        rule2 = ("pass", "inference only: no training hyperparameters are set")
    elif hp.get("learning_rate") is not None:
        rule2 = ("pass", f"learning rate {hp['learning_rate']:g}, {hp.get('schedule')} schedule, weight decay "
                 f"{hp.get('weight_decay')} chosen for {arch['params'] / 1e9:.2f}B parameters and method "
                 f"{hp.get('method')} ({eff['provenance'].get('hyperparameters.learning_rate', 'sourced')})")
    else:
        rule2 = ("warn", "the hyperparameter tool was not available: no scale-specific values could be stated")
    fails = [i for i in inf.get("sampling_issues", []) if i["level"] == "fail"]
    warns = [i for i in inf.get("sampling_issues", []) if i["level"] == "warn"]
    if inf.get("sampling_policy", "").startswith("not applicable"):
        rule3 = ("n/a", inf["sampling_policy"])
    elif fails:
        rule3 = ("fail", "the requested decoding is unbounded: " + "; ".join(i["message"] for i in fails)
                 + f". Deploy with the bounded policy instead: {inf['sampling_policy']}")
    elif warns:
        rule3 = ("warn", "; ".join(i["message"] for i in warns) + f". Plan: {inf['sampling_policy']}")
    else:
        rule3 = ("pass", f"bounded decoding: {inf['sampling_policy']}")
    return [
        {"rule": "context window respected", "status": rule1[0], "detail": rule1[1]},
        {"rule": "no default hyperparameters across scales", "status": rule2[0], "detail": rule2[1]},
        {"rule": "no deployment without a sampling strategy", "status": rule3[0], "detail": rule3[1]},
        stated_check(task, arch, eff, inf, hidden),
    ]


def stated_check(task, arch, eff, inf, hidden: int | None = None) -> dict[str, str]:
    """The fourth row: every stated constraint was evaluated as stated, or each departure is named."""
    departs = [*eff.get("departures", []), *inf.get("departures", [])]
    if task.base_model and arch["base_model"] != task.base_model and arch.get("context_action") != "long_context_model":
        departs.append(f"model: stated {task.base_model}, planned {arch['base_model']}")
    if task.param_budget and not task.base_model and task.mode != "pre-train":
        from qkv.tools.knowledge.model_choice import within_size_band

        if not within_size_band(arch["params"], task.param_budget):
            departs.append(f"model size: stated {task.param_budget / 1e9:g}B, planned {arch['params'] / 1e9:.2f}B")
    from qkv.tools.knowledge.hparams import stated_outliers

    odd = stated_outliers(task.learning_rate, task.lora_r, hidden)
    parts = []
    if departs:
        parts.append("changed: " + "; ".join(departs))
    if odd:
        parts.append("honoured but outside published practice: " + "; ".join(odd))
    if task.not_understood:
        parts.append("not understood: " + "; ".join(task.not_understood))
    if not parts:
        n = len(task.stated)
        return {"rule": "stated constraints honoured", "status": "pass",
                "detail": f"all {n} stated constraint{'s' if n != 1 else ''} evaluated as stated"}
    return {"rule": "stated constraints honoured", "status": "warn", "detail": " — ".join(parts)}


def _ethics(task, obj, calls: Calls) -> Ethics:
    recipe = obj.get("recipe") or {}
    if recipe.get("family") in ("classification-multilabel", "classification", "ner", "code", "pretraining-code",
                                "chat", "translation", "qa"):
        # The task family's own plan: a classifier is not checked with a generator's hallucination proxies.
        eth = recipe["ethics"]
        evals = list(eth.get("evaluation", []))
        generator = obj["architecture"] != "encoder-only"
        return Ethics(hallucination=evals[:1] if generator else [], proxies=[],
                      biased_token_distributions=evals[1:] if generator else evals,
                      data=list(eth.get("data", [])), mitigations=list(eth.get("mitigations", [])),
                      baselines=[f"{b['name']}: {b['why']}" for b in recipe.get("baselines", [])],
                      provenance=f"cited: qkv.tools.knowledge.recipes '{recipe['family']}' "
                                 f"({', '.join(recipe['sources'])})")
    return _generator_ethics(task, obj, calls, recipe)


def _generator_ethics(task, obj, calls: Calls, recipe: dict[str, Any]) -> Ethics:
    from qkv.tools.evaluate.schema import CounterfactualReport, FaithfulnessReport

    proxies = [{"name": name, "measures": FaithfulnessReport.model_fields[name].description or name}
               for name in FAITHFULNESS_FIELDS]
    doc = (CounterfactualReport.__doc__ or "").strip()
    bias = [{"name": "counterfactual pairs",
             "measures": doc.splitlines()[0] if doc else "score change when a demographic term is swapped"}]
    hallucination = [
        "faithfulness proxies on every evaluation output against its source (the evaluator's numbers; they flag "
        "where to look, they do not judge)",
    ]
    if task.domain:
        hallucination.append(f"a blind review by {task.domain} experts of the first 50 outputs"
                             + " (the evaluator writes the review sheet)"
                             + ": every material fact must be traceable to the source")
    return Ethics(
        hallucination=hallucination,
        proxies=proxies,
        biased_token_distributions=[
            "distinct-2 and repetition rate over generations (degenerate, low-diversity output)",
            "token-level comparison of outputs for counterfactual inputs that differ only in a demographic term",
        ] + [f"{b['name']}: {b['measures']}" for b in bias],
        data=list((recipe.get("ethics") or {}).get("data", [])),
        mitigations=[
            "train on source-grounded targets only; drop training pairs whose targets state numbers or names "
            "absent from the source (the same proxy, applied to the data)",
            "bounded decoding (hard rule 3) and a length cap",
            *(recipe.get("ethics") or {}).get("mitigations", []),
        ],
        baselines=[f"{b['name']}: {b['why']}" for b in recipe.get("baselines", [])],
        provenance="measures defined by qkv.tools.evaluate (schema field descriptions)"
                   + (f"; recipe: qkv.tools.knowledge.recipes '{recipe['family']}'" if recipe else ""),
    )


def _resource_budget(task, state: dict[str, Any], calls: Calls, precision, budget) -> ResourceBudget:
    """Parameters, training and inference peaks, and the precision and budgets behind them."""
    arch, eff, inf = state["architecture"], state["efficiency"], state["inference"]
    rb = ResourceBudget(
        params=arch["params"], active_params=arch["active_params"],
        train_peak_vram_gib=eff.get("peak_vram_gib"), train_fits=eff.get("fits"),
        inference_peak_vram_gib=inf["peak_vram_gib"], inference_fits=inf["fits"],
        gpu=task.gpu, gpus=task.gpus or 1, usable_gib_per_gpu=eff.get("usable_gib") or None,
        provenance={"params": arch["provenance"].get("params", ""),
                    "train_peak_vram_gib": eff.get("provenance", {}).get("peak_vram_gib", ""),
                    "inference_peak_vram_gib": inf["provenance"]["peak_vram_gib"]},
        inference_breakdown=inf.get("breakdown", []))
    if state.get("pretraining"):
        rb.pretraining = pretraining_of(state["pretraining"], eff, calls)
    if precision:
        rb.precision = precision
    if budget:
        rb.data_budget = budget
    return rb


def _efficiency(task, eff: dict[str, Any], rb: ResourceBudget, precision, budget) -> Efficiency:
    """The efficiency section: the step's fields (its loop state stays behind; any other key is refused by the
    section model), with the batch the data budget planned and the precision's departure, if any."""
    from qkv.agent.graph.nodes.efficiency import WORKING_KEYS

    out = {k: v for k, v in eff.items() if k not in WORKING_KEYS}
    out.setdefault("gpu", task.gpu)
    out.setdefault("gpus", task.gpus or 1)
    out["pretraining"] = rb.pretraining.model_dump() if rb.pretraining else None
    if budget:  # the report's batch is the config's: accumulation made up over the data-parallel GPUs
        out["grad_accum"] = budget.grad_accum
        out["provenance"] = {**out.get("provenance", {}), "grad_accum": budget.provenance["global_batch"]}
    if precision and precision.departure:
        out["departures"] = [*out.get("departures", []), precision.departure]
    return Efficiency.model_validate(out)


def report_node(state: dict[str, Any]) -> dict[str, Any]:
    """Assemble the typed report from the steps' sections, then word it (template or LLM)."""
    from qkv.agent.graph.narrate import narrate

    task = task_of(state)
    calls = Calls()
    arch, eff, inf, obj = state["architecture"], state["efficiency"], state["inference"], state["objective"]
    precision = precision_of(task, calls) if eff.get("method") not in (None, "none") else None
    budget = data_budget_of(task, arch, eff, obj, calls)
    rb = _resource_budget(task, state, calls, precision, budget)
    efficiency = _efficiency(task, eff, rb, precision, budget)
    model = DesignReport(
        task=task, assumptions=state.get("assumptions", []), objective=obj,
        architecture={k: v for k, v in arch.items() if k != "config"}, efficiency=efficiency,
        tokenization=state["tokenization"], inference={k: v for k, v in inf.items() if k != "breakdown"},
        resource_budget=rb, layer_profile=state["layer_profile"], ethics=_ethics(task, obj, calls),
        checks=_checks(task, arch, {**eff, "departures": efficiency.departures}, inf,
                       state["layer_profile"].get("hidden")),
        training_config=training_config(task, arch, eff, obj, calls, budget, precision),
        unavailable=unavailable(state))
    req = state.get("request") or {}
    model.narrative, model.narrative_source = calls("narrate", narrate, model, req.get("llm", "none"),
                                                    req.get("llm_model"))
    return {"report": model.model_dump(mode="json"), "calls": calls.items}
