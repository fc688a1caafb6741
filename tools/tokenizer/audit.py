"""`audit`: how badly each tokenizer fragments the user's own text, and what to do about it.

One pass over the corpus encodes every document with every tokenizer (batched, in native code) and counts
words once; each distinct word is then encoded once per tokenizer for fertility and continued words. When
extension is on, each tokenizer is really extended with its most costly fragmented words and a second
pass re-encodes the corpus with the extended copies, so the saving in the report is measured."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from qkv.tools.errors import BadInput
from qkv.tools.tokenizer.metrics import WordStats
from qkv.tools.tokenizer.schema import (
    AuditReport,
    AuditRequest,
    ContextFlag,
    CorpusStats,
    ExtensionResult,
    FragmentedWord,
    RankRow,
    Recommendation,
    Skip,
    TermPieces,
    TermScore,
    TokenizerMetrics,
)

__all__ = ["AuditReport", "AuditRequest", "audit"]

Progress = Callable[[int, int], None]
BATCH_DOCS = 2048
# 1 MiB per batch: each native call has a fixed cost and ends with cores idling on its last documents;
# on 5 MB and 2 cores, 128 KiB batches ran at 0.80x raw speed, 256 KiB at 0.87x, 1 MiB at 0.89x
BATCH_CHARS = 1 << 20
MAX_DISTINCT = 1_000_000  # distinct words kept in memory before once-seen ones are folded in


@dataclass
class _Totals:
    documents: int = 0
    characters: int = 0
    bytes: int = 0


@dataclass
class _TokPass(WordStats):
    """One tokenizer's counters over one pass: its document counter plus the word statistics
    (`counts` = pieces per distinct word, filled from the final word-stats pass)."""

    docs: object = None  # metrics.DocCounter


def _batches(docs: Iterator[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    chars = 0
    for doc in docs:
        batch.append(doc)
        chars += len(doc)
        if len(batch) >= BATCH_DOCS or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _measure(corpus, toks, progress: Progress | None, offset: int, scale: int):
    """One pass: document counters per tokenizer, words counted once, word pieces per tokenizer."""
    from qkv.tools.tokenizer.metrics import DocCounter, WordCounter, fallback_mask, word_stats
    from qkv.tools.tokenizer.words import cpu_cores

    totals = _Totals()
    counter = WordCounter()
    passes = [_TokPass(docs=DocCounter(fallback_mask(t.fallback_ids, t.vocab_size), t.unk_id,
                                       unsafe_ascii=t.unsafe_ascii)) for t in toks]

    def tick(done: int, total: int) -> None:
        if progress:
            progress(offset + done, scale)

    def consume(batch: list[str], jobs) -> None:
        totals.documents += len(batch)
        totals.characters += sum(map(len, batch))
        totals.bytes += counter.update_batch(batch)
        for job, p in zip(jobs, passes, strict=True):
            p.docs.update(job.result(), batch)
        if counter.distinct > MAX_DISTINCT:  # bound memory: fold once-seen words into the totals now
            rare = counter.pop_rare()
            for tok, p in zip(toks, passes, strict=True):
                p.add(word_stats(tok.count_words, rare))

    # The encoders run in native code without the GIL, in worker threads, several batches ahead: while the
    # main thread reads the next batch and counts the words of the oldest one, one batch per core is being
    # encoded (a batch may hold one big document, which a library's batch call cannot split across cores).
    cores = cpu_cores()
    with ThreadPoolExecutor(cores) as pool:
        pending: deque[tuple[list[str], list]] = deque()
        for batch in _batches(corpus.documents(tick)):
            pending.append((batch, [pool.submit(tok.encode_batch, batch) for tok in toks]))
            if len(pending) > cores:
                consume(*pending.popleft())
        while pending:
            consume(*pending.popleft())
        words = counter.words()
        for tok, p in zip(toks, passes, strict=True):  # distinct words in chunks, one per core
            stats = word_stats(tok.count_words, words, pool.map)
            p.add(stats)
            p.counts = stats.counts
    return totals, words, passes


def _read_terms(path: str | None) -> list[str]:
    if path is None:
        return []
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"no such terms file: {path}", expected="a text file with one term of art per line") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise BadInput(f"cannot read terms file {path}: {exc}",
                       expected="a UTF-8 text file, one term per line") from None
    terms = [t.strip() for t in text.splitlines() if t.strip() and not t.lstrip().startswith("#")]
    if not terms:
        raise BadInput(f"terms file {path} lists no terms", expected="one term of art per line ('#' starts a comment)")
    return list(dict.fromkeys(terms))


def _score_terms(tok, terms: list[str]) -> TermScore | None:
    if not terms:
        return None
    encoded = tok.encode_batch([" " + t for t in terms])
    rows = [TermPieces(term=t, pieces=tok.pieces(ids), n_pieces=len(ids))
            for t, ids in zip(terms, encoded, strict=True)]
    n = len(rows)
    return TermScore(n_terms=n, pieces_per_term=sum(r.n_pieces for r in rows) / n,
                     share_split_3plus=sum(1 for r in rows if r.n_pieces >= 3) / n, terms=rows)


def _fragmented(tok, words: Counter, per_word: dict[str, int], top: int) -> list[FragmentedWord]:
    """Words seen at least twice, with a letter or digit (not '-----' rules), most excess tokens first."""
    ranked = sorted(((n * (per_word[w] - 1), n, w) for w, n in words.items()
                     if per_word[w] >= 2 and n >= 2 and any(c.isalnum() for c in w)), reverse=True)[:top]
    if not ranked:
        return []
    ids = tok.encode_batch([" " + w for _, _, w in ranked])
    return [FragmentedWord(word=w, count=n, pieces=tok.pieces(i), n_pieces=len(i), excess_tokens=x)
            for (x, n, w), i in zip(ranked, ids, strict=True)]


def _candidates(tok, words: Counter, per_word: dict[str, int], req: AuditRequest) -> list[str]:
    """Frequent fragmented words, most excess tokens first (one per normalised form)."""
    from qkv.tools.tokenizer.extend import candidate_form, single_pretoken

    ranked = sorted(((n * (per_word[w] - 1), w) for w, n in words.items()
                     if n >= req.min_count and per_word[w] >= 2 and any(c.isalnum() for c in w)), reverse=True)
    out, seen = [], set()
    for _, w in ranked:
        if len(out) >= req.max_new_tokens:
            break
        form = candidate_form(tok, w)
        if form in seen or not form or not single_pretoken(tok, w):
            continue
        seen.add(form)
        out.append(w)
    return out


def _context(tok, name: str, docs, req: AuditRequest) -> ContextFlag:
    import numpy as np

    window = req.context_window or tok.context_window
    source = "request (--context-window)" if req.context_window else tok.context_source
    lengths = np.frombuffer(docs.lengths, dtype=np.int64) if docs.lengths else np.zeros(0, dtype=np.int64)
    median = float(np.median(lengths)) if lengths.size else 0.0
    if window is None:
        return ContextFlag(tokenizer=name, window=None, window_source=None, median_doc_tokens=median,
                           note="no context window known for this tokenizer: pass --context-window to check")
    over = int((lengths > window).sum())
    share = over / lengths.size if lengths.size else 0.0
    fits = median <= window
    note = (f"the typical document ({median:,.0f} tokens) no longer fits the {window:,}-token window" if not fits
            else f"{over:,} of {lengths.size:,} documents exceed the {window:,}-token window" if over
            else f"every document fits the {window:,}-token window")
    return ContextFlag(tokenizer=name, window=window, window_source=source, docs_over=over, share_over=share,
                       median_doc_tokens=median, typical_fits=fits, note=note)


def _cost(tok, added: int) -> tuple[int | None, str]:
    hidden = tok.hidden_size
    if hidden is None:
        return None, (f"{added:,} new embedding rows (hidden size unknown for this tokenizer: rows x hidden new "
                      "parameters); `model.resize_token_embeddings(len(tokenizer), mean_resizing=True)` initialises "
                      "them to the mean of the existing embeddings, then they must be trained")
    rows = added * (1 if tok.tied_embeddings else 2)
    params = rows * hidden
    where = "tied input/output embedding" if tok.tied_embeddings else "input embedding and untied output head"
    return params, (f"{added:,} new rows in the {where} x hidden {hidden:,} = {params:,} new parameters to train "
                    f"(~{params * 16 / 2**20:,.1f} MiB of fp32 weights+grads+Adam state); "
                    "`model.resize_token_embeddings(len(tokenizer), mean_resizing=True)` initialises them to the "
                    "mean of the existing embeddings (Hewitt 2021), then train them (LoRA: add the embeddings to "
                    "modules_to_save)")


def _recommend(name: str, m: TokenizerMetrics, req: AuditRequest, best: str) -> Recommendation:
    ext = m.extension
    saving = ext.sequence_saving if ext else 0.0
    rule = (f"extend if the measured saving >= {req.extend_min_saving:.0%}; else adapter if fertility >= "
            f"{req.adapter_fertility:g}; else keep")
    ctx = "" if m.context.typical_fits else f"; context: {m.context.note}"
    if best != name and m.inflation >= 1.25:  # a much denser tokenizer was compared: say so whatever the action
        ctx += f"; note: '{best}' encodes this corpus in {1 / m.inflation:.0%} of the tokens"
    if ext and saving >= req.extend_min_saving:
        reason = (f"adding {ext.added:,} tokens shortens the corpus by {saving:.1%} ({ext.tokens_before:,} -> "
                  f"{ext.tokens_after:,} tokens, measured) and lowers fertility {ext.fertility_before:.3f} -> "
                  f"{ext.fertility_after:.3f}; cost: {ext.cost}{ctx}")
        return Recommendation(tokenizer=name, action="extend", n_tokens=ext.added, reason=reason, rule=rule)
    if ext:
        tried = f"the {ext.added:,} most costly fragmented words would save only {saving:.1%} of tokens"
    elif not req.extend or req.max_new_tokens == 0:
        tried = "vocabulary extension was not measured (extend=False)"
    else:
        tried = f"no fragmented word occurs {req.min_count}+ times to add"
    if m.fertility >= req.adapter_fertility:
        reason = (f"fertility {m.fertility:.3f} >= {req.adapter_fertility:g} but {tried}: the fragmentation is "
                  "spread over the long tail, so train a domain adapter (LoRA or continued pre-training on this "
                  f"text) instead of growing the vocabulary{ctx}")
        return Recommendation(tokenizer=name, action="adapter", reason=reason, rule=rule)
    below = f" (< {req.extend_min_saving:.0%})" if ext else ""
    reason = (f"fertility {m.fertility:.3f} (< {req.adapter_fertility:g}), PCW {m.pcw:.3f}, and {tried}{below}: "
              f"the tokenizer handles this domain{ctx}")
    return Recommendation(tokenizer=name, action="keep", reason=reason, rule=rule)


@dataclass
class _Measured:
    """What the corpus passes measured; the dicts are keyed by tokenizer index, for the extended ones only."""

    totals: _Totals
    words: Counter
    base: list[_TokPass]  # pass 1, one per tokenizer
    ext_toks: dict[int, object]  # the extended copies
    methods: dict[int, str]  # how each copy was extended
    cands: dict[int, list[str]]  # the words added to each
    after: dict[int, _TokPass]  # pass 2, with the extended copies


def _names(toks: list, req: AuditRequest) -> list[str]:
    """Display names of the tokenizers: their own, or what the user typed when two share one."""
    names = [t.name for t in toks]
    if len(set(names)) < len(names):  # two files in folders of one name: fall back to what the user typed
        names = list(req.tokenizers)
    return names


def _extensions(toks: list, words: Counter, base: list[_TokPass],
                req: AuditRequest) -> tuple[dict[int, object], dict[int, str], dict[int, list[str]]]:
    """(extended copies, methods, candidate words) per tokenizer index; empty when extension is off."""
    from qkv.tools.tokenizer.extend import extend

    ext_toks: dict[int, object] = {}
    methods: dict[int, str] = {}
    cands: dict[int, list[str]] = {}
    if req.extend and req.max_new_tokens > 0:
        for i, tok in enumerate(toks):
            cands[i] = _candidates(tok, words, base[i].counts, req)
            if cands[i]:
                ext_toks[i], methods[i] = extend(tok, cands[i])
    return ext_toks, methods, cands


def _measure_all(corpus, toks: list, req: AuditRequest, progress: Progress | None) -> _Measured:
    """Pass 1 with every tokenizer; pass 2 with the extended copies when extension is on."""
    passes = 2 if req.extend else 1
    total = corpus.total_bytes * passes  # bytes: progress runs over both passes
    totals, words, base = _measure(corpus, toks, progress, 0, total)
    if totals.documents == 0 or totals.characters == 0:
        skipped = "; ".join(f"{p}: {r}" for p, r in corpus.skipped[:5])
        raise BadInput("the corpus holds no text" + (f" (skipped {skipped})" if skipped else ""),
                       expected="UTF-8 text files, folders, globs, JSONL/CSV with a text column, or stdin")
    ext_toks, methods, cands = _extensions(toks, words, base, req)
    after = {}
    if ext_toks:
        idx = list(ext_toks)
        _, _, res = _measure(corpus, [ext_toks[i] for i in idx], progress, corpus.total_bytes, total)
        after = dict(zip(idx, res, strict=True))
    if progress:
        progress(total, total)
    return _Measured(totals=totals, words=words, base=base, ext_toks=ext_toks, methods=methods, cands=cands,
                     after=after)


def _extension(i: int, tok, ms: _Measured, terms: list[str], ctx: ContextFlag) -> ExtensionResult:
    """Tokenizer i before and after its measured extension (also sets ctx's documents over the window after)."""
    p, a, added = ms.base[i], ms.after[i], ms.cands[i]
    d = p.docs
    params, cost = _cost(tok, len(added))
    et = _score_terms(ms.ext_toks[i], terms)
    window = ctx.window
    if window is not None:
        import numpy as np

        ctx.docs_over_after_extension = int((np.frombuffer(a.docs.lengths, dtype=np.int64) > window).sum())
    return ExtensionResult(
        added=len(added), tokens=added, method=ms.methods[i], tokens_before=d.tokens,
        tokens_after=a.docs.tokens, sequence_saving=1 - a.docs.tokens / d.tokens if d.tokens else 0.0,
        fertility_before=p.fertility, fertility_after=a.fertility, pcw_before=p.pcw, pcw_after=a.pcw,
        chars_per_token_after=ms.totals.characters / a.docs.tokens if a.docs.tokens else 0.0,
        terms_pieces_after=et.pieces_per_term if et else None, new_embedding_rows=len(added),
        hidden_size=tok.hidden_size, new_trainable_params=params, cost=cost)


def _tokenizer_metrics(i: int, tok, name: str, ms: _Measured, terms: list[str], req: AuditRequest,
                       best: str) -> TokenizerMetrics:
    """Every measure of tokenizer i over the corpus, with its context check, extension and recommendation."""
    totals, p = ms.totals, ms.base[i]
    d = p.docs
    fewest = min(b.docs.tokens for b in ms.base)
    ctx = _context(tok, name, d, req)
    term_score = _score_terms(tok, terms)
    extension = _extension(i, tok, ms, terms, ctx) if i in ms.after else None
    m = TokenizerMetrics(
        name=name, kind=tok.kind, algorithm=tok.algorithm, source=tok.source, vocab_size=tok.vocab_size,
        documents=totals.documents, words=p.words, characters=totals.characters, bytes=totals.bytes,
        tokens=d.tokens, fertility=p.fertility, pcw=p.pcw,
        chars_per_token=totals.characters / d.tokens if d.tokens else 0.0,
        bytes_per_token=totals.bytes / d.tokens if d.tokens else 0.0,
        unk_tokens=d.unk, unk_rate=d.unk / d.tokens if d.tokens else 0.0,
        byte_fallback_tokens=d.fallback, byte_fallback_rate=d.fallback / d.tokens if d.tokens else 0.0,
        inflation=d.tokens / fewest if fewest else 1.0, doc_tokens=d.doc_lengths(),
        fragmented=_fragmented(tok, ms.words, p.counts, req.top_words), terms=term_score, extension=extension,
        context=ctx, recommendation=Recommendation(tokenizer=name, action="keep", reason="", rule=""))
    m.recommendation = _recommend(name, m, req, best)
    return m


def _ranking(metrics: list[TokenizerMetrics]) -> list[RankRow]:
    """The tokenizers from fewest tokens on the corpus to most."""
    order = sorted(range(len(metrics)), key=lambda i: metrics[i].tokens)
    return [RankRow(rank=r + 1, tokenizer=metrics[i].name, tokens=metrics[i].tokens,
                    inflation=metrics[i].inflation, fertility=metrics[i].fertility, pcw=metrics[i].pcw,
                    chars_per_token=metrics[i].chars_per_token) for r, i in enumerate(order)]


def _plot(metrics: list[TokenizerMetrics]) -> dict:
    """Per-measure series over the tokenizers, in report order, for the report's charts."""
    return {
        "tokenizers": [m.name for m in metrics],
        **{k: [getattr(m, k) for m in metrics] for k in ("fertility", "pcw", "chars_per_token", "bytes_per_token",
                                                         "unk_rate", "byte_fallback_rate", "inflation", "tokens")},
        "fertility_after_extension": [m.extension.fertility_after if m.extension else None for m in metrics],
        "tokens_after_extension": [m.extension.tokens_after if m.extension else None for m in metrics],
        "doc_tokens_median": [m.doc_tokens.median for m in metrics],
        "doc_tokens_p95": [m.doc_tokens.p95 for m in metrics],
        "context_window": [m.context.window for m in metrics],
    }


def audit(req: AuditRequest, progress: Progress | None = None) -> AuditReport:
    """Measure how each tokenizer fragments the corpus; rank them; recommend keep / extend / adapter.

    `progress(done, total)` is called with bytes read (total 0 when unknown, e.g. stdin)."""
    from qkv.tools.tokenizer.corpus import Corpus
    from qkv.tools.tokenizer.load import load_tokenizer
    from qkv.tools.tokenizer.metrics import DEFINITIONS

    toks = [load_tokenizer(ref, online=req.online) for ref in req.tokenizers]
    names = _names(toks, req)
    terms = _read_terms(req.terms)
    corpus = Corpus.open(req.corpus, column=req.column, sample=req.sample)
    try:
        ms = _measure_all(corpus, toks, req, progress)
    finally:
        corpus.close()

    best = names[min(range(len(toks)), key=lambda i: ms.base[i].docs.tokens)]
    metrics = [_tokenizer_metrics(i, tok, names[i], ms, terms, req, best) for i, tok in enumerate(toks)]
    totals, words = ms.totals, ms.words
    stats = CorpusStats(sources=req.corpus, documents=totals.documents, bytes=totals.bytes,
                        characters=totals.characters, words=sum(words.values()), distinct_words=len(words),
                        sampled=req.sample is not None, skipped=[Skip(path=p, reason=r) for p, r in corpus.skipped])
    return AuditReport(corpus=stats, tokenizers=metrics, ranking=_ranking(metrics), best=best,
                       recommendation=metrics[0].recommendation, recommendations=[m.recommendation for m in metrics],
                       context_flags=[m.context for m in metrics], definitions=DEFINITIONS, plot=_plot(metrics))
