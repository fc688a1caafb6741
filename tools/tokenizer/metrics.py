"""The measurements: word counts shared by all tokenizers, per-tokenizer document counters, and the
metric definitions stated in every report.

Words follow Rust et al. (2021): fertility and proportion of continued words are computed per word, each
word encoded on its own. Here a word is a maximal run of letters/digits/underscore, or of other
non-space symbols (punctuation stands apart, as in the treebank words Rust et al. used); words are
encoded after one space, as they appear in running text. Each distinct word is encoded once per
tokenizer and weighted by its count, so the word pass costs a small fraction of the document pass."""

from __future__ import annotations

import re
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from qkv.tools.tokenizer.schema import DocLengths, MetricDefinition

WORD_RE = re.compile(r"\w+|[^\w\s]+")
_WORD_CHAR = re.compile(r"\w")
_SPACE_CHAR = re.compile(r"\s")
RUST_2021 = ("Rust et al. 2021, 'How Good is Your Tokenizer? On the Monolingual Performance of Multilingual "
             "Language Models', ACL (adapter-hub/hgiyt tokenization_metrics)")

DEFINITIONS = [
    MetricDefinition(name="fertility", definition="word pieces per word: sum over words of the tokens the word is "
                     "split into, divided by the number of words", source=RUST_2021, provenance="cited"),
    MetricDefinition(name="pcw", definition="proportion of continued words: share of words split into >= 2 pieces",
                     source=RUST_2021, provenance="cited"),
    MetricDefinition(name="word", definition="a maximal run of letters/digits/underscore or of other non-space "
                     "symbols, encoded after one space as in running text, without special tokens",
                     source="qkv (Rust et al. use treebank words; punctuation stands apart as there)",
                     provenance="rule"),
    MetricDefinition(name="chars_per_token", definition="Unicode characters of the documents / tokens of the "
                     "documents (whole documents encoded, no special tokens)", source="measured",
                     provenance="measured"),
    MetricDefinition(name="bytes_per_token", definition="UTF-8 bytes of the documents / tokens of the documents",
                     source="measured", provenance="measured"),
    MetricDefinition(name="unk_rate", definition="share of document tokens equal to the unknown token",
                     source="measured", provenance="measured"),
    MetricDefinition(name="byte_fallback_rate", definition="share of document tokens that stand for raw bytes of a "
                     "split character: SentencePiece <0xNN> byte pieces, or byte-level BPE tokens whose bytes are "
                     "not valid UTF-8 on their own", source="measured", provenance="measured"),
    MetricDefinition(name="inflation", definition="sequence-length inflation: document tokens / document tokens of "
                     "the tokenizer with the fewest tokens on the same corpus", source="measured",
                     provenance="measured"),
    MetricDefinition(name="fragmented word", definition="a word split into >= 2 pieces, ranked by excess tokens = "
                     "count x (pieces - 1), the tokens saved if it were one token", source="qkv", provenance="rule"),
    MetricDefinition(name="terms", definition="each line of --terms encoded on its own after a space: mean pieces "
                     "per term and share of terms split into >= 3 pieces", source="qkv", provenance="measured"),
    MetricDefinition(name="sequence_saving", definition="1 - tokens after extension / tokens before, the corpus "
                     "re-encoded with the extended copy", source="measured", provenance="measured"),
]


def split_words(text: str) -> list[str]:
    """The words of a text (see the module docstring)."""
    return WORD_RE.findall(text)


def _byte_classes() -> tuple[np.ndarray, np.ndarray]:
    """bool[256] per word pass: the bytes a run of that pass is made of. ASCII bytes are classified by the
    regex itself (`\\w`, `\\s`; so 0x1C-0x1F are spaces, as to `\\s`); bytes >= 0x80 (UTF-8 of non-ASCII
    characters) belong to both passes and are resolved later by the regex."""
    letters, symbols = np.ones(256, dtype=bool), np.ones(256, dtype=bool)
    for b in range(128):
        ch = chr(b)
        letters[b] = bool(_WORD_CHAR.match(ch))
        symbols[b] = not letters[b] and not _SPACE_CHAR.match(ch)
    return letters, symbols


_IN_LETTERS, _IN_SYMBOLS = _byte_classes()
_WORD_RUN = re.compile(r"\w+")
_SYMBOL_RUN = re.compile(r"[^\w\s]+")


class WordCounter:
    """Word frequencies of the corpus, tokenizer-independent, counted without a regex pass.

    `\\w+|[^\\w\\s]+` matches exactly the maximal runs of word characters and the maximal runs of other
    non-space characters. On the UTF-8 bytes, two passes cut the text into maximal runs of (ASCII word bytes
    | non-ASCII bytes) and of (ASCII symbol bytes | non-ASCII bytes), counted by `runs.RunCounter` (numpy,
    exact, without holding the GIL). A run without non-ASCII bytes is already a word (its neighbours are
    ASCII spaces or bytes of the other class). A run with them is bounded by ASCII bytes of the other class
    or spaces, so its word runs (letters pass) or symbol runs (symbols pass) are maximal in the text too:
    the regex splits each such distinct run once, at the end, weighted by its count."""

    def __init__(self) -> None:
        from qkv.tools.tokenizer.runs import RunCounter

        self._letters = RunCounter(_IN_LETTERS)  # runs of the letters pass -> count
        self._symbols = RunCounter(_IN_SYMBOLS)

    def update_batch(self, texts: Sequence[str]) -> int:
        """Count the words of several documents; returns their UTF-8 size in bytes (documents never share
        a word: the newline that joins them is a space)."""
        from qkv.tools.tokenizer.runs import Packed

        data = "\n".join(texts).encode("utf-8", "surrogatepass")
        packed = Packed(data)
        self._letters.add(packed)
        self._symbols.add(packed)
        return len(data) - max(len(texts) - 1, 0)

    def update(self, text: str) -> None:
        self.update_batch([text])

    @property
    def distinct(self) -> int:
        """Distinct runs held (an upper bound on the memory the counts take)."""
        return len(self._letters) + len(self._symbols)

    def pop_rare(self) -> Counter[str]:
        """Remove and return the words of the runs seen once (to bound memory on huge corpora)."""
        out: Counter[str] = Counter()
        _resolve(out, self._letters.pop_rare(), _WORD_RUN)
        _resolve(out, self._symbols.pop_rare(), _SYMBOL_RUN)
        return out

    def words(self) -> Counter[str]:
        """Words with their counts."""
        out: Counter[str] = Counter()
        for runs, pattern in ((self._letters, _WORD_RUN), (self._symbols, _SYMBOL_RUN)):
            short, counts = runs.short_runs()  # distinct ASCII runs: each is one word
            out.update(dict(zip(short, counts, strict=True)))
            _resolve(out, runs.long, pattern)
        return out


