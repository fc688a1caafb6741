"""Reading predictions/references/datasets, and the strided window plan shared by both backends."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qkv.tools.errors import BadInput
from qkv.tools.evaluate.data import read_column, read_dataset, read_references
from qkv.tools.evaluate.windows import check_length, plan_windows


def test_jsonl_bad_line_and_missing_field_name_the_problem(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text('{"prediction": "a"}\n{oops\n')
    with pytest.raises(BadInput, match=r"x.jsonl:2 is not valid JSON"):
        read_column(f, "prediction")
    f.write_text('{"pred": "a"}\n')
    with pytest.raises(BadInput, match=r"no field 'prediction'.*did you mean: pred"):
        read_column(f, "prediction")


def test_formats_txt_csv_tsv_json(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\nthree\n")
    assert read_column(tmp_path / "a.txt", "x") == ["one", "", "three"]  # an empty line is an empty prediction
    (tmp_path / "a.tsv").write_text("reference\tother\nr1\tz\n")
    assert read_references(tmp_path / "a.tsv", "reference") == [["r1"]]
    (tmp_path / "a.json").write_text('[{"reference": ["x", "y"]}]')
    assert read_references(tmp_path / "a.json", "reference") == [["x", "y"]]
    with pytest.raises(BadInput, match="fields"):
        read_dataset(tmp_path / "a.txt", ["source", "reference"])


def test_window_plan_non_overlapping_and_strided():
    spans = plan_windows(10, 4, 4)
    assert [(s.begin, s.end, s.first, s.last) for s in spans] == [(0, 4, 1, 4), (4, 8, 5, 8), (8, 10, 9, 9)]
    spans = plan_windows(10, 4, 2)
    assert [(s.begin, s.first, s.last) for s in spans] == [(0, 1, 4), (2, 5, 6), (4, 7, 8), (6, 9, 9)]


@given(n=st.integers(2, 400), window=st.integers(2, 64), data=st.data())
def test_every_token_after_the_first_is_scored_exactly_once(n, window, data):
    stride = data.draw(st.integers(1, window))
    scored = []
    for s in plan_windows(n, window, stride):
        lo, hi = s.rows
        assert 0 <= lo < hi <= s.end - s.begin  # rows exist in this window
        assert s.first - 1 >= s.begin  # each target has at least its previous token as context
        scored += range(s.first, s.last + 1)
    assert scored == list(range(1, n))


def test_bad_window_settings():
    with pytest.raises(BadInput, match="stride 9 is outside"):
        plan_windows(100, 8, 9)
    with pytest.raises(BadInput, match="shorter than one window of 512"):
        check_length(40, 512, allow_short=False)
    assert check_length(40, 512, allow_short=True) == 40


def test_comparing_two_tokenizers_says_token_perplexity_is_not_comparable():
    from qkv.tools.evaluate.perplexity import compare_perplexities
    from qkv.tools.evaluate.schema import PerplexityResult

    def result(name, tokenizer, tokens, nll):
        return PerplexityResult(model=name, tokens=tokens, token_ppl=2.0, nll_sum_nats=nll, bits_per_byte=nll / 900,
                                word_ppl=3.0, bytes=1000, words=150, window=512, stride=256, tokenizer=tokenizer)

    notes = compare_perplexities([result("a", "gemma (262,144)", 250, 600.0), result("b", "gpt2 (50,257)", 300, 500.0)])
    assert len(notes) == 1 and "NOT comparable" in notes[0] and "lowest: b" in notes[0]
    assert compare_perplexities([result("a", "t", 250, 600.0), result("b", "t", 250, 500.0)]) == []
