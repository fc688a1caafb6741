"""`qkv audit`: how badly tokenizers fragment the user's own text, and what to do about it."""

from __future__ import annotations

from typing import Annotated

import typer

from qkv.agent.cli_app import SCHEMAS, JsonOpt, app, console, emit_json, validated

SCHEMAS["audit-request"] = "qkv.tools.tokenizer.schema:AuditRequest"
SCHEMAS["audit"] = "qkv.tools.tokenizer.schema:AuditReport"


@app.command()
def audit(
    tokenizers: Annotated[list[str], typer.Argument(
        help="catalog names with a shipped tokenizer (gpt2, qwen2.5-0.5b, gemma-3-270m, bert-base-uncased, "
             "smollm2-135m), tokenizer.json or a folder, a .gguf, a .tiktoken rank file, a SentencePiece .model, "
             "or a hub id with --online; the first is the base the recommendation is for")],
    corpus: Annotated[list[str], typer.Option(
        "--corpus", "-c", help="text file, folder, glob ('docs/**/*.md'), .jsonl/.csv, saved datasets folder, "
                               "or '-' for stdin; repeat for several")],
    terms: Annotated[str | None, typer.Option(help="file of terms of art, one per line, scored on their own")] = None,
    sample: Annotated[int | None, typer.Option(help="audit at most N documents (a fixed-seed subset of files)")]
    = None,
    context_window: Annotated[int | None, typer.Option(
        help="context window to check documents against (default: the model's own, when known)")] = None,
    column: Annotated[str | None, typer.Option(help="text column of JSONL/CSV/datasets input (default: 'text')")]
    = None,
    extend: Annotated[bool, typer.Option("--extend/--no-extend",
                                         help="really extend each tokenizer with its proposed tokens and re-measure")]
    = True,
    max_new_tokens: Annotated[int, typer.Option(help="at most N tokens proposed for extension")] = 500,
    min_count: Annotated[int, typer.Option(help="a word must occur this often to be proposed")] = 5,
    top: Annotated[int, typer.Option(help="most-fragmented frequent words listed per tokenizer")] = 20,
    online: Annotated[bool, typer.Option(help="allow loading tokenizers from the Hugging Face hub")] = False,
    json: JsonOpt = False,
) -> None:
    """Fertility, continued words, characters/bytes per token, unknown and byte-fallback rates, sequence-length
    inflation, the most fragmented frequent words, terms of art, a measured vocabulary-extension result and the
    context-window check; then keep / extend / adapter for the first tokenizer.

    Example: qkv audit gpt2 qwen2.5-0.5b bert-base-uncased -c contracts/ --terms legal-terms.txt
    Definitions follow Rust et al. (2021); `qkv schema audit` prints the JSON contract.
    """
    from qkv.tools.tokenizer.audit import AuditRequest
    from qkv.tools.tokenizer.audit import audit as run_audit

    req = validated(AuditRequest, tokenizers=tokenizers, corpus=corpus, terms=terms, sample=sample,
                    context_window=context_window, column=column, extend=extend, max_new_tokens=max_new_tokens,
                    min_count=min_count, top_words=top, online=online)
    report = _with_progress(run_audit, req)
    if json:
        emit_json(report)
        return
    render_audit(report, console())


