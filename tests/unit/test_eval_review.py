"""Faithfulness proxies, the counterfactual template set, and the blind review sheet round trip."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from qkv.tools.errors import BadInput
from qkv.tools.evaluate.data import read_column, read_references
from qkv.tools.evaluate.faithfulness import (
    counterfactual_pairs,
    distinct_n,
    faithfulness_proxies,
    load_templates,
    repetition_rate,
)
from qkv.tools.evaluate.review import make_review_sheet, read_review

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"


def test_unsupported_numbers_and_entities_are_counted():
    src = "Python 3.11 was released on 24 October 2022 by the Python Software Foundation."
    good = faithfulness_proxies(["Python 3.11 came out in October 2022."], [src])
    assert good.unsupported_number_rate == 0 and good.unsupported_entity_rate == 0
    bad = faithfulness_proxies(["Guido van Rossum released Python 3.11 in 2021."], [src])
    assert bad.unsupported_number_rate == pytest.approx(1 / 2)  # 2021 is invented, 3.11 is supported
    assert bad.unsupported_entity_rate > 0  # "Guido van Rossum" is not in the source
    assert "proxy" in bad.label


def test_repetition_proxies():
    assert repetition_rate("the cat sat on the mat") == 0
    assert repetition_rate("a b c a b c a b c") == pytest.approx(1 - 3 / 7)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)


def test_bundled_counterfactual_templates_swap_every_slot():
    data = load_templates()
    pairs = counterfactual_pairs(data)
    assert len(pairs) >= 20 and data["groups"] == ["male", "female"]
    for _, a, b in pairs:
        assert a != b and "{" not in a and "{" not in b
    assert pairs[0][1].startswith("He ") and pairs[0][2].startswith("She ")


def test_review_sheet_round_trip_hides_systems(tmp_path):
    f = DATA / "summaries.jsonl"
    sources, refs = read_column(f, "source"), [r[0] for r in read_references(f, "reference")]
    outputs = {"system_a": read_column(f, "prediction"), "system_b": [s[:60] for s in sources]}
    sheet = make_review_sheet(outputs, sources, refs, tmp_path, n=50, seed=3)
    assert sheet.items == 3 and sheet.systems == ["system_a", "system_b"]
    text = Path(sheet.sheet_csv).read_text()
    assert "system_a" not in text and "system_b" not in text  # identities only in the key
    html = Path(sheet.sheet_html).read_text()
    assert html.startswith("<!doctype html>") and "<script" not in html and "http" not in html.split("<body>")[1]
    rows = list(csv.DictReader(Path(sheet.sheet_csv).read_text().splitlines()))
    assert len(rows) == 6 and rows[0]["faithfulness_1to5"] == ""
    key = {r["row"]: r["system"] for r in csv.DictReader(Path(sheet.key_file).read_text().splitlines())}
    for r in rows:  # a reviewer who likes system_a's outputs
        r["faithfulness_1to5"] = "5" if key[r["row"]] == "system_a" else "2"
        r["quality_1to5"] = "4" if key[r["row"]] == "system_a" else ""
    with open(sheet.sheet_csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    summary = read_review(sheet.sheet_csv, sheet.key_file)
    by = {s.system: s for s in summary.systems}
    assert by["system_a"].faithfulness_mean == 5 and by["system_b"].faithfulness_mean == 2
    assert by["system_a"].quality_mean == 4 and by["system_b"].quality_mean is None
    assert summary.rated_rows == 6


def test_review_errors(tmp_path):
    with pytest.raises(BadInput, match="differ in length"):
        make_review_sheet({"a": ["x"]}, ["s1", "s2"], None, tmp_path)
    sheet = make_review_sheet({"a": ["x", "y"]}, ["s1", "s2"], None, tmp_path, n=1)
    rows = list(csv.DictReader(Path(sheet.sheet_csv).read_text().splitlines()))
    rows[0]["quality_1to5"] = "9"
    with open(sheet.sheet_csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(BadInput, match="out of range"):
        read_review(sheet.sheet_csv, sheet.key_file)
