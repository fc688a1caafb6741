"""What every tokenizer backend shares for counting word pieces fast: the chunking of a word list over a
map (parallel when the map is an executor's), the split of one native encoding at word-start tokens, the
space-marker mask of a vocabulary, and the core count."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

MARKS = frozenset("\u2581\u0120")  # '▁' (SentencePiece) and 'Ġ' (byte-level BPE) mark a leading space
WORD_CHUNK = 1024  # words per native call when counting word pieces (small: the chunks balance the cores)
ALNUM_KEPT = bytes(c if c < 128 and chr(c).isalnum() else 0x20 for c in range(256))  # bytes.translate table


def space_marks(vocab: dict[str, int]):
    """bool[ids]: pieces that begin with a '▁'/'Ġ' space marker (added tokens by their content), or None
    when under 5% do (the vocabulary does not mark spaces that way)."""
    import numpy as np

    marked = np.zeros(max(vocab.values(), default=-1) + 1, dtype=bool)
    marked[[i for piece, i in vocab.items() if piece[:1] in MARKS]] = True
    return marked if marked.mean() > 0.05 else None


def split_at_starts(ids: list[int], is_start, n_words: int) -> list[int] | None:
    """Pieces per word from the ids of ' w1 w2 …' encoded in one call, when exactly the first token of each
    word is a word-start token (`is_start`: bool[ids]); None when the count of starts says otherwise (a
    token straddled two words, or a word started twice), so the caller falls back."""
    import numpy as np

    arr = np.asarray(ids, dtype=np.int64)
    first = np.flatnonzero(is_start[arr])
    if len(first) != n_words or (n_words and first[0] != 0):
        return None
    return np.diff(np.append(first, len(arr))).tolist()


def _start(count: Callable[[list[str]], list[int]], words: list[str], pmap: Callable) -> Iterator[list[int]]:
    """`count` mapped with `pmap` over chunks of `words`: an executor's map starts them all now and yields
    their results in order; the builtin map runs each when it is consumed."""
    return pmap(count, [words[i:i + WORD_CHUNK] for i in range(0, len(words), WORD_CHUNK)])


def chunked(count: Callable[[list[str]], list[int]], words: list[str], pmap: Callable) -> list[int]:
    """`count` over chunks of `words`, mapped with `pmap`, concatenated in order."""
    return [n for counts in _start(count, words, pmap) for n in counts]


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    return max(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, 1)
