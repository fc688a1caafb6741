"""The training plan of a design: precision for the GPU, the data budget (epochs, steps, warm-up, batch,
time), and the runnable config that trains exactly what the report states (or why none is written).
Every figure comes from a tool (qkv.tools.knowledge.budget / precision / hparams); this module only
assembles them."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.nodes.common import Calls
from qkv.agent.graph.sections import DataBudgetSection, Pretraining, TrainingConfigSection
from qkv.tools.knowledge.precision import PrecisionChoice


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


def pretraining_of(pre: dict[str, Any], eff: dict[str, Any], calls: Calls) -> Pretraining:
    """The pre-training budget with its optimizer and warm-up steps at the recipe's batch in tokens."""
    out = dict(pre)
    hp = eff.get("hyperparameters") or {}
    if hp.get("batch_tokens") and (hp.get("units") or {}).get("warmup") == "tokens":
        from qkv.tools.knowledge.budget import pretrain_steps

        steps, warm, notes = calls("knowledge.pretrain_steps", pretrain_steps, out["tokens"],
                                   float(hp["batch_tokens"]), float(hp["warmup"]))
        out.update({"steps": steps.value, "warmup_steps": warm.value, "steps_formula": steps.formula,
                    "notes": [*out.get("notes", []), *notes]})
    return Pretraining(**out)


def precision_of(task, calls: Calls) -> PrecisionChoice:
    """bf16 where the GPU runs it, fp16 mixed precision otherwise (qkv.tools.knowledge.precision)."""
    from qkv.tools.knowledge.precision import training_precision as fn

    return calls("knowledge.training_precision", fn, task.gpu, task.precision, task.mode == "pre-train")


def _stated(task, *fields: str) -> bool:
    return any(s.field in fields for s in task.stated)


def data_budget_of(task, arch, eff, obj, calls: Calls) -> DataBudgetSection | None:
    """Epochs, steps, warm-up, FLOPs and time from the stated data size (qkv.tools.knowledge.budget)."""
    if not task.data_examples or task.mode != "fine-tune" or eff.get("method") in (None, "none"):
        return None
    from qkv.tools.knowledge.budget import (
        DataBudgetRequest,
        accumulation,
        epochs_for,
        global_batch,
        trainable_flops_per_token,
    )
    from qkv.tools.knowledge.budget import data_budget as fn
    from qkv.tools.knowledge.schema import analytic

    hp = eff.get("hyperparameters") or {}
    recipe = obj.get("recipe") or {}
    if _stated(task, "doc_tokens", "max_doc_tokens"):
        length, basis = int(task.doc_tokens or task.max_doc_tokens), "stated"
    else:
        length = int(recipe.get("typical_tokens") or arch["train_seq"])
        basis = f"assumed: the {recipe.get('family', 'task')} recipe's planning length; state yours"
    micro = int(eff.get("micro_batch") or 1)
    dp = int(eff.get("gpus") or task.gpus or 1)
    recipe_batch = int(hp.get("batch_sequences") or global_batch(micro, 1, dp))
    accum = int(task.grad_accum) if task.grad_accum else accumulation(recipe_batch, micro, dp)
    batch = global_batch(micro, accum, dp)
    encoder = obj["architecture"] == "encoder-only"
    epochs_fig = (analytic(task.epochs, "stated", unit="epochs") if task.epochs else
                  epochs_for(task.data_examples, encoder))
    flops_per_token, flops_basis = trainable_flops_per_token(float(arch["active_params"]),
                                                             eff.get("method") == "full")
    units = hp.get("units") or {}
    warm_ratio = float(hp["warmup"]) if "fraction" in units.get("warmup", "") else None
    warm_steps = int(hp["warmup"]) if units.get("warmup") == "steps" else None
    sources = [x.strip() for x in hp.get("provenance", {}).get("warmup", "").split(":")[-1].split(",") if x.strip()]
    from qkv.tools.knowledge.sources import SOURCES

    req = DataBudgetRequest(
        examples=task.data_examples, tokens_per_example=length, length_basis=basis, seq=int(arch["train_seq"]),
        batch_sequences=batch, epochs=int(epochs_fig.value), epochs_figure=epochs_fig,
        trainable_flops_per_token=flops_per_token, flops_basis=flops_basis,
        gpu=task.gpu, gpus=dp, warmup_ratio=warm_ratio, warmup_steps=warm_steps,
        warmup_sources=[x for x in sources if x in SOURCES])
    b = calls("knowledge.data_budget", fn, req)
    return DataBudgetSection(**{
        "examples": task.data_examples, "tokens_per_example": length, "length_basis": basis,
        "tokens_per_epoch": b.tokens_per_epoch.value, "epochs": int(b.epochs.value),
        "epochs_source": ", ".join(b.epochs.sources) or "stated", "epochs_note": b.epochs.note,
        "steps_per_epoch": b.steps_per_epoch.value, "steps": b.steps.value, "warmup_steps": b.warmup_steps.value,
        "warmup_formula": b.warmup_steps.formula, "train_tokens": b.train_tokens.value,
        "train_flops": b.train_flops.value, "hours": b.hours.value if b.hours else None,
        "micro_batch": micro, "grad_accum": accum, "dp_gpus": dp, "global_batch": batch, "recipe_batch": recipe_batch,
        "fit_note": b.fit_note, "notes": b.notes, "sources": b.sources,
        "provenance": {"tokens_per_epoch": f"analytic: {b.tokens_per_epoch.formula}",
                       "steps": f"analytic: {b.steps.formula}", "train_flops": f"analytic: {b.train_flops.formula}",
                       "hours": f"analytic: {b.hours.formula}" if b.hours else "no FLOP rate for this GPU",
                       "global_batch": "analytic: micro-batch × accumulation × data-parallel GPUs; accumulation = "
                                       "ceil(recipe batch / (micro × GPUs))",
                       "epochs": f"{b.epochs.provenance}: {', '.join(b.epochs.sources) or 'stated'}"},
    })


