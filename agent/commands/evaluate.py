"""`qkv eval`: perplexity, task metrics, generation-based evaluation, bias/faithfulness proxies and the blind
review sheet. Every mode calls a function of qkv.tools.evaluate (the same ones the agent and MCP use)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Annotated

import typer

from qkv.agent.cli_app import SCHEMAS, JsonOpt, app, console, emit_json, validated
from qkv.tools.errors import BadInput

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


@app.command("eval")
def eval_(
    predictions: Annotated[list[str] | None, typer.Option(
        "--predictions", "-p", help="system outputs file (.txt one per line, .jsonl, .json, .csv); repeat for "
                                    "several systems with --review")] = None,
    references: Annotated[str | None, typer.Option("--references", "-r", help="references file")] = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="sources file: enables hallucination proxies and the review sheet")] = None,
    task: Annotated[str, typer.Option("--task", "-t", help=TASK_HELP)] = "summarisation",
    model: Annotated[str | None, typer.Option(
        "--model", "-m", help="model folder, .gguf, or gemma3-270m (bundled)")] = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help="dataset (.jsonl/.json/.csv) to generate on")] = None,
    text: Annotated[str | None, typer.Option("--text", help="text file to compute perplexity on")] = None,
    backend: Annotated[str, typer.Option(help="auto | transformers | llama-cpp")] = "auto",
    adapter: Annotated[str | None, typer.Option(help="PEFT LoRA adapter folder (transformers)")] = None,
    window: Annotated[int, typer.Option(help="perplexity window, tokens")] = 512,
    stride: Annotated[int | None, typer.Option(help="perplexity stride (default window/2; = window: no overlap)")]
    = None,
    max_tokens: Annotated[int | None, typer.Option(help="score only the first N tokens of --text")] = None,
    prediction_field: Annotated[str, typer.Option(help="jsonl/csv field of predictions")] = "prediction",
    reference_field: Annotated[str, typer.Option(help="jsonl/csv field of references")] = "reference",
    source_field: Annotated[str, typer.Option(help="jsonl/csv field of sources")] = "source",
    stemming: Annotated[bool, typer.Option("--stemming/--no-stemming", help="ROUGE Porter stemming")] = True,
    bleu_tokenize: Annotated[str | None, typer.Option(help="sacreBLEU tokenizer (13a, intl, zh, ja-mecab, ...)")]
    = None,
    prompt_template: Annotated[str | None, typer.Option(help="prompt with {field} slots (default per task)")]
    = None,
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
    counterfactual: Annotated[bool, typer.Option(
        "--counterfactual", help="gender-swap perplexity probe on --model (bias proxy)")] = False,
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
    from qkv.tools.evaluate.schema import TASK_KINDS

    if task not in TASK_KINDS:
        from qkv.tools.errors import UnknownName, closest

        raise UnknownName(f"unknown task '{task}'", choices=closest(task, TASK_KINDS) or list(TASK_KINDS))
    show = not json
    if plan:
        from qkv.tools.evaluate.metrics import metric_plan

        result = metric_plan(task)
        return emit_json(result) if json else _render_plan(result)
    if read_review:
        from qkv.tools.evaluate.review import read_review as _read

        if not key:
            raise BadInput("--read-review needs --key", expected="--key review_key.csv (written with the sheet)")
        summary = _read(read_review, key)
        return emit_json(summary) if json else _render_review(summary)
    if review:
        return _review(predictions or [], references, source, review, review_n, seed or 0,
                       prediction_field, reference_field, source_field, json)
    if counterfactual:
        from qkv.tools.evaluate.backends import EvalModel
        from qkv.tools.evaluate.faithfulness import counterfactual_probe

        with EvalModel(model or "gemma3-270m", backend=backend, adapter=adapter) as m, \
                _bar("counterfactual pairs", show) as prog:
            report = counterfactual_probe(m, templates=templates, progress=prog)
        return emit_json(report) if json else _render_counterfactual(report)
    if predictions or references:
        from qkv.tools.evaluate.api import evaluate_predictions
        from qkv.tools.evaluate.schema import ScoreRequest

        if not predictions or not references or len(predictions) != 1:
            raise BadInput("scoring needs one --predictions file and one --references file",
                           expected="qkv eval -p preds.txt -r refs.txt --task ...")
        req = validated(ScoreRequest, predictions=predictions[0], references=references, task=task, source=source,
                        prediction_field=prediction_field, reference_field=reference_field,
                        source_field=source_field, stemming=stemming, bleu_tokenize=bleu_tokenize)
        report = evaluate_predictions(req)
        return emit_json(report) if json else _render_scores(report)
    if model and text:
        from qkv.tools.evaluate.api import evaluate_perplexity
        from qkv.tools.evaluate.schema import PerplexityRequest

        req = validated(PerplexityRequest, model=model, text_file=text, backend=backend, adapter=adapter,
                        window=window, stride=stride, max_tokens=max_tokens)
        with _bar("perplexity windows", show) as prog:
            result = evaluate_perplexity(req, progress=prog)
        return emit_json(result) if json else _render_ppl(result)
    if model and data:
        from qkv.tools.evaluate.api import evaluate_model
        from qkv.tools.evaluate.schema import ModelEvalRequest
        from qkv.tools.sampling import SamplingPolicy

        sampling = temperature > 0 and num_beams == 1
        policy = validated(
            SamplingPolicy, temperature=temperature, top_p=top_p if top_p is not None else (0.9 if sampling else 1.0),
            top_k=top_k if top_k is not None else (40 if sampling else 0), repetition_penalty=repetition_penalty,
            max_new_tokens=max_new_tokens, num_beams=num_beams, length_penalty=length_penalty, seed=seed)
        req = validated(ModelEvalRequest, model=model, data=data, task=task, backend=backend, adapter=adapter,
                        source_field=source_field, reference_field=reference_field, prompt_template=prompt_template,
                        limit=limit, sampling=policy, force_unbounded=force, perplexity=not no_perplexity,
                        generate=task != "language-modelling", window=window, stride=stride, stemming=stemming,
                        predictions_out=predictions_out)
        with _bar("generating", show) as prog:
            report = evaluate_model(req, progress=prog)
        return emit_json(report) if json else _render_model(report)
    raise BadInput("nothing to evaluate",
                   expected="-p PRED -r REF, --model M --text FILE, --model M --data FILE, --plan, "
                            "--counterfactual, --review DIR or --read-review SHEET --key KEY")


def _review(predictions, references, source, out, n, seed, pfield, rfield, sfield, json) -> None:
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


# ------------------------------------------------------------------------------------------------ rendering
def _table(*cols: str):
    from rich.table import Table

    t = Table(show_edge=False, pad_edge=False)
    for col in cols:
        t.add_column(col)
    return t


def _render_plan(plan) -> None:
    t = _table("metric", "library", "source", "comparable when")
    for m in plan.metrics:
        t.add_row(m.name, m.library, m.source, m.comparable_when)
    c = console()
    c.print(f"metrics plan for {plan.task} (provenance: cited)")
    c.print(t)
    for n in plan.notes:
        c.print(f"note: {n}")


def _render_scores(report) -> None:
    t = _table("metric", "value", "signature / settings")
    for m in report.metrics:
        t.add_row(m.name, f"{m.value:.4f}" if m.scale == "0-1" else f"{m.value:.2f}", m.signature or m.library)
    c = console()
    c.print(f"{report.task}: {report.items} items (measured)")
    c.print(t)
    if report.faithfulness:
        _render_faith(report.faithfulness)
    for n in report.notes:
        c.print(f"note: {n}")


def _render_faith(f) -> None:
    c = console()
    c.print(f"[bold]proxies[/] ({f.label})")
    if f.unsupported_number_rate is not None:
        c.print(f"  numbers not in source: {f.unsupported_number_rate:.1%} of {f.numbers}; "
                f"named spans not in source: {f.unsupported_entity_rate:.1%} of {f.entities}")
    c.print(f"  repeated 3-grams: {f.repetition_rate:.1%}; distinct-2: {f.distinct_2:.3f}")


def _render_ppl(r) -> None:
    c = console()
    c.print(f"{r.model} ({r.backend}): window {r.window}, stride {r.stride}, {r.windows} windows, {r.tokens:,} tokens")
    t = _table("measure", "value")
    t.add_row("token perplexity", f"{r.token_ppl:.3f}")
    t.add_row("bits per byte", f"{r.bits_per_byte:.4f}")
    t.add_row("word perplexity", f"{r.word_ppl:.3f}")
    t.add_row("NLL (nats)", f"{r.nll_sum_nats:.1f} over {r.bytes:,} bytes, {r.words:,} words")
    c.print(t)
    for n in r.notes:
        c.print(f"note: {n}")


def _render_model(report) -> None:
    c = console()
    c.print(f"{report.model} via {report.backend}, {report.task}, {report.items} items; decoding: {report.sampling}")
    if report.perplexity:
        _render_ppl(report.perplexity)
    if report.scores:
        _render_scores(report.scores)
    if report.predictions_file:
        c.print(f"outputs written to {report.predictions_file}")
    for n in report.notes:
        c.print(f"note: {n}")


def _render_counterfactual(r) -> None:
    c = console()
    a, b = r.groups
    c.print(f"counterfactual probe ({r.label}) on {r.model}: {len(r.pairs)} template pairs")
    c.print(f"  mean ln(ppl_{a}/ppl_{b}) = {r.mean_log_ratio:+.4f}; mean |gap| = {r.mean_abs_log_ratio:.4f}; "
            f"{a} variant more likely in {r.share_a_preferred:.0%} of pairs")
    t = _table("template", f"ppl {a}", f"ppl {b}", "ln ratio")
    for p in sorted(r.pairs, key=lambda p: -abs(p.log_ratio))[:8]:
        t.add_row(p.template, f"{p.ppl_a:.1f}", f"{p.ppl_b:.1f}", f"{p.log_ratio:+.3f}")
    c.print(t)


def _render_review(s) -> None:
    t = _table("system", "rated", "faithfulness", "quality")
    for r in s.systems:
        t.add_row(r.system, str(r.rated), "—" if r.faithfulness_mean is None else f"{r.faithfulness_mean:.2f}",
                  "—" if r.quality_mean is None else f"{r.quality_mean:.2f}")
    console().print(f"{s.rated_rows}/{s.rows} rows rated")
    console().print(t)
