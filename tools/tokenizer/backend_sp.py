"""The SentencePiece backend (C++): batch encoding and pieces; word-piece counts by encoding each chunk's
words as a batch (SentencePiece has no offsets or space-marker split the others use)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from qkv.tools.tokenizer.words import chunked

if TYPE_CHECKING:
    from qkv.tools.tokenizer.tok import Tok


class SentencePieceCodec:
    @staticmethod
    def encode_batch(tok: Tok, texts: list[str]) -> list[list[int]]:
        return tok.backend.encode(texts, out_type=int)

    @staticmethod
    def count_words(tok: Tok, words: list[str], pmap: Callable) -> list[int]:
        return chunked(lambda ws: [len(ids) for ids in tok.encode_batch(ws)], words, pmap)

    @staticmethod
    def pieces(tok: Tok, ids: Sequence[int]) -> list[str]:
        return [tok.backend.id_to_piece(i) for i in ids]
