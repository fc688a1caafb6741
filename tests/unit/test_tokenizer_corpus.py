"""Corpus streaming: every input kind, bounded chunks, and counted skips instead of crashes."""

from __future__ import annotations

import io
import json
import sys

import pytest

from qkv.tools.errors import BadInput
from qkv.tools.tokenizer.audit import AuditRequest, audit
from qkv.tools.tokenizer.corpus import CHUNK, Corpus

LEGAL = "/usr/share/common-licenses"


def docs(*specs, **kw) -> tuple[list[str], Corpus]:
    corpus = Corpus.open(list(specs), **kw)
    return list(corpus.documents()), corpus


def test_folder_glob_and_file_read_the_same_text():
    by_folder, _ = docs(LEGAL)
    by_glob, _ = docs(f"{LEGAL}/*")
    one, _ = docs(f"{LEGAL}/MPL-2.0")
    assert by_folder == by_glob and len(by_folder) >= 10
    with open(f"{LEGAL}/MPL-2.0", encoding="utf-8") as fh:
        assert one == [fh.read()]


def test_binary_and_invalid_utf8_are_counted_skips(tmp_path):
    (tmp_path / "good.txt").write_text("the licensee shall")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01\x02" * 100)
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    found, corpus = docs(str(tmp_path))
    assert found == ["the licensee shall"]
    reasons = dict(corpus.skipped)
    assert "binary" in reasons[str(tmp_path / "blob.bin")]
    assert "invalid UTF-8 at byte 3" in reasons[str(tmp_path / "latin1.txt")]
    report = audit(AuditRequest(tokenizers=["gpt2"], corpus=[str(tmp_path)], extend=False))
    assert report.corpus.documents == 1 and len(report.corpus.skipped) == 2


def test_empty_corpus_missing_path_and_empty_glob_are_clear_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text("  \n\n")
    with pytest.raises(BadInput, match="holds no text"):
        audit(AuditRequest(tokenizers=["gpt2"], corpus=[str(tmp_path)]))
    with pytest.raises(BadInput, match="no such file or folder"):
        audit(AuditRequest(tokenizers=["gpt2"], corpus=[str(tmp_path / "missing.txt")]))
    with pytest.raises(BadInput, match="matches no file"):
        audit(AuditRequest(tokenizers=["gpt2"], corpus=[str(tmp_path / "*.md")]))
    (tmp_path / "only.bin").write_bytes(b"\x00" * 10)
    (tmp_path / "empty.txt").unlink()
    (tmp_path / "blank.txt").unlink()
    with pytest.raises(BadInput, match="binary"):  # the error names what was skipped
        audit(AuditRequest(tokenizers=["gpt2"], corpus=[str(tmp_path)]))


def test_jsonl_csv_columns(tmp_path):
    jl = tmp_path / "rows.jsonl"
    rows = [json.dumps({"id": 1, "text": "first doc"}), "{broken", json.dumps({"id": 2, "text": "second"})]
    jl.write_text("\n".join(rows) + "\n")
    found, corpus = docs(str(jl))
    assert found == ["first doc", "second"] and "1 malformed JSON line" in corpus.skipped[0][1]
    csv = tmp_path / "rows.csv"
    csv.write_text('id,body,label\n1,"a, quoted body",x\n2,plain,y\n')
    assert docs(str(csv), column="body")[0] == ["a, quoted body", "plain"]
    with pytest.raises(BadInput) as err:
        docs(str(csv))  # two string columns and no 'text': ask which
    assert "--column" in str(err.value) and "body" in err.value.choices
    with pytest.raises(BadInput, match="no column 'summary'"):
        docs(str(csv), column="summary")


def test_saved_datasets_folder(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"text": ["alpha beta", "gamma"], "n": [1, 2]}).save_to_disk(str(tmp_path / "ds"))
    assert docs(str(tmp_path / "ds"))[0] == ["alpha beta", "gamma"]


def test_big_files_stream_in_bounded_chunks(tmp_path):
    line = "whereas the party of the first part agrees\n"
    big = tmp_path / "big.txt"
    big.write_text(line * (3 * CHUNK // len(line)))
    pieces, _ = docs(str(big))
    assert len(pieces) >= 3 and max(map(len, pieces)) <= 2 * CHUNK
    assert "".join(pieces) == big.read_text() and all(p.endswith("\n") for p in pieces[:-1])


def test_stdin_is_spooled_and_read_twice(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"the lessor shall indemnify the lessee\n" * 50)))
    corpus = Corpus.open(["-"])
    first, second = list(corpus.documents()), list(corpus.documents())
    assert first == second and first[0].startswith("the lessor")
    corpus.close()


def test_sample_takes_a_fixed_seed_subset():
    a, _ = docs(LEGAL, sample=3)
    b, _ = docs(LEGAL, sample=3)
    everything, _ = docs(LEGAL)
    assert a == b and len(a) == 3 and all(d in everything for d in a)


def test_progress_reports_bytes(tmp_path):
    (tmp_path / "a.txt").write_text("alpha " * 100)
    (tmp_path / "b.txt").write_text("beta " * 100)
    seen: list[tuple[int, int]] = []
    audit(AuditRequest(tokenizers=["gpt2"], corpus=[str(tmp_path)], extend=False), lambda d, t: seen.append((d, t)))
    assert seen[-1] == (1100, 1100) and all(d <= t for d, t in seen)
