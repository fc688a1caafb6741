"""Vocabulary extension really changes a copy of each kind of tokenizer and leaves the original alone."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from qkv.tools.tokenizer.extend import extend
from qkv.tools.tokenizer.load import load_tokenizer

WORDS = ["indemnitor", "indemnitee", "sublicensable"]
CONTROL = "The licensee shall not redistribute the indemnification clause.\n    def main():\n        return 0\n"


@pytest.mark.parametrize("name", ["gpt2", "qwen2.5-0.5b", "bert-base-uncased"])
def test_extended_copy_encodes_each_word_as_one_token(name):
    tok = load_tokenizer(name)
    before = tok.encode_batch([" " + w for w in WORDS])
    assert all(len(ids) >= 2 for ids in before)
    ext, method = extend(tok, WORDS)
    after = ext.encode_batch([" " + w for w in WORDS])
    assert [len(ids) for ids in after] == [1, 1, 1], (method, [ext.pieces(i) for i in after])
    assert ext.vocab_size > tok.vocab_size
    # the original is untouched, and text without the new words encodes as before
    assert tok.encode_batch([" " + w for w in WORDS]) == before
    assert ext.encode_batch([CONTROL]) == tok.encode_batch([CONTROL])
    # in running text the words are now single tokens too
    sentence = "the indemnitor and the indemnitee"
    assert len(ext.encode_batch([sentence])[0]) == len(tok.encode_batch([sentence])[0]) - sum(
        len(b) - 1 for b in before[:2])


def test_tiktoken_extension_adds_merge_chains_after_all_ranks():
    tok = load_tokenizer("gpt2")
    ext, method = extend(tok, ["indemnitor"])
    new = {b: r for b, r in ext.extra["ranks"].items() if b not in tok.extra["ranks"]}
    assert set(new) == {b" indemnitor"} and min(new.values()) > 50256  # ' indemn' + 'itor', ranked last
    assert "mergeable ranks" in method


def test_sentencepiece_extension_adds_user_defined_pieces(tmp_path):
    import sentencepiece as spm

    buf = io.BytesIO()
    lines = Path("/usr/share/common-licenses/GPL-3").read_text().splitlines()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, vocab_size=400,
                                   model_type="unigram", minloglevel=2)
    (tmp_path / "m.model").write_bytes(buf.getvalue())
    tok = load_tokenizer(str(tmp_path / "m.model"))
    ext, method = extend(tok, ["indemnitor", "sublicensable"])
    assert ext.vocab_size == tok.vocab_size + 2 and "USER_DEFINED" in method
    assert ext.pieces(ext.encode_batch([" the indemnitor sublicensable"])[0])[-2:] == ["▁indemnitor", "▁sublicensable"]
    assert len(tok.encode_batch([" indemnitor sublicensable"])[0]) > 4