DATA_FORMAT = {"chat": "chat", "language-modelling": "text", "generation": "text", "code": "text"}


def _trainer_arguments(eff, obj, budget: DataBudgetSection | None, precision: PrecisionChoice | None
                       ) -> dict[str, Any] | None:
    """transformers.TrainingArguments for an encoder (or seq2seq) task head: the report's batch, steps,
    warm-up and precision, so the run trains what the report plans."""
    hp = eff.get("hyperparameters") or {}
    if eff.get("fits") is False or any(k not in hp for k in ("learning_rate", "weight_decay", "max_grad_norm",
                                                               "schedule")):
        return None  # no scale-specific values from the tool: no arguments (hard rule 2)
    dtype = precision.dtype if precision else "bf16"
    args: dict[str, Any] = {
        "per_device_train_batch_size": int(budget.micro_batch if budget else eff.get("micro_batch", 1)),
        "gradient_accumulation_steps": int(budget.grad_accum if budget else eff.get("grad_accum", 1)),
        "learning_rate": float(hp["learning_rate"]), "weight_decay": float(hp["weight_decay"]),
        "lr_scheduler_type": "linear" if str(hp["schedule"]).startswith("linear") else "cosine",
        "max_grad_norm": float(hp["max_grad_norm"]), "fp16": dtype == "fp16", "bf16": dtype == "bf16",
    }
    if budget:
        args.update({"num_train_epochs": budget.epochs, "max_steps": budget.steps,
                     "warmup_steps": budget.warmup_steps})
    elif "warmup" in hp and "fraction" in (hp.get("units") or {}).get("warmup", ""):
        args["warmup_ratio"] = float(hp["warmup"])
    if (obj.get("recipe") or {}).get("family") == "classification-multilabel":
        args["problem_type"] = "multi_label_classification"  # BCE-with-logits head (model config field)
    return args


def _none(reason: str) -> TrainingConfigSection:
    return TrainingConfigSection(available=False, reason=reason)


