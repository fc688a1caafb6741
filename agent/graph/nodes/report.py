"""Last step: assemble the DesignReport — the resource budget, the ethical-evaluation plan, the three
hard-rule checks, the runnable training config (the trainer's YAML) and the narrative."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.nodes.common import Calls, optional, task_of, unavailable
from qkv.agent.graph.schemas import DesignReport

# The evaluator's faithfulness proxies (qkv.tools.evaluate.schema.FaithfulnessReport fields).
FAITHFULNESS_FIELDS = ("unsupported_number_rate", "unsupported_entity_rate", "repetition_rate", "distinct_2")


def _checks(task, arch, eff, inf, hidden: int | None = None) -> list[dict[str, str]]:
    window = arch.get("context_window")
    need = arch["required_tokens"]
    action = arch["context_action"]
    if action == "ok":
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
        ratio = arch["params"] / task.param_budget
        if not 1 / 1.5 <= ratio <= 1.5:
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


def _ethics(task, obj, calls: Calls, missing: list[str]) -> dict[str, Any]:
    schema = optional("qkv.tools.evaluate.schema", "FaithfulnessReport")
    proxies: list[dict[str, str]] = []
    if schema is None:
        missing.append("qkv.tools.evaluate.schema")
    else:
        for name in FAITHFULNESS_FIELDS:
            proxies.append({"name": name, "measures": schema.model_fields[name].description or name})
    counter = optional("qkv.tools.evaluate.schema", "CounterfactualReport")
    bias = []
    if counter is not None:
        bias.append({"name": "counterfactual pairs",
                     "measures": (counter.__doc__ or "").strip().splitlines()[0] if counter.__doc__ else
                     "score change when a demographic term is swapped"})
    review = optional("qkv.tools.evaluate.schema", "ReviewSheet")
    hallucination = [
        "faithfulness proxies on every evaluation output against its source (the evaluator's numbers; they flag "
        "where to look, they do not judge)",
    ]
    if task.domain:
        hallucination.append(f"a blind review by {task.domain} experts of the first 50 outputs"
                             + (" (the evaluator writes the review sheet)" if review is not None else "")
                             + ": every material fact must be traceable to the source")
    return {
        "hallucination": hallucination,
        "proxies": proxies,
        "biased_token_distributions": [
            "distinct-2 and repetition rate over generations (degenerate, low-diversity output)",
            "token-level comparison of outputs for counterfactual inputs that differ only in a demographic term",
        ] + [f"{b['name']}: {b['measures']}" for b in bias],
        "mitigations": [
            "train on source-grounded targets only; drop training pairs whose targets state numbers or names "
            "absent from the source (the same proxy, applied to the data)",
            "bounded decoding (hard rule 3) and a length cap",
        ],
        "provenance": "measures defined by qkv.tools.evaluate (schema field descriptions)",
    }


def _warmup(hp: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameter tool's warm-up in the trainer's field of the same unit (a fraction of steps is
    warmup_ratio, a step count warmup_steps): the report and the runnable config say the same thing."""
    value, unit = hp.get("warmup"), (hp.get("units") or {}).get("warmup", "")
    if value is None:
        return {}
    if "fraction" in unit:
        return {"warmup_ratio": float(value)}
    if unit == "steps":
        return {"warmup_steps": int(value)}
    return {}


DATA_FORMAT = {"chat": "chat", "language-modelling": "text", "generation": "text", "code": "text"}


