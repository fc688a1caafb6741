"""Data: reading JSONL/CSV/TXT, checks that name the key, tokenisation with the real Gemma tokenizer
(loss on responses only), packing and padding to the longest row."""

from __future__ import annotations

import json
import os

import pytest

from qkv.tools.errors import BadInput
from qkv.tools.train.config import DataSection
from qkv.tools.train.data import (
    IGNORE,
    PadCollator,
    check_rows,
    load_split_rows,
    pack,
    read_rows,
    resolve_data_path,
    tokenize_rows,
    truncate,
)


@pytest.fixture(scope="module")
def gemma_tok(qkv_home):
    os.environ.setdefault("QKV_HOME", str(qkv_home))
    from qkv.tools.hf_models import load_tokenizer

    return load_tokenizer("gemma3-270m")


def test_bundled_data_is_shipped_and_split():
    train = read_rows(resolve_data_path("bundled:licences-train.jsonl"))
    held = read_rows(resolve_data_path("bundled:licences-heldout.jsonl"))
    assert len(train) >= 200 and len(held) >= 20
    assert not {r["text"] for r in train} & {r["text"] for r in held}  # held out means unseen
    pairs = read_rows(resolve_data_path("bundled:continue-train.jsonl"))
    assert all(p["prompt"] and p["response"] for p in pairs)
    with pytest.raises(BadInput, match="no bundled data file"):
        resolve_data_path("bundled:licences-trian.jsonl")


def test_csv_txt_and_jsonl_readers(tmp_path):
    (tmp_path / "d.csv").write_text("prompt,response\nhi,there\n")
    assert read_rows(tmp_path / "d.csv") == [{"prompt": "hi", "response": "there"}]
    (tmp_path / "d.txt").write_text("one  para\n\nsecond\npara\n")
    assert read_rows(tmp_path / "d.txt") == [{"text": "one para"}, {"text": "second para"}]
    (tmp_path / "bad.jsonl").write_text('{"text": 1}\n{oops\n')
    with pytest.raises(BadInput, match=r"bad\.jsonl:2 is not valid JSON"):
        read_rows(tmp_path / "bad.jsonl")


def test_empty_data_and_missing_column_name_the_key(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(BadInput, match=r"data\.train .* has no rows"):
        load_split_rows(DataSection(train=str(tmp_path / "empty.jsonl"), eval=None))
    rows = [{"prompt": "a", "answer": "b"}]
    with pytest.raises(BadInput) as err:
        check_rows(rows, DataSection(format="prompt_response"), "x.jsonl", "train")
    msg = str(err.value)
    assert "no column 'response'" in msg and "data.response_column" in msg and "answer" in msg


def test_eval_fraction_split_is_disjoint_and_seeded(tmp_path):
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(20)))
    data = DataSection(train=str(tmp_path / "t.jsonl"), eval=None, eval_fraction=0.2)
    a, b = load_split_rows(data, seed=1), load_split_rows(data, seed=1)
    assert a.eval == b.eval and len(a.eval) == 4 and len(a.train) == 16
    assert not {r["text"] for r in a.train} & {r["text"] for r in a.eval}


@pytest.mark.slow  # loads the real Gemma tokenizer (262k vocab)
def test_prompt_response_takes_loss_on_the_response_only(gemma_tok):
    data = DataSection(format="prompt_response")
    [ex] = tokenize_rows([{"prompt": "Say hello.", "response": "Hello there"}], data, gemma_tok)
    n_prompt = len(gemma_tok("Say hello.\n")["input_ids"])
    assert ex["labels"][:n_prompt] == [IGNORE] * n_prompt
    assert ex["labels"][n_prompt:] == ex["input_ids"][n_prompt:]
    assert ex["input_ids"][-1] == gemma_tok.eos_token_id
    assert gemma_tok.decode(ex["input_ids"][n_prompt:-1]) == "Hello there"


@pytest.mark.slow  # loads the real Gemma tokenizer (262k vocab)
def test_packing_keeps_every_token_in_full_blocks(gemma_tok):
    rows = read_rows(resolve_data_path("bundled:licences-heldout.jsonl"))[:10]
    examples = tokenize_rows(rows, DataSection(), gemma_tok)
    total = sum(len(e["input_ids"]) for e in examples)
    blocks = pack(examples, 64)
    assert all(len(b["input_ids"]) == 64 for b in blocks[:-1]) and len(blocks[-1]["input_ids"]) <= 64
    assert sum(len(b["input_ids"]) for b in blocks) == total
    flat = [t for b in blocks for t in b["input_ids"]]
    assert flat == [t for e in examples for t in e["input_ids"]]
    assert flat.count(gemma_tok.eos_token_id) == len(examples)  # one separator per document


@pytest.mark.slow  # loads the real Gemma tokenizer (262k vocab)
def test_unpacked_rows_pad_to_the_longest_in_the_batch_not_seq_len(gemma_tok):
    examples = truncate(tokenize_rows([{"text": "short"}, {"text": "a somewhat longer line of text"}],
                                      DataSection(), gemma_tok), 512)
    batch = PadCollator(gemma_tok.pad_token_id)(examples)
    width = max(len(e["input_ids"]) for e in examples)
    assert batch["input_ids"].shape == (2, width) < (2, 512)
    short = len(examples[0]["input_ids"])
    assert batch["attention_mask"][0].sum() == short and (batch["labels"][0, short:] == IGNORE).all()