def _resolve(out: Counter[str], runs: dict[bytes, int], pattern: re.Pattern[str]) -> None:
    """Add the words of counted runs to `out`: an ASCII run is one word (decoded all at once: they are
    ~99% of runs); a run with non-ASCII bytes is split by the regex, each word weighted by the run's count."""
    plain = [r for r in runs if r.isascii()]
    if plain:
        decoded = b"\n".join(plain).decode("ascii").split("\n")  # runs hold no newline (a space)
        out.update(dict(zip(decoded, map(runs.__getitem__, plain), strict=True)))
    for run, n in runs.items():
        if not run.isascii():
            for w in pattern.findall(run.decode("utf-8", "surrogatepass")):
                out[w] += n


@dataclass
class DocCounter:
    """Per-tokenizer document counters, updated batch by batch."""

    vocab_mask: np.ndarray  # bool[vocab]: True for byte-fallback ids
    unk_id: int | None
    tokens: int = 0
    unk: int = 0
    fallback: int = 0
    lengths: array = field(default_factory=lambda: array("q"))

    unsafe_ascii: str = ""  # ASCII characters that encode to byte-fallback ids

    def update(self, ids: list[list[int]], texts: Sequence[str]) -> None:
        lens = [len(x) for x in ids]
        self.tokens += sum(lens)
        self.lengths.extend(lens)
        if self.unk_id is not None:
            self.unk += sum(x.count(self.unk_id) for x in ids)
        if self.vocab_mask.any():
            # Byte-fallback tokens only come from characters outside the vocabulary, so an ASCII document
            # without any of the (few) unsafe ASCII characters needs no per-token check.
            unsafe = self.unsafe_ascii
            check = [x for x, t in zip(ids, texts, strict=True)
                     if not t.isascii() or any(c in t for c in unsafe)]
            n = sum(map(len, check))
            if not n:
                return
            flat = np.fromiter(chain.from_iterable(check), dtype=np.int64, count=n)
            inside = flat[flat < len(self.vocab_mask)]
            self.fallback += int(self.vocab_mask[inside].sum())

    def doc_lengths(self) -> DocLengths:
        if not self.lengths:
            return DocLengths(mean=0.0, median=0.0, p95=0.0, max=0)
        arr = np.frombuffer(self.lengths, dtype=np.int64)
        return DocLengths(mean=float(arr.mean()), median=float(np.median(arr)), p95=float(np.percentile(arr, 95)),
                          max=int(arr.max()))


def fallback_mask(ids: frozenset[int], size: int) -> np.ndarray:
    mask = np.zeros(max(size, max(ids, default=-1) + 1), dtype=bool)
    if ids:
        mask[list(ids)] = True
    return mask


@dataclass
class WordStats:
    words: int = 0
    pieces: int = 0
    continued: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # pieces per distinct word

    def add(self, other: WordStats) -> None:
        """Accumulate another pass's numerators (the word counts are folded in chunks to bound memory)."""
        self.words += other.words
        self.pieces += other.pieces
        self.continued += other.continued

    @property
    def fertility(self) -> float:
        return self.pieces / self.words if self.words else 0.0

    @property
    def pcw(self) -> float:
        return self.continued / self.words if self.words else 0.0


def word_stats(count_words, words: Counter[str], pmap=map) -> WordStats:
    """Fertility/PCW numerators: each distinct word encoded once (after a space), weighted by its count.
    `count_words(texts, pmap) -> list of piece counts` (Tok.count_words); `pmap` maps its chunks (an
    executor's map: the encoders release the GIL)."""
    distinct = list(words)
    pieces = count_words([" " + w for w in distinct], pmap)
    n = np.fromiter(words.values(), dtype=np.int64, count=len(distinct))
    p = np.asarray(pieces, dtype=np.int64)
    return WordStats(words=int(n.sum()), pieces=int(n @ p) if n.size else 0,
                     continued=int(n[p >= 2].sum()), counts=dict(zip(distinct, pieces, strict=True)))


def fertility_pcw(pieces_per_word: Sequence[int]) -> tuple[float, float]:
    """Rust et al. (2021) from a list of per-word piece counts: (tokens/word, share split into >= 2)."""
    n = len(pieces_per_word)
    if n == 0:
        return 0.0, 0.0
    return sum(pieces_per_word) / n, sum(1 for p in pieces_per_word if p >= 2) / n