def _training_config(task, arch, eff, obj, calls: Calls, missing: list[str]) -> dict[str, Any]:
    if eff.get("method") in (None, "none") or task.mode == "pre-train":
        return {"available": False, "reason": "no fine-tuning run (inference only or pre-training)"}
    if obj["architecture"] != "decoder-only":
        return {"available": False, "reason": f"qkv's trainer fine-tunes causal (decoder-only) LMs; an "
                                              f"{obj['architecture']} model needs a task head (e.g. transformers "
                                              "Trainer with AutoModelForSequenceClassification / Seq2SeqLM)"}
    cfg_mod = optional("qkv.tools.train.config", "TrainConfig")
    to_yaml = optional("qkv.tools.train.config", "to_yaml")
    if cfg_mod is None or to_yaml is None:
        missing.append("qkv.tools.train.config")
        return {"available": False, "reason": "the trainer's config tool was not available"}
    hp = eff.get("hyperparameters") or {}
    req = eff.get("request") or {}
    gpu_attention = "flash_attention_2" if req.get("attention") == "flash" else "sdpa"
    targets = hp.get("lora_targets") or ["q_proj", "v_proj"]
    optimizer = {"paged_adamw_32bit": "paged-adamw"}.get(str(hp.get("optimizer")), "adamw")
    if req.get("optimizer") == "adamw-8bit":
        optimizer = "adamw-8bit"  # the plan's lever (the memory it was sized with)
    schedule = str(hp.get("schedule", "cosine"))
    # The tool words schedules ("linear decay", "cosine decay to 10% of peak"); the trainer takes their name.
    schedule = next((n for n in ("constant_with_warmup", "constant", "linear", "cosine") if schedule.startswith(n)),
                    "cosine")
    method = {"kind": eff["method"]}
    if eff["method"] in ("lora", "qlora"):
        method.update({"r": int(hp.get("lora_r", 8)), "alpha": int(hp.get("lora_alpha", 16)),
                       "dropout": float(hp.get("lora_dropout", 0.0)),
                       "target_modules": targets if isinstance(targets, list) else [targets],
                       "double_quant": bool(eff.get("double_quant")), "compute_dtype": "bfloat16"})
        if eff["method"] == "qlora" and req.get("kbit_fp32_upcast") is False:
            method["upcast_non_quantised"] = False
    raw = {
        "model": {"name": arch["base_model"], "dtype": "bfloat16", "attention": gpu_attention},
        "data": {"train": "data/train.jsonl", "eval": "data/eval.jsonl",
                 "format": DATA_FORMAT.get(obj["task"], "prompt_response")},
        "method": method,
        "optim": {"optimizer": optimizer, "lr": float(hp.get("learning_rate", 2e-4)), "schedule": schedule,
                  **_warmup(hp),
                  "weight_decay": float(hp.get("weight_decay", 0.0)),
                  "max_grad_norm": float(hp.get("max_grad_norm", 1.0))},
        "train": {"micro_batch": int(eff.get("micro_batch", 1)), "grad_accum": int(eff.get("grad_accum", 1)),
                  "seq_len": int(arch["train_seq"]), "grad_checkpointing": bool(eff.get("grad_checkpointing")),
                  # The memory levers the plan was sized with, so the config runs in the memory the report states.
                  **({"loss": "chunked", "loss_chunk_tokens": int(req["loss_chunk"])} if req.get("loss_chunk") else {}),
                  **({"offload_activations": True} if req.get("offload_activations") else {})},
        "run": {"output_dir": "runs/design", "gpu": task.gpu},
    }
    from qkv.tools.train.config import config_from_dict

    config = calls("train.config_from_dict", config_from_dict, raw)
    yaml = to_yaml(config, header=(
        f"qkv train --config this.yaml\nwritten by qkv design for: {task.text[:90]}\n"
        f"model.name is the catalog config of {arch['base_model']}: point it at the weights (a folder or .gguf); "
        "data.train/eval at your files"))
    return {"available": True, "config": config.model_dump(), "yaml": yaml,
            "provenance": "the trainer's TrainConfig (qkv.tools.train.config), filled from the efficiency step"}


def report_node(state: dict[str, Any]) -> dict[str, Any]:
    from qkv.agent.graph.narrate import narrate

    task = task_of(state)
    calls = Calls()
    missing: list[str] = []
    arch, eff, inf, obj = state["architecture"], state["efficiency"], state["inference"], state["objective"]
    resource = {
        "params": arch["params"], "active_params": arch["active_params"],
        "train_peak_vram_gib": eff.get("peak_vram_gib"), "train_fits": eff.get("fits"),
        "inference_peak_vram_gib": inf["peak_vram_gib"], "inference_fits": inf["fits"],
        "gpu": task.gpu, "gpus": task.gpus or 1, "usable_gib_per_gpu": eff.get("usable_gib") or None,
        "provenance": {"params": arch["provenance"].get("params", ""),
                       "train_peak_vram_gib": eff.get("provenance", {}).get("peak_vram_gib", ""),
                       "inference_peak_vram_gib": inf["provenance"]["peak_vram_gib"]},
    }
    if state.get("pretraining"):
        resource["pretraining"] = state["pretraining"]
    from qkv.agent.graph.schemas import Efficiency

    eff_out = {k: v for k, v in eff.items() if k in Efficiency.model_fields}  # the node's working keys stay behind
    eff_out.setdefault("gpu", task.gpu)
    eff_out.setdefault("gpus", task.gpus or 1)
    eff_out["pretraining"] = state.get("pretraining")
    report = {
        "task": state["task"], "assumptions": state.get("assumptions", []), "objective": obj,
        "architecture": {k: v for k, v in arch.items() if k != "config"}, "efficiency": eff_out,
        "tokenization": state["tokenization"], "inference": {k: v for k, v in inf.items() if k != "breakdown"},
        "resource_budget": resource, "layer_profile": state.get("layer_profile") or {},
        "ethics": _ethics(task, obj, calls, missing),
        "checks": _checks(task, arch, eff, inf, (state.get("layer_profile") or {}).get("hidden")),
        "training_config": _training_config(task, arch, eff, obj, calls, missing),
        "unavailable": unavailable(state, *missing),
    }
    report["resource_budget"]["inference_breakdown"] = inf.get("breakdown", [])
    model = DesignReport.model_validate(report)
    req = state.get("request") or {}
    model.narrative, model.narrative_source = calls("narrate", narrate, model, req.get("llm", "none"),
                                                    req.get("llm_model"))
    return {"report": model.model_dump(mode="json"), "calls": calls.items}
