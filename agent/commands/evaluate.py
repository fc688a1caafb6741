"""`qkv eval`: perplexity, task metrics, generation-based evaluation, bias/faithfulness proxies and the blind
review sheet. Every mode calls a function of qkv.tools.evaluate (the same ones the agent and MCP use)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from qkv.agent.cli_app import SCHEMAS, JsonOpt, app, console, emit_json, validated
from qkv.agent.commands.evaluate_render import (
    render_counterfactual,
    render_model,
    render_plan,
    render_ppl,
    render_review,
    render_scores,
)
from qkv.tools.errors import BadInput

if TYPE_CHECKING:
    from qkv.tools.sampling import SamplingPolicy

SCHEMAS.update({
    "eval-score-request": "qkv.tools.evaluate.schema:ScoreRequest",
    "eval-score": "qkv.tools.evaluate.schema:ScoreReport",
    "eval-model-request": "qkv.tools.evaluate.schema:ModelEvalRequest",
    "eval-model": "qkv.tools.evaluate.schema:ModelEvalReport",
    "eval-perplexity-request": "qkv.tools.evaluate.schema:PerplexityRequest",
    "eval-perplexity": "qkv.tools.evaluate.schema:PerplexityResult",
    "eval-plan": "qkv.tools.evaluate.schema:MetricPlan",
    "eval-counterfactual": "qkv.tools.evaluate.schema:CounterfactualReport",
    "eval-review": "qkv.tools.evaluate.schema:ReviewSheet",
    "eval-review-summary": "qkv.tools.evaluate.schema:ReviewSummary",
})

TASK_HELP = "summarisation | translation | qa | classification | language-modelling"


@contextmanager
def _bar(label: str, enabled: bool = True):
    """A rich progress bar on stderr; yields progress(done, total)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield progress


# The options of `qkv eval` whose definitions run over several lines.
_PredictionsOpt = Annotated[list[str] | None, typer.Option(
    "--predictions", "-p", help="system outputs file (.txt one per line, .jsonl, .json, .csv); repeat for "
                                "several systems with --review")]
_SourceOpt = Annotated[str | None, typer.Option(
    "--source", help="sources file: enables hallucination proxies and the review sheet")]
_ModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", help="model folder, .gguf, or gemma3-270m (bundled)")]
_StrideOpt = Annotated[int | None, typer.Option(help="perplexity stride (default window/2; = window: no overlap)")]
_BleuTokenizeOpt = Annotated[str | None, typer.Option(help="sacreBLEU tokenizer (13a, intl, zh, ja-mecab, ...)")]
_CounterfactualOpt = Annotated[bool, typer.Option(
    "--counterfactual", help="gender-swap perplexity probe on --model (bias proxy)")]


