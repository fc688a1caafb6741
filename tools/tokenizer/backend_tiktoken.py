"""The tiktoken backend (Rust): batch encoding over one thread per core, pieces, and word-piece counts from
one native call per chunk split at the tokens that start with a space."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from qkv.tools.tokenizer.words import chunked, cpu_cores, split_at_starts

if TYPE_CHECKING:
    from qkv.tools.tokenizer.tok import Tok

_POOL: Any = None  # one thread per core, shared by every tiktoken batch
_PARALLEL_CHARS = 1 << 16  # below this a batch is encoded in the calling thread


class TiktokenCodec:
    @staticmethod
    def encode_batch(tok: Tok, texts: list[str]) -> list[list[int]]:
        return _tiktoken_batch(tok.backend, texts)

    @staticmethod
    def count_words(tok: Tok, words: list[str], pmap: Callable) -> list[int]:
        return chunked(partial(_count_words_tiktoken, tok), words, pmap)

    @staticmethod
    def pieces(tok: Tok, ids: Sequence[int]) -> list[str]:
        return [tok.backend.decode_single_token_bytes(i).decode("utf-8", "backslashreplace") for i in ids]


def _tiktoken_batch(enc: Any, texts: Sequence[str]) -> list[list[int]]:
    """tiktoken's own batch call starts an 8-thread pool per call (measured on 2 cores, 5 MB: 1.60 s CPU,
    0.87 s wall); its Rust core releases the GIL, so one thread per core over the documents does the same
    work in 1.26 s CPU, 0.68 s wall. Same ids, in order."""
    global _POOL
    core = getattr(enc, "_core_bpe", None)
    encode = core.encode_ordinary if core is not None else enc.encode_ordinary
    if sum(map(len, texts)) < _PARALLEL_CHARS:
        return [encode(t) for t in texts]
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(cpu_cores(), thread_name_prefix="qkv-tiktoken")
    return list(_POOL.map(encode, texts))


def _count_words_tiktoken(tok: Tok, words: Sequence[str]) -> list[int]:
    """One native call for the whole chunk: ' w1 w2 w3…' encodes to the concatenation of each word's own
    encoding (the pre-tokenizer regex never joins a space to the text before it), and each word's first
    token is the one that starts with a space. A chunk whose count of word starts disagrees is encoded
    word by word instead (tiktoken's batch call would hand every short word to a thread pool)."""
    import numpy as np

    if tok.nfc:
        words = [w if w.isascii() else unicodedata.normalize("NFC", w) for w in words]
    starts = tok.cache.get("space_start")
    if starts is None:
        starts = np.zeros(tok.backend.max_token_value + 1, dtype=bool)
        for piece, i in tok.extra["ranks"].items():
            starts[i] = piece[:1] == b" "
        tok.cache["space_start"] = starts
    core = getattr(tok.backend, "_core_bpe", None)
    enc = core.encode_ordinary if core is not None else tok.backend.encode_ordinary
    split = split_at_starts(enc("".join(words)), starts, len(words))
    return split if split is not None else [len(enc(w)) for w in words]
