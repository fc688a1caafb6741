"""Auditor throughput against raw batch encoding of the same corpus, measured in the same run.

For each shipped tokenizer: the baseline is the library's own batch call over the whole corpus already in
memory, in one call (`tokenizers.Tokenizer.encode_batch_fast`, `tiktoken.Encoding.encode_ordinary_batch`):
its best case. The auditor is its measuring pass (`_measure`: read the files from disk in 1 MiB batches,
encode every document, count unknown and byte-fallback tokens and document lengths, count words once and
encode each distinct word). Tokenizer loading is excluded from both. Required: auditor tokens/s >= 0.8 x raw
tokens/s (<= 25% overhead) for each tokenizer audited alone and for all of them side by side.

Where the overhead goes (5 MB, 2 cores): the word count ~0.14 s CPU, the distinct-word encodes 0.06-0.2 s
(BERT through its pre-token parts, see docs/tokenizer-audit.md), the document counters ~0.04 s. The auditor
wins some of it back by calling tiktoken's Rust core from one thread per core (tiktoken's batch call starts
an 8-thread pool per call: 1.60 s CPU against 1.26 s for the same ids) and by keeping one batch per core in
flight. Each pair alternates which side goes first (ABBA), so a drift in machine speed favours neither.

    .venv/bin/python bench/tokenizer_throughput.py [--repeat 5] [--tokenizers gpt2 qwen2.5-0.5b ...] [--corpus ...]

The corpus is Python's standard library (code) plus /usr/share/common-licenses (legal text).
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import time
from pathlib import Path


def corpus_specs() -> list[str]:
    return [str(Path(sysconfig.get_paths()["stdlib"]) / "*.py"), "/usr/share/common-licenses/*"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="back-to-back (raw, auditor) pairs per row")
    ap.add_argument("--tokenizers", nargs="+", default=["gpt2", "qwen2.5-0.5b", "bert-base-uncased", "gemma-3-270m"])
    ap.add_argument("--corpus", nargs="+", default=None,
                    help="files/folders/globs (default: the standard library's top-level modules + licence texts)")
    args = ap.parse_args()

    from qkv.tools.tokenizer.corpus import Corpus
    from qkv.tools.tokenizer.load import load_tokenizer

    specs = args.corpus or corpus_specs()
    docs = list(Corpus.open(specs).documents())
    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(f"corpus: {len(docs)} documents, {mb:.2f} MB ({', '.join(specs)})")
    print("tok/s: best of N runs; ratios: median over N back-to-back pairs, raw and auditor taking turns "
          "to go first, of elapsed (wall) and process CPU seconds, all threads (cpu)")
    print(f"{'audit of':<34}{'tokens':>11}{'raw tok/s':>12}{'auditor tok/s':>15}{'wall ratio':>12}{'cpu ratio':>11}")
    toks = {ref: load_tokenizer(ref) for ref in args.tokenizers}
    rows = [([ref], [toks[ref]]) for ref in args.tokenizers]
    if len(toks) > 1:
        rows.append((["all side by side"], list(toks.values())))
    results = []
    for label, group in rows:
        results.append(_compare(" + ".join(label), group, docs, specs, args.repeat))
    worst = min(results)
    print(f"lowest wall ratio {worst:.2f} (required >= 0.80 for every audit): {'PASS' if worst >= 0.8 else 'FAIL'}")
    return 0 if worst >= 0.8 else 1


def _compare(label, group, docs, specs, repeat) -> float:
    """Raw and auditor timed back to back, `repeat` times; the ratio of each adjacent pair, then the median
    of those ratios (a load spike on this shared machine hits one pair, not the result)."""
    from statistics import median

    from qkv.tools.tokenizer.audit import _measure
    from qkv.tools.tokenizer.corpus import Corpus

    raws = [_raw(t) for t in group]
    walls, cpus, raw_best, aud_best = [], [], float("inf"), float("inf")
    n_raw = n_aud = 0
    def timed(fn):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - w0, time.process_time() - c0

    def raw():  # the baseline's best case: one library batch call over the whole corpus in memory
        return sum(len(ids) for enc in raws for ids in enc(docs))

    def auditor():
        return sum(p.docs.tokens for p in _measure(Corpus.open(specs), group, None, 0, 0)[2])

    for i in range(repeat):
        # alternate which side goes first (ABBA), so a drift in machine speed does not favour either side
        if i % 2:
            (n_aud, aud_w, aud_c), (n_raw, raw_w, raw_c) = timed(auditor), timed(raw)
        else:
            (n_raw, raw_w, raw_c), (n_aud, aud_w, aud_c) = timed(raw), timed(auditor)
        walls.append(raw_w / aud_w)
        cpus.append(raw_c / aud_c)
        raw_best, aud_best = min(raw_best, raw_w), min(aud_best, aud_w)
    assert n_raw == n_aud, f"{label}: auditor counted {n_aud} tokens, raw {n_raw}"
    wall, cpu = median(walls), median(cpus)
    print(f"{label:<34}{n_raw:>11,}{n_raw / raw_best:>12,.0f}{n_aud / aud_best:>15,.0f}"
          f"{wall:>12.2f}{cpu:>11.2f}   (wall ratios {min(walls):.2f}..{max(walls):.2f})", flush=True)
    return wall


def _raw(tok):
    """The library's own batch call on the same documents (no qkv code in the loop; Qwen's own tokenizer
    NFC-normalises its input, so its baseline does too)."""
    if tok.nfc:
        import unicodedata

        return lambda b: tok.backend.encode_ordinary_batch([unicodedata.normalize("NFC", t) for t in b])
    if tok.kind == "hf-tokenizers":
        return lambda b: [e.ids for e in tok.backend.encode_batch_fast(b, add_special_tokens=False)]
    if tok.kind == "tiktoken":
        return lambda b: tok.backend.encode_ordinary_batch(b)
    return lambda b: tok.backend.encode(b, out_type=int)


if __name__ == "__main__":
    sys.exit(main())
