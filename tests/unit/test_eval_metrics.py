"""Task metrics agree with the libraries' own reference examples and with the SQuAD normalisation anchor,
read from real data files under tests/data/eval/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qkv.tools.errors import BadInput, UnknownName
from qkv.tools.evaluate import ScoreRequest, evaluate_predictions, metric_plan
from qkv.tools.evaluate.data import read_column, read_references
from qkv.tools.evaluate.metrics import normalize_answer, rouge, score_task, split_sentences, squad_exact_match, squad_f1
from tests.anchors import load_anchor

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"


def test_sacrebleu_readme_example_bleu_and_chrf_with_signature():
    # mjpost/sacrebleu README: BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ... hyp_len = 17 ref_len = 18),
    # chrF2 = 59.73
    report = evaluate_predictions(ScoreRequest(predictions=str(DATA / "sacrebleu_readme_sys.txt"),
                                               references=str(DATA / "sacrebleu_readme_refs.jsonl"),
                                               task="translation"))
    bleu, chrf = report.metric("bleu"), report.metric("chrf")
    assert round(bleu.value, 2) == 48.53
    assert bleu.details["precisions"] == "82.4/50.0/45.5/37.5"
    assert (bleu.details["sys_len"], bleu.details["ref_len"]) == (17, 18)
    assert round(bleu.details["bp"], 3) == 0.943
    assert round(chrf.value, 2) == 59.73
    # facts.json sacrebleu-signature: default tokenizer 13a; fields nrefs/case/eff/tok/smooth/version
    fact = load_anchor("facts.json")["sacrebleu-signature"]
    assert "13a" in fact["expected"]
    for field in ("nrefs:2", "case:mixed", "eff:no", "tok:13a", "smooth:exp", "version:2."):
        assert field in bleu.signature
    assert len(report.per_item) == 3 and "bleu" in report.per_item[0].scores


def test_rouge_score_unit_examples_from_file():
    # rouge_score/rouge_scorer_test.py: testRouge1 (F 1/2), testRouge2 (2/3), testRougeL (4/5) and the
    # rougeLsum sentence-splitting case (1.0 when sentences are on separate lines).
    rows = [json.loads(line) for line in (DATA / "rouge_score_unit_cases.jsonl").read_text().splitlines()]
    per = [{} for _ in rows]
    rouge([r["prediction"] for r in rows], [[r["reference"]] for r in rows], stemming=False, per_item=per)
    assert per[0]["rouge1"] == pytest.approx(1 / 2)
    assert per[1]["rouge2"] == pytest.approx(2 / 3)
    assert per[1]["rougeL"] == pytest.approx(4 / 5)
    assert per[2]["rougeL"] == pytest.approx(4 / 5)
    assert per[3]["rougeLsum"] == pytest.approx(1.0)
    assert per[3]["rougeL"] < 1.0  # rougeL ignores the newlines: sentence order matters


def test_rougelsum_splits_unsplit_text_like_split_summaries():
    # rouge_scorer_test testRougeLSumSentenceSplitting: joined on one line, split_summaries=True gives 1.0
    assert split_sentences("First sentence. Second Sentence.") == "First sentence.\nSecond Sentence."
    per = [{}]
    rouge(["Second sentence. First Sentence."], [["First sentence. Second Sentence."]], per_item=per)
    assert per[0]["rougeLsum"] == pytest.approx(1.0)


def test_rouge_states_stemming_and_rougelsum_convention():
    fact = load_anchor("facts.json")["rouge-lsum"]
    assert "rougeLsum" in fact["expected"] and "newline" in fact["expected"]
    stemmed = rouge(["the cats are running"], [["the cat runs"]], stemming=True)
    plain = rouge(["the cats are running"], [["the cat runs"]], stemming=False)
    assert "use_stemmer:yes" in stemmed[0].signature and "use_stemmer:no" in plain[0].signature
    assert "newline" in stemmed[3].signature
    assert stemmed[0].value > plain[0].value  # Porter stemming matches cats/cat and running/runs


def test_squad_normalisation_matches_facts_anchor():
    fact = load_anchor("facts.json")["squad-normalise"]
    assert "0.667" in fact["expected"]
    assert normalize_answer("The Eiffel Tower!") == "eiffel tower"
    assert squad_exact_match("The Eiffel Tower!", "eiffel tower") == 1.0
    assert squad_exact_match("Eiffel Tower in Paris", "eiffel tower") == 0.0
    assert squad_f1("Eiffel Tower in Paris", "eiffel tower") == pytest.approx(2 * (2 / 4 * 1) / (2 / 4 + 1), abs=0.01)


def test_squad_file_with_answers_objects_takes_max_over_golds():
    preds = read_column(DATA / "squad_facts.jsonl", "prediction")
    refs = read_references(DATA / "squad_facts.jsonl", "reference")
    assert refs[2] == ["Seine", "River Seine"]
    metrics, per = score_task("qa", preds, refs)
    em, f1 = metrics
    assert [p.scores["exact_match"] for p in per] == [1.0, 0.0, 1.0]
    assert em.value == pytest.approx(2 / 3)
    assert f1.value == pytest.approx((1 + 2 / 3 + 1) / 3)


def test_classification_matches_sklearn_docstring_example():
    # scikit-learn f1_score docstring: y_true=[0,1,2,0,1,2], y_pred=[0,2,1,0,0,1] → macro 0.2666...
    report = evaluate_predictions(ScoreRequest(predictions=str(DATA / "sklearn_f1_example.csv"),
                                               references=str(DATA / "sklearn_f1_example.csv"), task="classification"))
    assert report.metric("macro_f1").value == pytest.approx(0.26666, abs=1e-4)
    assert report.metric("accuracy").value == pytest.approx(2 / 6)


def test_summaries_with_sources_give_rouge_and_proxies():
    f = str(DATA / "summaries.jsonl")
    report = evaluate_predictions(ScoreRequest(predictions=f, references=f, source=f, task="summarisation"))
    assert {m.name for m in report.metrics} == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert all(0 < m.value < 1 for m in report.metrics)
    faith = report.faithfulness
    assert faith is not None and "proxy" in faith.label
    assert faith.unsupported_number_rate > 0  # "2021" and "25" are not in the Python 3.11 source
    assert faith.repetition_rate > 0  # the looping third summary


def test_metric_plan_covers_every_task_with_sources():
    for task in ("summarisation", "translation", "qa", "classification", "language-modelling"):
        plan = metric_plan(task)
        assert plan.metrics[0].name.startswith("perplexity")
        assert all(m.source for m in plan.metrics)
    assert "BLEU" in metric_plan("translation").metrics[1].name
    assert "ROUGE" in metric_plan("summarisation").metrics[1].name
    with pytest.raises(UnknownName, match="summarisation"):
        metric_plan("summarization")


def test_length_mismatch_and_empty_inputs_are_clear_errors(tmp_path):
    preds = tmp_path / "p.txt"
    preds.write_text("a\nb\n")
    refs = tmp_path / "r.txt"
    refs.write_text("a\n")
    with pytest.raises(BadInput, match=r"2 predictions but .* 1 references"):
        evaluate_predictions(ScoreRequest(predictions=str(preds), references=str(refs), task="translation"))
    empty = tmp_path / "e.txt"
    empty.write_text("")
    with pytest.raises(BadInput, match="is empty"):
        evaluate_predictions(ScoreRequest(predictions=str(empty), references=str(refs)))
    with pytest.raises(BadInput, match="not found"):
        evaluate_predictions(ScoreRequest(predictions=str(tmp_path / "missing.txt"), references=str(refs)))
    with pytest.raises(BadInput, match="perplexity"):
        score_task("language-modelling", ["a"], [["a"]])
