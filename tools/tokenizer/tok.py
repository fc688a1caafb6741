"""A loaded tokenizer (`Tok`) and the small protocol its backends implement (`Codec`: one class per backend
in backend_hf.py, backend_tiktoken.py, backend_sp.py). Loading from a name, a file or a folder is load.py."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

Kind = Literal["hf-tokenizers", "tiktoken", "sentencepiece"]


class Codec(Protocol):
    """One tokenizer backend's native calls, on the `Tok` that holds it."""

    @staticmethod
    def encode_batch(tok: Tok, texts: list[str]) -> list[list[int]]: ...

    @staticmethod
    def count_words(tok: Tok, words: list[str], pmap: Callable) -> list[int]: ...

    @staticmethod
    def pieces(tok: Tok, ids: Sequence[int]) -> list[str]: ...


def codec(kind: Kind) -> type[Codec]:
    """The backend class for a `Tok.kind`."""
    if kind == "hf-tokenizers":
        from qkv.tools.tokenizer.backend_hf import HFCodec

        return HFCodec
    if kind == "tiktoken":
        from qkv.tools.tokenizer.backend_tiktoken import TiktokenCodec

        return TiktokenCodec
    from qkv.tools.tokenizer.backend_sp import SentencePieceCodec

    return SentencePieceCodec


@dataclass
class Tok:
    """A loaded tokenizer. `encode_batch` returns token ids without special tokens (BOS/CLS/SEP are not
    part of the text, and counting them would bias short documents)."""

    name: str
    kind: Kind
    algorithm: str
    source: str
    backend: Any
    vocab_size: int
    unk_id: int | None = None
    fallback_ids: frozenset[int] = frozenset()  # ids that stand for raw bytes of a split character
    nfc: bool = False  # Qwen normalises text to NFC before encoding
    context_window: int | None = None
    context_source: str | None = None
    hidden_size: int | None = None
    tied_embeddings: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # what the backend was built from (ranks, regex, proto)
    # facts derived from the backend (vocabulary masks); never carried over to another backend
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        if self.nfc:
            texts = [t if t.isascii() else unicodedata.normalize("NFC", t) for t in texts]
        return codec(self.kind).encode_batch(self, list(texts))

    def count_words(self, words: Sequence[str], pmap: Callable = map) -> list[int]:
        """Pieces per word, each word given as ' word' (the space it has in running text). The words go to
        the encoder in chunks; `pmap` maps over them (an executor's map runs them in parallel: the encoders
        release the GIL)."""
        return codec(self.kind).count_words(self, list(words), pmap)

    @property
    def unsafe_ascii(self) -> str:
        """The ASCII characters that encode to a byte-fallback id (e.g. control characters missing from a
        SentencePiece vocabulary); computed once and cached."""
        if "unsafe_ascii" not in self.cache:
            chars = [chr(c) for c in range(128)]
            self.cache["unsafe_ascii"] = "".join(
                c for c, ids in zip(chars, self.encode_batch(chars), strict=True) if set(ids) & self.fallback_ids)
        return self.cache["unsafe_ascii"]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        """Readable pieces in the tokenizer's own notation (Ġ/▁ for a leading space, <0xNN> for bytes)."""
        return codec(self.kind).pieces(self, ids)

    def with_backend(self, backend: Any, **changes: Any) -> Tok:
        changes.setdefault("extra", dict(self.extra))
        return replace(self, backend=backend, cache={}, **changes)