def _refusal(task, eff, obj, budget: DataBudgetSection | None, precision: PrecisionChoice | None
             ) -> TrainingConfigSection | None:
    """Why no runnable qkv config is written (inference, pre-training, no fit, a non-causal model, or a
    hyperparameter the tool did not give: hard rule 2 forbids filling one in), or None."""
    if eff.get("method") in (None, "none") or task.mode == "pre-train":
        return _none("no fine-tuning run (inference only or pre-training)")
    if eff.get("fits") is False:
        first = (eff.get("what_would_fit") or ["a plan that fits: see the efficiency section"])[0]
        return _none(f"the plan does not fit in memory, so no runnable config is written; "
                     f"change this first: {first}")
    if obj["architecture"] != "decoder-only":
        out = TrainingConfigSection(available=False, reason=f"qkv's trainer fine-tunes causal (decoder-only) LMs; an "
                                             f"{obj['architecture']} model needs a task head (e.g. transformers "
                                             "Trainer with AutoModelForSequenceClassification / Seq2SeqLM)")
        args = _trainer_arguments(eff, obj, budget, precision)
        if args:
            out.hf_trainer_arguments = args
            out.provenance = ("transformers TrainingArguments from the hyperparameter tool, the data budget "
                                 "(qkv.tools.knowledge.budget) and the precision rule (qkv.tools.knowledge.precision)")
        return out
    hp = eff.get("hyperparameters") or {}
    if eff["method"] in ("lora", "qlora") and "lora_r" not in hp:
        return _none("the hyperparameter tool gave no LoRA settings: no config without them")
    if "learning_rate" not in hp:
        return _none("the hyperparameter tool gave no learning rate: no config without one")
    lacking = [k for k in ("schedule", "optimizer", "weight_decay", "max_grad_norm") if k not in hp]
    if eff["method"] in ("lora", "qlora"):
        lacking += [k for k in ("lora_alpha", "lora_dropout", "lora_targets") if k not in hp]
    if lacking:
        return _none(f"the hyperparameter tool gave no {', '.join(lacking)}: no config without them")
    return None


def _method_block(eff, hp: dict[str, Any], req: dict[str, Any], dtype: str) -> dict[str, Any]:
    """The config's `method` section: the kind, and the LoRA shape from the hyperparameter tool."""
    method: dict[str, Any] = {"kind": eff["method"]}
    if eff["method"] in ("lora", "qlora"):
        targets = hp["lora_targets"]
        method.update({"r": int(hp["lora_r"]), "alpha": int(hp["lora_alpha"]), "dropout": float(hp["lora_dropout"]),
                       "target_modules": targets if isinstance(targets, list) else [targets],
                       "double_quant": bool(eff.get("double_quant")), "compute_dtype": dtype})
        if eff["method"] == "qlora" and req.get("kbit_fp32_upcast") is False:
            method["upcast_non_quantised"] = False
    return method


def _raw_config(task, arch, eff, obj, budget: DataBudgetSection | None, dtype: str) -> dict[str, Any]:
    """The trainer's config as a dict: every value from the efficiency step, the hyperparameter tool and the
    data budget, so the config trains (and fits) what the report plans."""
    from qkv.tools.knowledge.budget import run_intervals

    hp = eff["hyperparameters"]
    req = eff.get("request") or {}
    from qkv.tools.train.arguments import HF_OPTIM

    # The tool names an HF optimizer ("paged_adamw_32bit") or describes AdamW in words; the config takes qkv's name.
    optimizer = {hf: ours for ours, hf in HF_OPTIM.items()}.get(str(hp["optimizer"]), "adamw")
    if req.get("optimizer") == "adamw-8bit":
        optimizer = "adamw-8bit"  # the plan's lever (the memory it was sized with)
    # The tool words schedules ("linear decay", "cosine decay to 10% of peak"); the trainer takes their name.
    schedule = next((n for n in ("constant_with_warmup", "constant", "linear", "cosine")
                     if str(hp["schedule"]).startswith(n)), "cosine")
    schedule_steps: dict[str, Any] = {}
    if budget:
        # Steps, warm-up and batch from the data budget: the config trains what the report plans.
        schedule_steps = {"max_steps": int(budget.steps), "micro_batch": int(budget.micro_batch),
                          "grad_accum": int(budget.grad_accum)}
    return {
        "model": {"name": arch["base_model"], "dtype": dtype,
                  "attention": "flash_attention_2" if req.get("attention") == "flash" else "sdpa"},
        "data": {"train": "data/train.jsonl", "eval": "data/eval.jsonl",
                 "format": DATA_FORMAT.get(obj["task"], "prompt_response")},
        "method": _method_block(eff, hp, req, dtype),
        "optim": {"optimizer": optimizer, "lr": float(hp["learning_rate"]), "schedule": schedule,
                  **({"warmup_steps": int(budget.warmup_steps)} if budget else _warmup(hp)),
                  "weight_decay": float(hp["weight_decay"]), "max_grad_norm": float(hp["max_grad_norm"])},
        "train": {"micro_batch": int(eff.get("micro_batch", 1)), "grad_accum": int(eff.get("grad_accum", 1)),
                  **schedule_steps,
                  **({} if budget else {"max_steps": 0, "epochs": 1.0}),
                  "seq_len": int(arch["train_seq"]), "grad_checkpointing": bool(eff.get("grad_checkpointing")),
                  # The memory levers the plan was sized with, so the config runs in the memory the report states.
                  **({"loss": "chunked", "loss_chunk_tokens": int(req["loss_chunk"])} if req.get("loss_chunk") else {}),
                  **({"offload_activations": True} if req.get("offload_activations") else {})},
        "run": {"output_dir": "runs/design", "gpu": task.gpu,
                # ~20 evaluations and ~10 checkpoints over the planned run (qkv.tools.knowledge.budget)
                **(run_intervals(int(budget.steps)) if budget else {})},
    }


