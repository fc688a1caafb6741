"""Vocabulary extension on a COPY of a tokenizer, so the saving can be re-measured rather than predicted.

- Hugging Face tokenizers: `Tokenizer.add_tokens` with `AddedToken`s on a deserialised copy — what
  `tokenizer.add_tokens(...)` + `model.resize_token_embeddings(len(tokenizer))` does in a real fine-tune. The
  token's content is the word as the normaliser sees it after a space ('▁word' for SentencePiece-style
  normalisers; otherwise 'word' with lstrip=True so the preceding space is absorbed, single_word=True).
- tiktoken: a new `tiktoken.Encoding` whose mergeable ranks gain, for each word, the chain of merges that
  joins its current pieces left to right (' plaint' + 'iff' -> ' plaintiff'), ranked after every
  existing merge, so the rest of the vocabulary encodes as before until those merges apply.
- SentencePiece: the serialized ModelProto gains USER_DEFINED pieces '▁word' (a protobuf repeated field may
  be appended to the message bytes), loaded into a new processor.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from qkv.tools.tokenizer.tok import Tok


def candidate_form(tok: Tok, word: str) -> str:
    """The key under which a word would be added (uncased tokenizers fold 'Court' and 'court')."""
    if tok.kind == "hf-tokenizers" and tok.backend.normalizer is not None:
        return tok.backend.normalizer.normalize_str(" " + word).strip()
    return word


def single_pretoken(tok: Tok, word: str) -> bool:
    """True when ' word' is one pre-token, so a BPE merge chain can join it (tiktoken only splits by regex)."""
    if tok.kind != "tiktoken":
        return True
    import regex

    return len(regex.findall(tok.extra["pat"], " " + word)) == 1


def extend(tok: Tok, words: Iterable[str]) -> tuple[Tok, str]:
    """(extended copy, how it was done). Words are given without the leading space."""
    words = list(dict.fromkeys(words))
    if tok.kind == "hf-tokenizers":
        return _extend_hf(tok, words)
    if tok.kind == "tiktoken":
        return _extend_tiktoken(tok, words)
    return _extend_sentencepiece(tok, words)


def _extend_hf(tok: Tok, words: list[str]) -> tuple[Tok, str]:
    from tokenizers import AddedToken, Tokenizer

    copy = Tokenizer.from_str(tok.backend.to_str())
    copy.no_truncation()
    copy.no_padding()
    normalizer = copy.normalizer
    added = []
    for w in words:
        content = normalizer.normalize_str(" " + w) if normalizer is not None else " " + w
        if content.startswith(" "):  # the normaliser keeps the space: absorb it, match whole words only
            added.append(AddedToken(content.strip(), lstrip=True, single_word=True, normalized=True))
        else:  # e.g. Gemma's normaliser turns ' ' into '▁': the space is part of the token, as in its vocab
            added.append(AddedToken(content, normalized=True))
    n = copy.add_tokens(added)
    method = (f"tokenizers.Tokenizer.add_tokens on a copy: {n} AddedTokens (normalized; '▁word' for "
              "SentencePiece-style normalisers, else lstrip+single_word)")
    return tok.with_backend(copy, vocab_size=copy.get_vocab_size(with_added_tokens=True)), method


def _extend_tiktoken(tok: Tok, words: list[str]) -> tuple[Tok, str]:
    import tiktoken

    ranks = dict(tok.extra["ranks"])
    specials = dict(tok.extra["specials"])
    nxt = max([*ranks.values(), *specials.values()]) + 1
    added = 0
    enc = tok.backend
    for ids in enc.encode_ordinary_batch([" " + w for w in words]):
        parts = [enc.decode_single_token_bytes(i) for i in ids]
        acc = parts[0]
        for p in parts[1:]:
            acc += p
            if acc not in ranks:
                ranks[acc] = nxt
                nxt += 1
                added += 1
    new = tiktoken.Encoding(f"{tok.name}+ext", pat_str=tok.extra["pat"], mergeable_ranks=ranks, special_tokens=specials)
    method = (f"new tiktoken.Encoding with {added} extra mergeable ranks (each word's merge chain, ranked after "
              "all existing merges), same regex and special tokens")
    return tok.with_backend(new, vocab_size=new.n_vocab, extra=tok.extra | {"ranks": ranks}), method


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _piece_message(piece: str) -> bytes:
    """ModelProto.SentencePiece {piece = 1; score = 2; type = 3 (USER_DEFINED = 4)} as field 1 of ModelProto."""
    data = piece.encode("utf-8")
    body = b"\x0a" + _varint(len(data)) + data + b"\x15" + struct.pack("<f", 0.0) + b"\x18" + _varint(4)
    return b"\x0a" + _varint(len(body)) + body


def _extend_sentencepiece(tok: Tok, words: list[str]) -> tuple[Tok, str]:
    import sentencepiece as spm

    from qkv.tools.tokenizer.load import _sp_tok

    proto = tok.extra["proto"] + b"".join(_piece_message("▁" + w) for w in words if tok.backend.piece_to_id(
        "▁" + w) == tok.backend.unk_id())
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(proto)
    new = _sp_tok(sp, name=tok.name, source=tok.source, proto=proto)
    method = f"{new.vocab_size - tok.vocab_size} USER_DEFINED pieces '▁word' appended to the ModelProto of a copy"
    return tok.with_backend(sp, vocab_size=new.vocab_size, extra=new.extra), method
