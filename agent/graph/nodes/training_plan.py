"""The training plan of a design: precision for the GPU, the data budget (epochs, steps, warm-up, batch,
time), and the runnable config that trains exactly what the report states (or why none is written).
Every figure comes from a tool (qkv.tools.knowledge.budget / precision / hparams); this module only
assembles them."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.nodes.common import Calls


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


def pretraining_of(pre: dict[str, Any], eff: dict[str, Any], calls: Calls) -> dict[str, Any]:
    """The pre-training budget with its optimizer and warm-up steps at the recipe's batch in tokens."""
    out = dict(pre)
    hp = eff.get("hyperparameters") or {}
    if hp.get("batch_tokens") and (hp.get("units") or {}).get("warmup") == "tokens":
        from qkv.tools.knowledge.budget import pretrain_steps

        steps, warm, notes = calls("knowledge.pretrain_steps", pretrain_steps, out["tokens"],
                                   float(hp["batch_tokens"]), float(hp["warmup"]))
        out.update({"steps": steps.value, "warmup_steps": warm.value, "steps_formula": steps.formula,
                    "notes": [*out.get("notes", []), *notes]})
    return out


def precision_of(task, calls: Calls, missing: list[str]) -> dict[str, Any] | None:
    from qkv.tools.knowledge.precision import training_precision as fn
    return calls("knowledge.training_precision", fn, task.gpu, task.precision).model_dump()


def _stated(task, *fields: str) -> bool:
    return any(s.field in fields for s in task.stated)


def data_budget_of(task, arch, eff, obj, calls: Calls, missing: list[str]) -> dict[str, Any] | None:
    """Epochs, steps, warm-up, FLOPs and time from the stated data size (qkv.tools.knowledge.budget)."""
    import math

    if not task.data_examples or task.mode != "fine-tune" or eff.get("method") in (None, "none"):
        return None
    from qkv.tools.knowledge.budget import DataBudgetRequest, epochs_for
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
    recipe_batch = int(hp.get("batch_sequences") or micro * dp)
    accum = int(task.grad_accum) if task.grad_accum else max(1, math.ceil(recipe_batch / (micro * dp)))
    batch = micro * accum * dp
    encoder = obj["architecture"] == "encoder-only"
    epochs_fig = (analytic(task.epochs, "stated", unit="epochs") if task.epochs else
                  epochs_for(task.data_examples, encoder))
    full = eff.get("method") == "full"
    n = float(arch["active_params"])
    units = hp.get("units") or {}
    warm_ratio = float(hp["warmup"]) if "fraction" in units.get("warmup", "") else None
    warm_steps = int(hp["warmup"]) if units.get("warmup") == "steps" else None
    sources = [x.strip() for x in hp.get("provenance", {}).get("warmup", "").split(":")[-1].split(",") if x.strip()]
    from qkv.tools.knowledge.sources import SOURCES

    gpu = task.gpu
    try:
        from qkv.tools.knowledge.scaling import peak_flops_per_s

        peak_flops_per_s(gpu)
    except Exception:  # a GPU known only by its memory has no FLOP rate: no time bound
        gpu = None
    req = DataBudgetRequest(
        examples=task.data_examples, tokens_per_example=length, length_basis=basis, seq=int(arch["train_seq"]),
        batch_sequences=batch, epochs=int(epochs_fig.value), epochs_figure=epochs_fig,
        trainable_flops_per_token=(6 if full else 4) * n,
        flops_basis=("6N (full training: forward 2N + backward 4N)" if full else
                     "4N (frozen weights: forward 2N + activation gradients 2N, no weight gradients)"),
        gpu=gpu, gpus=dp, warmup_ratio=warm_ratio, warmup_steps=warm_steps,
        warmup_sources=[x for x in sources if x in SOURCES])
    b = calls("knowledge.data_budget", fn, req)
    return {
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
    }


DATA_FORMAT = {"chat": "chat", "language-modelling": "text", "generation": "text", "code": "text"}