def _with_progress(fn, req):
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    if not sys.stderr.isatty():
        return fn(req)
    with Progress(TextColumn("auditing"), BarColumn(), DownloadColumn(), TimeElapsedColumn(), console=err,
                  transient=True) as bar:
        task = bar.add_task("audit", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        return fn(req, progress)


def render_audit(report, out) -> None:
    """Rich tables for an AuditReport (also used by the TUI)."""
    from rich.table import Table

    c = report.corpus
    out.print(f"[bold]corpus[/]: {c.documents:,} documents, {c.words:,} words ({c.distinct_words:,} distinct), "
              f"{c.bytes / 1e6:,.2f} MB" + (" (sampled)" if c.sampled else ""))
    for s in c.skipped:
        out.print(f"  [yellow]skipped[/] {s.path}: {s.reason}")

    k = Table(title="tokenizers", show_edge=False, pad_edge=False)
    for col in ("tokenizer", "algorithm", "vocab", "source"):
        k.add_column(col, overflow="fold")
    for m in report.tokenizers:
        k.add_row(m.name, m.algorithm, f"{m.vocab_size:,}", m.source)
    out.print(k)

    t = Table(title="side by side (fewest tokens first)", show_edge=False, pad_edge=False)
    for col in ("#", "tokenizer", "tokens", "inflation", "fertility", "PCW", "chr/tok", "B/tok", "UNK", "byte-fb",
                "median doc", "window"):
        t.add_column(col, justify="left" if col == "tokenizer" else "right", no_wrap=True)
    by_name = {m.name: m for m in report.tokenizers}
    for r in report.ranking:
        m = by_name[r.tokenizer]
        t.add_row(str(r.rank), m.name, f"{m.tokens:,}", f"{m.inflation:.3f}", f"{m.fertility:.3f}", f"{m.pcw:.3f}",
                  f"{m.chars_per_token:.2f}", f"{m.bytes_per_token:.2f}", f"{m.unk_rate:.2%}",
                  f"{m.byte_fallback_rate:.2%}", f"{m.doc_tokens.median:,.0f}",
                  f"{m.context.window:,}" if m.context.window else "?")
    out.print(t)

    for m in report.tokenizers:
        if not m.fragmented:
            continue
        ft = Table(title=f"{m.name}: most fragmented frequent words", show_edge=False, pad_edge=False)
        for col in ("word", "count", "pieces", "excess tokens"):
            ft.add_column(col, justify="right" if col in ("count", "excess tokens") else "left")
        for f in m.fragmented[:10]:
            ft.add_row(f.word[:40], f"{f.count:,}", " | ".join(f.pieces)[:80], f"{f.excess_tokens:,}")
        out.print(ft)

    if any(m.terms for m in report.tokenizers):
        tt = Table(title="terms of art", show_edge=False, pad_edge=False)
        for col in ("tokenizer", "terms", "pieces/term", "split >= 3", "after extension", "worst terms"):
            tt.add_column(col)
        for m in report.tokenizers:
            if m.terms:
                worst = sorted(m.terms.terms, key=lambda x: -x.n_pieces)[:3]
                after = m.extension.terms_pieces_after if m.extension else None
                tt.add_row(m.name, str(m.terms.n_terms), f"{m.terms.pieces_per_term:.2f}",
                           f"{m.terms.share_split_3plus:.0%}", f"{after:.2f}" if after is not None else "—",
                           ", ".join(f"{w.term} ({w.n_pieces})" for w in worst))
        out.print(tt)

    if any(m.extension for m in report.tokenizers):
        et = Table(title="vocabulary extension (really added, corpus re-encoded)", show_edge=False, pad_edge=False)
        for col in ("tokenizer", "added", "tokens before -> after", "saving", "fertility before -> after",
                    "new params"):
            et.add_column(col)
        for m in report.tokenizers:
            e = m.extension
            if e:
                et.add_row(m.name, f"{e.added:,}", f"{e.tokens_before:,} -> {e.tokens_after:,}",
                           f"{e.sequence_saving:.1%}", f"{e.fertility_before:.3f} -> {e.fertility_after:.3f}",
                           f"{e.new_trainable_params:,}" if e.new_trainable_params is not None else "?")
        out.print(et)

    for f in report.context_flags:
        style = "red" if not f.typical_fits else "yellow" if f.docs_over else "green"
        out.print(f"[{style}]context[/] {f.tokenizer}: {f.note}")
    for r in report.recommendations:
        out.print(f"[bold]{r.tokenizer} -> {r.action.upper()}[/]: {r.reason}")
    out.print("[dim]fertility = word pieces per word; PCW = share of words split into >= 2 pieces "
              "(Rust et al. 2021); --json carries every definition with its source[/]")
