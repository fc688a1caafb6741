"""Evaluator: perplexity, task metrics computed the way the field computes them, faithfulness proxies.

Entry points (pydantic in, pydantic out; heavy libraries load only when a model is used):
evaluate_predictions(ScoreRequest) -> ScoreReport, evaluate_model(ModelEvalRequest) -> ModelEvalReport,
evaluate_perplexity(PerplexityRequest) -> PerplexityResult, metric_plan(task) -> MetricPlan,
and perplexity.perplexity_of(model, tokenizer, text) for an already-loaded transformers model."""

from qkv.tools.evaluate.api import evaluate_model, evaluate_perplexity, evaluate_predictions
from qkv.tools.evaluate.metrics import metric_plan
from qkv.tools.evaluate.schema import (
    MetricPlan,
    ModelEvalReport,
    ModelEvalRequest,
    PerplexityRequest,
    PerplexityResult,
    ScoreReport,
    ScoreRequest,
)

__all__ = [
    "MetricPlan",
    "ModelEvalReport",
    "ModelEvalRequest",
    "PerplexityRequest",
    "PerplexityResult",
    "ScoreReport",
    "ScoreRequest",
    "evaluate_model",
    "evaluate_perplexity",
    "evaluate_predictions",
    "metric_plan",
]