def _trainer_arguments(eff, obj, budget: dict[str, Any] | None, precision: dict[str, Any] | None
                       ) -> dict[str, Any] | None:
    """transformers.TrainingArguments for an encoder (or seq2seq) task head: the report's batch, steps,
    warm-up and precision, so the run trains what the report plans."""
    hp = eff.get("hyperparameters") or {}
    if eff.get("fits") is False or "learning_rate" not in hp:
        return None
    dtype = (precision or {}).get("dtype", "bf16")
    args: dict[str, Any] = {
        "per_device_train_batch_size": int(budget["micro_batch"] if budget else eff.get("micro_batch", 1)),
        "gradient_accumulation_steps": int(budget["grad_accum"] if budget else eff.get("grad_accum", 1)),
        "learning_rate": float(hp["learning_rate"]), "weight_decay": float(hp.get("weight_decay", 0.0)),
        "lr_scheduler_type": "linear" if str(hp.get("schedule", "")).startswith("linear") else "cosine",
        "max_grad_norm": float(hp.get("max_grad_norm", 1.0)), "fp16": dtype == "fp16", "bf16": dtype == "bf16",
    }
    if budget:
        args.update({"num_train_epochs": budget["epochs"], "max_steps": budget["steps"],
                     "warmup_steps": budget["warmup_steps"]})
    elif "warmup" in hp and "fraction" in (hp.get("units") or {}).get("warmup", ""):
        args["warmup_ratio"] = float(hp["warmup"])
    if (obj.get("recipe") or {}).get("family") == "classification-multilabel":
        args["problem_type"] = "multi_label_classification"  # BCE-with-logits head (model config field)
    return args