@app.command("eval")
def eval_(
    predictions: _PredictionsOpt = None,
    references: Annotated[str | None, typer.Option("--references", "-r", help="references file")] = None,
    source: _SourceOpt = None,
    task: Annotated[str, typer.Option("--task", "-t", help=TASK_HELP)] = "summarisation",
    model: _ModelOpt = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help="dataset (.jsonl/.json/.csv) to generate on")] = None,
    text: Annotated[str | None, typer.Option("--text", help="text file to compute perplexity on")] = None,
    backend: Annotated[str, typer.Option(help="auto | transformers | llama-cpp")] = "auto",
    adapter: Annotated[str | None, typer.Option(help="PEFT LoRA adapter folder (transformers)")] = None,
    window: Annotated[int, typer.Option(help="perplexity window, tokens")] = 512,
    stride: _StrideOpt = None,
    max_tokens: Annotated[int | None, typer.Option(help="score only the first N tokens of --text")] = None,
    prediction_field: Annotated[str, typer.Option(help="jsonl/csv field of predictions")] = "prediction",
    reference_field: Annotated[str, typer.Option(help="jsonl/csv field of references")] = "reference",
    source_field: Annotated[str, typer.Option(help="jsonl/csv field of sources")] = "source",
    stemming: Annotated[bool, typer.Option("--stemming/--no-stemming", help="ROUGE Porter stemming")] = True,
    bleu_tokenize: _BleuTokenizeOpt = None,
    prompt_template: Annotated[str | None, typer.Option(help="prompt with {field} slots (default per task)")] = None,
    limit: Annotated[int | None, typer.Option(help="evaluate the first N items only")] = None,
    temperature: Annotated[float, typer.Option(help="0 = greedy")] = 0.0,
    top_p: Annotated[float | None, typer.Option(help="nucleus mass when sampling (default 0.9)")] = None,
    top_k: Annotated[int | None, typer.Option(help="top-k when sampling (default 40)")] = None,
    repetition_penalty: Annotated[float, typer.Option(help="1.0 = off")] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(help="hard cap on generated tokens")] = 64,
    num_beams: Annotated[int, typer.Option(help="beam width (transformers backend)")] = 1,
    length_penalty: Annotated[float, typer.Option(help="beam search length penalty")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="sampling seed")] = 0,
    force: Annotated[bool, typer.Option("--force", help="allow an unbounded sampling policy")] = False,
    no_perplexity: Annotated[bool, typer.Option("--no-perplexity", help="skip perplexity in --data mode")] = False,
    predictions_out: Annotated[str | None, typer.Option(help="write generated outputs (.jsonl)")] = None,
    plan: Annotated[bool, typer.Option("--plan", help="print the metrics plan for --task and exit")] = False,
    counterfactual: _CounterfactualOpt = False,
    templates: Annotated[str | None, typer.Option(help="counterfactual template file (default: bundled)")] = None,
    review: Annotated[str | None, typer.Option(help="write a blind review sheet into this folder")] = None,
    review_n: Annotated[int, typer.Option(help="items in the review sheet")] = 50,
    read_review: Annotated[str | None, typer.Option(help="a filled review_sheet.csv to summarise")] = None,
    key: Annotated[str | None, typer.Option(help="the review_key.csv matching --read-review")] = None,
    json: JsonOpt = False,
) -> None:
    """Evaluate: perplexity (--model --text), a model on a dataset (--model --data), or predictions against
    references (-p -r), with the task metric computed the way papers compute it.

    Examples:
      qkv eval -p preds.txt -r refs.txt --task translation
      qkv eval -p out.jsonl -r out.jsonl --source out.jsonl
      qkv eval -m gemma3-270m --text essay.txt --window 512 --stride 256
      qkv eval -m gemma3-270m -d cnn.jsonl --limit 20 --max-new-tokens 80
      qkv eval -m gemma3-270m --counterfactual
      qkv eval -p a.txt -p b.txt -r refs.txt --source src.txt --review out/
    """
    _check_task(task)
    if plan:
        return _plan(task, json)
    if read_review:
        return _read_review(read_review, key, json)
    if review:
        return _review(predictions or [], references, source, review, review_n, seed or 0,
                       prediction_field, reference_field, source_field, json)
    if counterfactual:
        return _counterfactual(model or "gemma3-270m", backend, adapter, templates, json)
    if predictions or references:
        return _score(predictions, references, task, source, prediction_field, reference_field, source_field,
                      stemming, bleu_tokenize, json)
    if model and text:
        return _perplexity(model, text, backend, adapter, window, stride, max_tokens, json)
    if model and data:
        policy = _sampling(temperature, top_p, top_k, repetition_penalty, max_new_tokens, num_beams,
                           length_penalty, seed)
        return _model_eval(model, data, task, backend, adapter, source_field, reference_field, prompt_template,
                           limit, policy, force, no_perplexity, window, stride, stemming, predictions_out, json)
    raise BadInput("nothing to evaluate",
                   expected="-p PRED -r REF, --model M --text FILE, --model M --data FILE, --plan, "
                            "--counterfactual, --review DIR or --read-review SHEET --key KEY")


# ------------------------------------------------------------------------------------------------ the modes
def _check_task(task: str) -> None:
    from qkv.tools.evaluate.schema import TASK_KINDS

    if task not in TASK_KINDS:
        from qkv.tools.errors import UnknownName, closest

        raise UnknownName(f"unknown task '{task}'", choices=closest(task, TASK_KINDS) or list(TASK_KINDS))


def _plan(task: str, json: bool) -> None:
    """--plan: the metrics plan for the task."""
    from qkv.tools.evaluate.metrics import metric_plan

    result = metric_plan(task)
    return emit_json(result) if json else render_plan(result)


def _read_review(sheet: str, key: str | None, json: bool) -> None:
    """--read-review: summarise a filled review sheet with its key."""
    from qkv.tools.evaluate.review import read_review

    if not key:
        raise BadInput("--read-review needs --key", expected="--key review_key.csv (written with the sheet)")
    summary = read_review(sheet, key)
    return emit_json(summary) if json else render_review(summary)


def _counterfactual(model: str, backend: str, adapter: str | None, templates: str | None, json: bool) -> None:
    """--counterfactual: the gender-swap perplexity probe."""
    from qkv.tools.evaluate.backends import EvalModel
    from qkv.tools.evaluate.faithfulness import counterfactual_probe

    with EvalModel(model, backend=backend, adapter=adapter) as m, _bar("counterfactual pairs", not json) as prog:
        report = counterfactual_probe(m, templates=templates, progress=prog)
    return emit_json(report) if json else render_counterfactual(report)


