"""Step 1, objective: understanding, generation or translation → the architecture family, the loss
and the metrics plan (the evaluator's plan when it is installed)."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.intake import objective_kind
from qkv.agent.graph.nodes.common import Calls, task_of, unavailable
from qkv.agent.graph.sections import Objective

FAMILY = {"understanding": "encoder-only", "generation": "decoder-only", "translation": "encoder-decoder"}
# Task label → the evaluator's task kind.
EVAL_TASK = {"summarisation": "summarisation", "translation": "translation", "qa": "qa",
             "classification": "classification", "ner": "classification"}
# Stable metric ids per task (the report's `objective.metrics`); the evaluator's plan
# (`objective.metrics_plan`) carries the libraries, conventions and sources behind them.
METRIC_IDS = {
    "summarisation": ["rouge1", "rouge2", "rougeL", "rougeLsum", "perplexity"],
    "translation": ["bleu", "chrf", "perplexity"],
    "qa": ["exact_match", "f1"],
    "classification": ["accuracy", "macro_f1"],
    "ner": ["entity_f1"],
    "retrieval": ["recall@k", "mrr"],
    "code": ["pass@k", "perplexity"],
    "chat": ["perplexity", "win rate against a reference model (human or judge)"],
}
LOSS = {
    "understanding": "cross-entropy over labels (or start/end positions for extractive QA) on the encoder's output",
    "generation": "token-level cross-entropy (next-token prediction), loss masked to the target tokens",
    "translation": "token-level cross-entropy on the decoder (teacher forcing), label smoothing 0.1 as in "
                   "Vaswani et al. 2017",
}
WHY = {
    "understanding": "the output is a label or a span of the input: a bidirectional encoder sees the whole "
                     "input at once (BERT-style) and needs no decoder",
    "generation": "the output is free text conditioned on the input: a causal decoder (GPT-style) generates it "
                  "token by token and reuses its KV cache",
    "translation": "input and output are different sequences in different languages: an encoder reads the "
                   "source, a decoder cross-attends to it (T5-style)",
}


# Families whose recipe states the loss for any architecture (the others depend on encoder vs decoder).
RECIPE_LOSS = ("classification-multilabel", "code", "pretraining-code", "chat", "summarisation", "pretraining")

ARTICLE = {"encoder-only": "an", "decoder-only": "a", "encoder-decoder": "an"}
WHY_FOR = {
    "decoder-only": "the answer is generated token by token from the input (and retrieved passages, for questions "
                    "over documents), so it is a generative design with factual decoding",
    "encoder-only": "a bidirectional encoder reads the whole input and a task head predicts labels or spans; "
                    "nothing is generated",
    "encoder-decoder": "the encoder reads the input and the decoder writes the output, cross-attending to it",
}


def model_family(name: str) -> str | None:
    """The architecture family of a model reference (encoder-only, decoder-only, encoder-decoder)."""
    from qkv.tools.arch import spec_from_config
    from qkv.tools.errors import QkvError
    from qkv.tools.modelref import resolve_model

    try:
        kind = spec_from_config(resolve_model(name).config).kind
    except QkvError:
        return None
    return {"encoder": "encoder-only", "decoder": "decoder-only", "encoder-decoder": "encoder-decoder"}[kind]


def objective_node(state: dict[str, Any]) -> dict[str, Any]:
    """Classify the objective and plan its metrics."""
    task = task_of(state)
    calls = Calls()
    label = task.objective or "generation"
    kind = objective_kind(label)
    why = WHY[kind]
    if task.mode == "pre-train":
        if kind != "translation":
            # A code corpus keeps its label: code metrics (pass@k) and code decoding follow from it.
            kind, label = "generation", "code" if "code" in (task.objective, task.domain) else "language-modelling"
            why = WHY[kind]
    elif task.base_model:
        family = model_family(task.base_model)
        if family and family != FAMILY[kind]:
            # The model the user named decides the family: Mistral answers questions generatively, BERT classifies.
            kind = {v: k for k, v in FAMILY.items()}[family]
            why = (f"{task.base_model} is {ARTICLE[family]} {family} model, so the {label} task is designed for it: "
                   + WHY_FOR[family])
    elif task.param_budget and task.param_budget >= 1.5e9 and kind == "understanding":
        kind = "generation"
        why = (f"a {task.param_budget / 1e9:g}B model is a decoder (no encoder of that size is in use): the "
               f"{label} task is done generatively, the answer or label written as text")
    from qkv.tools.evaluate.metrics import metric_plan
    from qkv.tools.knowledge.recipes import recipe_for

    eval_task = EVAL_TASK.get(label, "language-modelling")
    plan: list[dict[str, Any]] = []
    provenance: dict[str, str] = {}
    metrics = list(METRIC_IDS.get(label, []))
    if kind != "understanding" and "perplexity" not in metrics:
        metrics.append("perplexity")  # a generator's language-modelling quality, always reported
    result = calls("evaluate.metric_plan", metric_plan, eval_task)
    plan = [item.model_dump() for item in result.metrics
            if kind != "understanding" or not item.name.startswith("perplexity")]
    provenance["metrics"] = f"cited: qkv.tools.evaluate.metrics.metric_plan('{eval_task}')"
    loss = LOSS[kind]
    recipe: dict[str, Any] = {}
    rec = calls("knowledge.recipe_for", recipe_for, label, task.domain, task.mode, task.text, task.languages)
    if rec is not None:
        recipe = rec.model_dump()
        if rec.metric_ids:
            metrics = list(rec.metric_ids)
            # The evaluator's generic plan (accuracy for classification) gives way to the recipe's; its
            # perplexity entry stays for generators.
            plan = [item for item in plan if str(item.get("name", "")).lower().startswith("perplexity")]
        if rec.family in RECIPE_LOSS:
            loss = rec.loss
            provenance["loss"] = f"cited: qkv.tools.knowledge.recipes '{rec.family}' ({', '.join(rec.loss_sources)})"
        provenance["recipe"] = f"cited: qkv.tools.knowledge.recipes '{rec.family}' ({', '.join(rec.sources)})"
    section = Objective(kind=kind, architecture=FAMILY[kind], task=label, loss=loss, metrics=metrics,
                        metrics_plan=plan, recipe=recipe, rationale=why, provenance=provenance)
    return {"objective": section.model_dump(mode="json"), "unavailable": unavailable(state),
            "calls": calls.items}