def _derived(eff, budget: DataBudgetSection | None, precision: PrecisionChoice | None) -> dict[str, str]:
    """Where each of the config's values came from, in words."""
    hp = eff["hyperparameters"]
    return {
        "lr": f"hyperparameter tool: {hp.get('provenance', {}).get('learning_rate', 'qkv.tools.knowledge.hparams')}",
        **({"lora": f"r {hp['lora_r']}, alpha {hp['lora_alpha']}, targets from the hyperparameter tool: "
                    + hp.get("provenance", {}).get("lora_r", "")} if eff["method"] in ("lora", "qlora") else
           {"method": "full fine-tuning: the method.r/alpha fields are the trainer's defaults and are unused"}),
        "dtype": (precision.reason if precision else "bf16 (no GPU named)"),
        "steps": (f"data budget: {budget.steps:,} steps = {budget.steps_per_epoch:,} steps/epoch × "
                  f"{budget.epochs} epochs" if budget else
                  "no data size stated: max_steps 0 and 1 epoch over your file (state the number of examples to "
                  "plan steps)"),
        "warmup": (f"data budget: {budget.warmup_steps} steps ({budget.warmup_formula})" if budget else
                   "hyperparameter tool's warm-up, as a ratio of the steps"),
        "batch": (f"global batch {budget.global_batch} = micro {budget.micro_batch} × accumulation "
                  f"{budget.grad_accum} × {budget.dp_gpus} GPUs (the recipe's {budget.recipe_batch})"
                  if budget else "micro-batch × accumulation from the efficiency step"),
    }


def training_config(task, arch, eff, obj, calls: Calls, budget: DataBudgetSection | None = None,
                    precision: PrecisionChoice | None = None) -> TrainingConfigSection:
    """The runnable training config (the trainer's YAML) for the plan, or why there is none."""
    from qkv.tools.train.config import config_from_dict, to_yaml

    refusal = _refusal(task, eff, obj, budget, precision)
    if refusal is not None:
        return refusal
    # bf16 where no GPU is named: the precision tool only runs for a plan on a known device.
    dtype = (precision.torch_dtype if precision else "bfloat16")
    config = calls("train.config_from_dict", config_from_dict, _raw_config(task, arch, eff, obj, budget, dtype))
    yaml = to_yaml(config, header=(
        f"qkv train --config this.yaml\nwritten by qkv design for: {task.text[:90]}\n"
        f"model.name is the catalog config of {arch['base_model']}: point it at the weights (a folder or .gguf); "
        "data.train/eval at your files"))
    return TrainingConfigSection(
        available=True, config=config.model_dump(), yaml=yaml, derived=_derived(eff, budget, precision),
        provenance="the trainer's TrainConfig (qkv.tools.train.config), filled from the efficiency step, the data "
                   "budget (qkv.tools.knowledge.budget) and the precision rule (qkv.tools.knowledge.precision)")
