"""Step 1, objective: understanding, generation or translation → the architecture family, the loss
and the metrics plan (the evaluator's plan when it is installed)."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.intake import objective_kind
from qkv.agent.graph.nodes.common import Calls, optional, task_of, unavailable

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


def objective_node(state: dict[str, Any]) -> dict[str, Any]:
    """Classify the objective and plan its metrics."""
    task = task_of(state)
    calls = Calls()
    label = task.objective or "generation"
    kind = objective_kind(label)
    if task.mode == "pre-train":
        kind, label = "generation", "language-modelling"
    missing: list[str] = []
    plan_fn = optional("qkv.tools.evaluate.metrics", "metric_plan")
    eval_task = EVAL_TASK.get(label, "language-modelling")
    plan: list[dict[str, Any]] = []
    provenance: dict[str, str] = {}
    metrics = list(METRIC_IDS.get(label, []))
    if kind != "understanding" and "perplexity" not in metrics:
        metrics.append("perplexity")  # a generator's language-modelling quality, always reported
    if plan_fn is not None:
        result = calls("evaluate.metric_plan", plan_fn, eval_task)
        plan = [item.model_dump() for item in result.metrics
                if kind != "understanding" or not item.name.startswith("perplexity")]
        provenance["metrics"] = f"cited: qkv.tools.evaluate.metrics.metric_plan('{eval_task}')"
    else:
        missing.append("qkv.tools.evaluate.metrics.metric_plan")
        provenance["metrics"] = "convention (the evaluator's metric plan was not available)"
    update = {
        "kind": kind, "architecture": FAMILY[kind], "task": label, "loss": LOSS[kind], "metrics": metrics,
        "metrics_plan": plan, "rationale": WHY[kind], "provenance": provenance,
    }
    return {"objective": update, "unavailable": unavailable(state, *missing), "calls": calls.items}