def _score(predictions: list[str] | None, references: str | None, task: str, source: str | None,
           prediction_field: str, reference_field: str, source_field: str, stemming: bool,
           bleu_tokenize: str | None, json: bool) -> None:
    """-p -r: score one predictions file against its references."""
    from qkv.tools.evaluate.api import evaluate_predictions
    from qkv.tools.evaluate.schema import ScoreRequest

    if not predictions or not references or len(predictions) != 1:
        raise BadInput("scoring needs one --predictions file and one --references file",
                       expected="qkv eval -p preds.txt -r refs.txt --task ...")
    req = validated(ScoreRequest, predictions=predictions[0], references=references, task=task, source=source,
                    prediction_field=prediction_field, reference_field=reference_field,
                    source_field=source_field, stemming=stemming, bleu_tokenize=bleu_tokenize)
    report = evaluate_predictions(req)
    return emit_json(report) if json else render_scores(report)


def _perplexity(model: str, text: str, backend: str, adapter: str | None, window: int, stride: int | None,
                max_tokens: int | None, json: bool) -> None:
    """--model --text: sliding-window perplexity."""
    from qkv.tools.evaluate.api import evaluate_perplexity
    from qkv.tools.evaluate.schema import PerplexityRequest

    req = validated(PerplexityRequest, model=model, text_file=text, backend=backend, adapter=adapter,
                    window=window, stride=stride, max_tokens=max_tokens)
    with _bar("perplexity windows", not json) as prog:
        result = evaluate_perplexity(req, progress=prog)
    return emit_json(result) if json else render_ppl(result)


def _sampling(temperature: float, top_p: float | None, top_k: int | None, repetition_penalty: float,
              max_new_tokens: int, num_beams: int, length_penalty: float, seed: int | None) -> SamplingPolicy:
    """The decoding policy of --data mode: greedy or beam search by default, top-p 0.9 / top-k 40 when sampling."""
    from qkv.tools.sampling import SamplingPolicy

    sampling = temperature > 0 and num_beams == 1
    return validated(
        SamplingPolicy, temperature=temperature, top_p=top_p if top_p is not None else (0.9 if sampling else 1.0),
        top_k=top_k if top_k is not None else (40 if sampling else 0), repetition_penalty=repetition_penalty,
        max_new_tokens=max_new_tokens, num_beams=num_beams, length_penalty=length_penalty, seed=seed)


def _model_eval(model: str, data: str, task: str, backend: str, adapter: str | None, source_field: str,
                reference_field: str, prompt_template: str | None, limit: int | None, policy: SamplingPolicy,
                force: bool, no_perplexity: bool, window: int, stride: int | None, stemming: bool,
                predictions_out: str | None, json: bool) -> None:
    """--model --data: generate on a dataset, then score (and perplexity unless --no-perplexity)."""
    from qkv.tools.evaluate.api import evaluate_model
    from qkv.tools.evaluate.schema import ModelEvalRequest

    req = validated(ModelEvalRequest, model=model, data=data, task=task, backend=backend, adapter=adapter,
                    source_field=source_field, reference_field=reference_field, prompt_template=prompt_template,
                    limit=limit, sampling=policy, force_unbounded=force, perplexity=not no_perplexity,
                    generate=task != "language-modelling", window=window, stride=stride, stemming=stemming,
                    predictions_out=predictions_out)
    with _bar("generating", not json) as prog:
        report = evaluate_model(req, progress=prog)
    return emit_json(report) if json else render_model(report)


def _review(predictions: list[str], references: str | None, source: str | None, out: str, n: int, seed: int,
            pfield: str, rfield: str, sfield: str, json: bool) -> None:
    """--review: a blind review sheet of the systems' outputs, shuffled, with its key kept apart."""
    from pathlib import Path

    from qkv.tools.evaluate.data import read_column, read_references
    from qkv.tools.evaluate.review import make_review_sheet

    if not predictions or not source:
        raise BadInput("--review needs --source and at least one --predictions file",
                       expected="qkv eval -p sysA.txt -p sysB.txt -r refs.txt --source src.txt --review DIR")
    outputs: dict[str, list[str]] = {}
    for p in predictions:
        name = Path(p).stem
        while name in outputs:
            name += "'"
        outputs[name] = read_column(p, pfield)
    refs = [r[0] for r in read_references(references, rfield)] if references else None
    sheet = make_review_sheet(outputs, read_column(source, sfield), refs, out, n=n, seed=seed)
    if json:
        return emit_json(sheet)
    c = console()
    c.print(f"review sheet: {sheet.items} items × {len(sheet.systems)} systems, shuffled (seed {sheet.seed})")
    c.print(f"  fill in: {sheet.sheet_csv}\n  read:    {sheet.sheet_html}\n  key (keep from reviewers): "
            f"{sheet.key_file}")