def training_config(task, arch, eff, obj, calls: Calls, missing: list[str], budget: dict[str, Any] | None = None,
                     precision: dict[str, Any] | None = None) -> dict[str, Any]:
    if eff.get("method") in (None, "none") or task.mode == "pre-train":
        return {"available": False, "reason": "no fine-tuning run (inference only or pre-training)"}
    if eff.get("fits") is False:
        first = (eff.get("what_would_fit") or ["a plan that fits: see the efficiency section"])[0]
        return {"available": False, "reason": f"the plan does not fit in memory, so no runnable config is written; "
                                              f"change this first: {first}"}
    if obj["architecture"] != "decoder-only":
        out = {"available": False, "reason": f"qkv's trainer fine-tunes causal (decoder-only) LMs; an "
                                             f"{obj['architecture']} model needs a task head (e.g. transformers "
                                             "Trainer with AutoModelForSequenceClassification / Seq2SeqLM)"}
        args = _trainer_arguments(eff, obj, budget, precision)
        if args:
            out["hf_trainer_arguments"] = args
            out["provenance"] = ("transformers TrainingArguments from the hyperparameter tool, the data budget "
                                 "(qkv.tools.knowledge.budget) and the precision rule (qkv.tools.knowledge.precision)")
        return out
    from qkv.tools.train.config import to_yaml

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
    if eff["method"] in ("lora", "qlora") and "lora_r" not in hp:
        return {"available": False, "reason": "the hyperparameter tool gave no LoRA settings: no config without them"}
    dtype = (precision or {}).get("torch_dtype", "bfloat16")
    method = {"kind": eff["method"]}
    if eff["method"] in ("lora", "qlora"):
        method.update({"r": int(hp["lora_r"]), "alpha": int(hp["lora_alpha"]),
                       "dropout": float(hp.get("lora_dropout", 0.0)),
                       "target_modules": targets if isinstance(targets, list) else [targets],
                       "double_quant": bool(eff.get("double_quant")), "compute_dtype": dtype})
        if eff["method"] == "qlora" and req.get("kbit_fp32_upcast") is False:
            method["upcast_non_quantised"] = False
    if "learning_rate" not in hp:
        return {"available": False, "reason": "the hyperparameter tool gave no learning rate: no config without one"}
    schedule_steps: dict[str, Any] = {}
    if budget:
        # Steps, warm-up and batch from the data budget: the config trains what the report plans.
        schedule_steps = {"max_steps": int(budget["steps"]), "micro_batch": int(budget["micro_batch"]),
                          "grad_accum": int(budget["grad_accum"])}
    raw = {
        "model": {"name": arch["base_model"], "dtype": dtype, "attention": gpu_attention},
        "data": {"train": "data/train.jsonl", "eval": "data/eval.jsonl",
                 "format": DATA_FORMAT.get(obj["task"], "prompt_response")},
        "method": method,
        "optim": {"optimizer": optimizer, "lr": float(hp["learning_rate"]), "schedule": schedule,
                  **({"warmup_steps": int(budget["warmup_steps"])} if budget else _warmup(hp)),
                  "weight_decay": float(hp.get("weight_decay", 0.0)),
                  "max_grad_norm": float(hp.get("max_grad_norm", 1.0))},
        "train": {"micro_batch": int(eff.get("micro_batch", 1)), "grad_accum": int(eff.get("grad_accum", 1)),
                  **schedule_steps,
                  **({} if budget else {"max_steps": 0, "epochs": 1.0}),
                  "seq_len": int(arch["train_seq"]), "grad_checkpointing": bool(eff.get("grad_checkpointing")),
                  # The memory levers the plan was sized with, so the config runs in the memory the report states.
                  **({"loss": "chunked", "loss_chunk_tokens": int(req["loss_chunk"])} if req.get("loss_chunk") else {}),
                  **({"offload_activations": True} if req.get("offload_activations") else {})},
        "run": {"output_dir": "runs/design", "gpu": task.gpu,
                # ~20 evaluations and ~10 checkpoints over the planned run (the trainer's default is every 10 steps)
                **({"eval_interval": max(10, int(budget["steps"]) // 20),
                    "checkpoint_interval": max(10, int(budget["steps"]) // 10)} if budget else {})},
    }
    from qkv.tools.train.config import config_from_dict

    config = calls("train.config_from_dict", config_from_dict, raw)
    yaml = to_yaml(config, header=(
        f"qkv train --config this.yaml\nwritten by qkv design for: {task.text[:90]}\n"
        f"model.name is the catalog config of {arch['base_model']}: point it at the weights (a folder or .gguf); "
        "data.train/eval at your files"))
    derived = {
        "lr": f"hyperparameter tool: {hp.get('provenance', {}).get('learning_rate', 'qkv.tools.knowledge.hparams')}",
        **({"lora": f"r {hp['lora_r']}, alpha {hp['lora_alpha']}, targets from the hyperparameter tool: "
                    + hp.get("provenance", {}).get("lora_r", "")} if eff["method"] in ("lora", "qlora") else
           {"method": "full fine-tuning: the method.r/alpha fields are the trainer's defaults and are unused"}),
        "dtype": (precision or {}).get("reason", "bf16 (no GPU named)"),
        "steps": (f"data budget: {budget['steps']:,} steps = {budget['steps_per_epoch']:,} steps/epoch × "
                  f"{budget['epochs']} epochs" if budget else
                  "no data size stated: max_steps 0 and 1 epoch over your file (state the number of examples to "
                  "plan steps)"),
        "warmup": (f"data budget: {budget['warmup_steps']} steps ({budget['warmup_formula']})" if budget else
                   "hyperparameter tool's warm-up, as a ratio of the steps"),
        "batch": (f"global batch {budget['global_batch']} = micro {budget['micro_batch']} × accumulation "
                  f"{budget['grad_accum']} × {budget['dp_gpus']} GPUs (the recipe's {budget['recipe_batch']})"
                  if budget else "micro-batch × accumulation from the efficiency step"),
    }
    return {"available": True, "config": config.model_dump(), "yaml": yaml, "derived": derived,
            "provenance": "the trainer's TrainConfig (qkv.tools.train.config), filled from the efficiency step, "
                          "the data budget (qkv.tools.knowledge.budget) and the precision rule "
                          "(qkv.tools.knowledge.precision)"}
