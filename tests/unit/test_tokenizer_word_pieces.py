"""Tok.count_words (the fertility/PCW numerators) must equal encoding each word on its own, whatever shortcut
a vocabulary allows: space markers (byte-level Ġ, SentencePiece ▁), BERT's pre-token parts,
tiktoken's word starts, and the fallbacks each one checks itself into."""

from __future__ import annotations

import sysconfig
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qkv.tools.tokenizer.extend import extend
from qkv.tools.tokenizer.load import load_tokenizer
from qkv.tools.tokenizer.metrics import split_words

# Case, identifiers and underscores (BERT cuts at '_'), digits, runs of ASCII punctuation, non-ASCII
# punctuation, accents (composed and combining), CJK, a Kelvin sign (lowercases to ASCII 'k'), ligatures,
# control characters (BERT drops them), a dotted capital I (lowercases to two characters), words longer
# than WordPiece's 100-character limit (alone and between underscores), and strings shaped like tokens.
TRICKY = ["court", "Court", "COURT", "indemnitor", "Indemnitors", "get_default_config", "__init__", "_", "___",
          "x_", "_x", "a1b2", "2026", "->", "**=", "...", ")):", "naïve", "Müller", "東京", "e\u0301", "\x00",
          "\x7f", "¶", "§", "|", "~^", "¶§|~^", "\u212a", "ﬁle", "İstanbul", "ǅ", "a" * 150, "ab_" + "c" * 120,
          "##ing", "[UNK]", "[MASK]", "Ġx", "▁x"]


def _corpus_words() -> list[str]:
    text = Path("/usr/share/common-licenses/GPL-3").read_text()
    text += Path(sysconfig.get_paths()["stdlib"], "textwrap.py").read_text()
    return list(dict.fromkeys(split_words(text) + TRICKY))


def _each_alone(tok, words: list[str]) -> list[int]:
    return [len(ids) for ids in tok.encode_batch([" " + w for w in words])]


def _counted(tok, words: list[str], monkeypatch) -> list[int]:
    """count_words in small chunks on two threads, so chunks that take a shortcut and chunks that fall back
    are interleaved and must come back in order."""
    import qkv.tools.tokenizer.words as words_mod

    monkeypatch.setattr(words_mod, "WORD_CHUNK", 97)
    with ThreadPoolExecutor(2) as pool:
        return tok.count_words([" " + w for w in words], pool.map)


@pytest.mark.parametrize("name", ["bert-base-uncased", "gpt2", "qwen2.5-0.5b",
                                  pytest.param("smollm2-135m", marks=pytest.mark.slow)])
def test_word_pieces_equal_each_word_encoded_alone(name, monkeypatch):
    tok = load_tokenizer(name)
    words = _corpus_words()
    assert _counted(tok, words, monkeypatch) == _each_alone(tok, words)


@pytest.mark.parametrize("name", ["bert-base-uncased", pytest.param("smollm2-135m", marks=pytest.mark.slow)])
def test_an_extended_copy_counts_with_its_own_vocabulary(name, monkeypatch):
    """The extension re-measure: added tokens have ids past the original vocabulary, and an added ASCII word
    can match inside words, so nothing derived from the original backend may be reused."""
    tok = load_tokenizer(name)
    words = _corpus_words()
    tok.count_words([" " + w for w in words])  # fill the original's caches first
    ext, _ = extend(tok, ["indemnitor", "Licensee", "default", "sublicense"])
    assert ext.vocab_size > tok.vocab_size
    counted = _counted(ext, words, monkeypatch)
    assert counted == _each_alone(ext, words)
    assert counted != _each_alone(tok, words)  # the added tokens do shorten some words


_ALPHABET = "aZq09_-.(¶|éü東\u0301\x00 \n"


@given(st.text(alphabet=_ALPHABET, max_size=200))
@settings(max_examples=200, deadline=None)
def test_bert_word_pieces_on_any_mix(text):
    tok = _bert()
    words = list(dict.fromkeys(split_words(text)))
    assert tok.count_words([" " + w for w in words]) == _each_alone(tok, words)


@cache
def _bert():
    return load_tokenizer("bert-base-uncased")
