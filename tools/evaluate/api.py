"""The evaluator's entry points (pydantic in, pydantic out): the CLI, the agent, the MCP server and the TUI
call these. Heavy libraries load inside the backends, never at import."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from qkv.tools.errors import BadInput
from qkv.tools.evaluate.data import read_column, read_dataset, read_references, read_text
from qkv.tools.evaluate.metrics import metric_plan, score_task
from qkv.tools.evaluate.schema import (
    ModelEvalReport,
    ModelEvalRequest,
    PerplexityRequest,
    PerplexityResult,
    ScoreReport,
    ScoreRequest,
)

Progress = Callable[[int, int], None]


def evaluate_predictions(req: ScoreRequest) -> ScoreReport:
    """Score a predictions file against a references file with the task's metric (ROUGE for summarisation,
    BLEU/chrF for translation, EM/F1 for QA, accuracy/macro-F1 for classification); with a sources file,
    also the faithfulness proxies."""
    preds = read_column(req.predictions, req.prediction_field)
    refs = read_references(req.references, req.reference_field)
    if len(preds) != len(refs):
        raise BadInput(f"{req.predictions} has {len(preds)} predictions but {req.references} has {len(refs)} "
                       "references", expected="the same number of items, in the same order")
    metrics, per_item = score_task(req.task, preds, refs, stemming=req.stemming, bleu_tokenize=req.bleu_tokenize,
                                   lowercase=req.lowercase)
    faith = None
    notes = []
    if req.source:
        from qkv.tools.evaluate.faithfulness import faithfulness_proxies

        sources = read_column(req.source, req.source_field)
        if len(sources) != len(preds):
            raise BadInput(f"{req.source} has {len(sources)} sources but there are {len(preds)} predictions",
                           expected="one source per prediction")
        faith = faithfulness_proxies(preds, sources)
    elif req.task == "summarisation":
        notes.append("no source file given: hallucination proxies (unsupported numbers/entities) not computed")
    if sum(1 for p in preds if not p.strip()):
        notes.append(f"{sum(1 for p in preds if not p.strip())} empty prediction(s) scored as empty strings")
    return ScoreReport(task=req.task, items=len(preds), metrics=metrics, per_item=per_item, faithfulness=faith,
                       plan=metric_plan(req.task), notes=notes)


def evaluate_perplexity(req: PerplexityRequest, *, progress: Progress | None = None) -> PerplexityResult:
    """Strided perplexity, bits per byte and word perplexity of a text under a model (either backend)."""
    from qkv.tools.evaluate.backends import EvalModel

    if (req.text is None) == (req.text_file is None):
        raise BadInput("give exactly one of text and text_file",
                       expected="the text itself in text, or a UTF-8 file in text_file")
    text = req.text if req.text is not None else _text_of(req.text_file, req.text_field)
    with EvalModel(req.model, backend=req.backend, adapter=req.adapter, window=req.window) as m:
        return m.perplexity(text, window=req.window, stride=req.stride, max_tokens=req.max_tokens, progress=progress)


def evaluate_model(req: ModelEvalRequest, *, progress: Progress | None = None,
                   model=None) -> ModelEvalReport:
    """Evaluate a model on a dataset: perplexity over the references (a language-modelling view of the
    data) and, with `generate`, outputs generated under the stated SamplingPolicy and scored with the task
    metric. `model` may be an already-open EvalModel (reused, not closed)."""
    from qkv.tools.evaluate.backends import EvalModel
    from qkv.tools.evaluate.generate_eval import DEFAULT_TEMPLATES, generate_outputs

    if req.generate:
        req.sampling.ensure_bounded(force=req.force_unbounded)
    template = req.prompt_template or DEFAULT_TEMPLATES[req.task]
    slots = sorted(set(re.findall(r"{(\w+)}", template)) - {"source"})
    fields = [req.reference_field, *(slots if req.generate else [])]
    if req.generate and "{source}" in template:
        fields.append(req.source_field)
    items = read_dataset(req.data, list(dict.fromkeys(fields)))
    if req.limit:
        items = items[: req.limit]
    for it in items:
        if req.source_field in it:
            it.setdefault("source", it[req.source_field])
    refs = [read_refs_value(it[req.reference_field], req.data, i) for i, it in enumerate(items)]
    own = model is None
    m = model or EvalModel(req.model, backend=req.backend, adapter=req.adapter, window=req.window)
    notes: list[str] = []
    try:
        ppl = None
        if req.perplexity:
            corpus = "\n\n".join(r[0] for r in refs)
            ppl = m.perplexity(corpus, window=req.window, stride=req.stride, allow_short=True)
            notes.append("perplexity is over the first reference of every item, joined by blank lines")
        scores = out_file = None
        if req.generate:
            if req.task == "language-modelling":
                raise BadInput("language modelling has no generated outputs to score", expected="--no-generate")
            outputs = generate_outputs(m, items, task=req.task, policy=req.sampling, template=template,
                                       force=req.force_unbounded, progress=progress)
            metrics, per_item = score_task(req.task, outputs, refs, stemming=req.stemming)
            faith = None
            if "source" in items[0]:
                from qkv.tools.evaluate.faithfulness import faithfulness_proxies

                faith = faithfulness_proxies(outputs, [str(it["source"]) for it in items])
            scores = ScoreReport(task=req.task, items=len(items), metrics=metrics, per_item=per_item,
                                 faithfulness=faith, plan=metric_plan(req.task))
            if req.predictions_out:
                out_file = _write_predictions(req.predictions_out, items, outputs, refs)
            notes.append(f"prompt template: {template!r}")
    finally:
        if own:
            m.close()
    return ModelEvalReport(model=m.name, backend=m.backend, task=req.task, items=len(items),
                           sampling=req.sampling.describe(), perplexity=ppl, scores=scores,
                           predictions_file=out_file, notes=notes)


def read_refs_value(v, path, i: int) -> list[str]:
    from qkv.tools.evaluate.data import _many

    return _many(v, path, i)


def _text_of(path: str, field: str) -> str:
    if Path(path).suffix.lower() in (".jsonl", ".json", ".csv", ".tsv"):
        return "\n\n".join(read_column(path, field))
    return read_text(path)


def _write_predictions(path: str, items, outputs: list[str], refs: list[list[str]]) -> str:
    """jsonl with source, prediction and reference(s): the input format of evaluate_predictions."""
    from qkv.tools.atomic import write_text

    lines = [json.dumps({"source": it.get("source", ""), "prediction": o, "reference": r}, ensure_ascii=False)
             for it, o, r in zip(items, outputs, refs, strict=True)]
    return str(write_text(path, "\n".join(lines) + "\n"))
