"""`qkv eval`'s tables: the metrics plan, scores, perplexity, a model's evaluation, the counterfactual probe
and a review summary, as rich tables on stdout (--json prints the models instead)."""

from __future__ import annotations

from qkv.agent.cli_app import console


def table(*cols: str):
    from rich.table import Table

    t = Table(show_edge=False, pad_edge=False)
    for col in cols:
        t.add_column(col)
    return t


def render_plan(plan) -> None:
    t = table("metric", "library", "source", "comparable when")
    for m in plan.metrics:
        t.add_row(m.name, m.library, m.source, m.comparable_when)
    c = console()
    c.print(f"metrics plan for {plan.task} (provenance: cited)")
    c.print(t)
    for n in plan.notes:
        c.print(f"note: {n}")


def render_scores(report) -> None:
    t = table("metric", "value", "signature / settings")
    for m in report.metrics:
        t.add_row(m.name, f"{m.value:.4f}" if m.scale == "0-1" else f"{m.value:.2f}", m.signature or m.library)
    c = console()
    c.print(f"{report.task}: {report.items} items (measured)")
    c.print(t)
    if report.faithfulness:
        render_faith(report.faithfulness)
    for n in report.notes:
        c.print(f"note: {n}")


def render_faith(f) -> None:
    c = console()
    c.print(f"[bold]proxies[/] ({f.label})")
    if f.unsupported_number_rate is not None:
        c.print(f"  numbers not in source: {f.unsupported_number_rate:.1%} of {f.numbers}; "
                f"named spans not in source: {f.unsupported_entity_rate:.1%} of {f.entities}")
    c.print(f"  repeated 3-grams: {f.repetition_rate:.1%}; distinct-2: {f.distinct_2:.3f}")


def render_ppl(r) -> None:
    c = console()
    c.print(f"{r.model} ({r.backend}): window {r.window}, stride {r.stride}, {r.windows} windows, {r.tokens:,} tokens")
    t = table("measure", "value")
    t.add_row("token perplexity", f"{r.token_ppl:.3f}")
    t.add_row("bits per byte", f"{r.bits_per_byte:.4f}")
    t.add_row("word perplexity", f"{r.word_ppl:.3f}")
    t.add_row("NLL (nats)", f"{r.nll_sum_nats:.1f} over {r.bytes:,} bytes, {r.words:,} words")
    c.print(t)
    for n in r.notes:
        c.print(f"note: {n}")


def render_model(report) -> None:
    c = console()
    c.print(f"{report.model} via {report.backend}, {report.task}, {report.items} items; decoding: {report.sampling}")
    if report.perplexity:
        render_ppl(report.perplexity)
    if report.scores:
        render_scores(report.scores)
    if report.predictions_file:
        c.print(f"outputs written to {report.predictions_file}")
    for n in report.notes:
        c.print(f"note: {n}")


def render_counterfactual(r) -> None:
    c = console()
    a, b = r.groups
    c.print(f"counterfactual probe ({r.label}) on {r.model}: {len(r.pairs)} template pairs")
    c.print(f"  mean ln(ppl_{a}/ppl_{b}) = {r.mean_log_ratio:+.4f}; mean |gap| = {r.mean_abs_log_ratio:.4f}; "
            f"{a} variant more likely in {r.share_a_preferred:.0%} of pairs")
    t = table("template", f"ppl {a}", f"ppl {b}", "ln ratio")
    for p in sorted(r.pairs, key=lambda p: -abs(p.log_ratio))[:8]:
        t.add_row(p.template, f"{p.ppl_a:.1f}", f"{p.ppl_b:.1f}", f"{p.log_ratio:+.3f}")
    c.print(t)


def render_review(s) -> None:
    t = table("system", "rated", "faithfulness", "quality")
    for r in s.systems:
        t.add_row(r.system, str(r.rated), "—" if r.faithfulness_mean is None else f"{r.faithfulness_mean:.2f}",
                  "—" if r.quality_mean is None else f"{r.quality_mean:.2f}")
    console().print(f"{s.rated_rows}/{s.rows} rows rated")
    console().print(t)
