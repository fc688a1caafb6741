"""Loading real tokenizers from every source, checked against ids the published tokenizers produce."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from qkv.tools.errors import BadInput, UnknownName
from qkv.tools.tokenizer.load import load_tokenizer, shipped_names


@pytest.mark.parametrize(("name", "text", "ids", "vocab"), [
    # ids as the published tokenizers give them (GPT-2 / Qwen2.5 / bert-base-uncased model cards and docs)
    ("gpt2", "Hello world", [15496, 995], 50257),
    ("qwen2.5-0.5b", "Hello world", [9707, 1879], 151665),  # 151,643 merges + Qwen2.5's 22 control tokens
    ("bert-base-uncased", "Hello world", [7592, 2088], 30522),
])
def test_catalog_names_map_to_the_identical_shipped_tokenizer(name, text, ids, vocab):
    tok = load_tokenizer(name)
    assert tok.encode_batch([text]) == [ids]
    assert tok.vocab_size == vocab
    assert tok.context_window is not None and tok.hidden_size is not None


def test_qwen_control_tokens_sit_where_qwen25_puts_them():
    tok = load_tokenizer("Qwen/Qwen2.5-7B")  # a catalog alias, offline
    assert tok.backend.encode("<|im_start|><|im_end|><|file_sep|>", allowed_special="all") == [151644, 151645, 151664]
    assert tok.backend.encode_ordinary("<|im_start|>") != [151644]  # ordinary text never becomes a control token
    assert tok.context_window == 131072  # the catalog config.json max_position_embeddings of Qwen2.5-7B


def test_bert_uncased_vocab_is_bert_base_uncased(minilm_tokenizer_dir):
    tok = load_tokenizer(str(minilm_tokenizer_dir))  # a folder
    ids = {t: tok.backend.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the")}
    assert ids == {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103, "the": 1996}
    assert tok.algorithm == "WordPiece" and tok.unk_id == 100
    long_text = "word " * 600  # MiniLM's tokenizer.json truncates at 128: the auditor must not
    assert len(tok.encode_batch([long_text])[0]) == 600


def test_rank_file_and_tokenizer_json_load(gpt2_tiktoken, minilm_tokenizer_dir):
    tik = load_tokenizer(str(gpt2_tiktoken))
    assert tik.kind == "tiktoken" and tik.encode_batch(["Hello world"]) == [[15496, 995]]
    hf = load_tokenizer(str(minilm_tokenizer_dir / "tokenizer.json"))
    assert hf.kind == "hf-tokenizers" and hf.encode_batch(["Hello world"]) == [[7592, 2088]]


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory) -> Path:
    """A real SentencePiece BPE model (byte fallback) trained here on the GPL-3 text (~1 s)."""
    import sentencepiece as spm

    buf = io.BytesIO()
    lines = Path("/usr/share/common-licenses/GPL-3").read_text().splitlines()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, vocab_size=400,
                                   model_type="bpe", byte_fallback=True, minloglevel=2)
    path = tmp_path_factory.mktemp("sp") / "legal.model"
    path.write_bytes(buf.getvalue())
    return path


def test_sentencepiece_model_loads_with_byte_fallback(sp_model):
    tok = load_tokenizer(str(sp_model))
    assert tok.kind == "sentencepiece" and tok.vocab_size == 400 and len(tok.fallback_ids) == 256
    ids = tok.encode_batch([" holder \u2603"])[0]
    assert tok.pieces(ids)[-3:] == ["<0xE2>", "<0x98>", "<0x83>"]
    assert sum(i in tok.fallback_ids for i in ids) == 3


@pytest.mark.slow
def test_gguf_embedded_vocabulary(smollm2_gguf, qkv_home, monkeypatch):
    monkeypatch.setenv("QKV_HOME", str(qkv_home))
    tok = load_tokenizer(str(smollm2_gguf))
    assert tok.algorithm == "byte-level BPE" and tok.vocab_size == 49152
    assert tok.context_window == 8192 and "GGUF" in tok.source
    again = load_tokenizer("smollm2-135m")  # the catalog name maps to the same bundled file, now cached
    assert again.encode_batch(["def main():"]) == tok.encode_batch(["def main():"])


def test_unknown_names_and_unshipped_models_say_what_to_do():
    with pytest.raises(UnknownName) as err:
        load_tokenizer("gtp2")
    assert "gpt2" in err.value.choices
    with pytest.raises(UnknownName) as err:
        load_tokenizer("llama-2-7b")
    assert "meta-llama/Llama-2-7b-hf" in str(err.value) and "--online" in str(err.value)
    assert set(shipped_names()) <= set(err.value.choices)


@pytest.mark.parametrize(("name", "content"), [
    ("tokenizer.json", b"{not json"), ("bad.tiktoken", b"!!notbase64 x\n"), ("bad.model", b"\x00garbage"),
    ("bad.gguf", b"GGUF but truncated"), ("vocab.bin", b"whatever"),
])
def test_unreadable_tokenizer_files_are_clear_errors(tmp_path, qkv_home, monkeypatch, name, content):
    monkeypatch.setenv("QKV_HOME", str(qkv_home))
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadInput) as err:
        load_tokenizer(str(path))
    assert str(path.name) in str(err.value) and "expected" in str(err.value)


def test_missing_tokenizer_file_is_a_clear_error():
    with pytest.raises(BadInput, match="no such file"):
        load_tokenizer("./nowhere/tokenizer.json")
