"""The TUI's rule-based pieces: routing chat lines, answering from report facts, diffing reports, the
session store and the metrics.jsonl tail. Real files, a real SQLite database, no app needed."""

from __future__ import annotations

import json

import pytest

from qkv.tui.facts import (
    answer_from_report,
    diff_reports,
    flatten,
    invented_numbers,
    match_facts,
    summarize_changes,
)
from qkv.tui.intents import MAX_CHARS, classify, help_for
from qkv.tui.sessions import SessionStore
from qkv.tui.widgets.training import MetricsTail

# A report-shaped dict (the agent's section layout: values plus a per-section provenance map).
REPORT = {
    "task": {"text": "fine-tune a 7B model", "gpu": "rtx-4090", "gpus": 1},
    "efficiency": {"method": "qlora", "fits": True, "peak_vram_gib": 9.87, "gpu": "rtx-4090",
                   "breakdown": [{"name": "weights (nf4)", "gib": 3.6, "formula": "N × 4.127 bits"}],
                   "provenance": {"peak_vram_gib": "analytic: memory estimator"}},
    "inference": {"sampling": {"temperature": 0.3, "top_p": 0.9, "top_k": 40}, "kv_cache_gib": 1.0},
    "checks": [{"rule": "context window respected", "status": "pass", "detail": "2048 <= 4096"}],
}


@pytest.mark.parametrize(("text", "has_report", "kind"), [
    ("fine-tune a 7B model for legal summarisation on one 24 GB GPU", False, "task"),
    ("what if I had two A100s?", True, "change"),
    ("use Mistral instead", True, "change"),
    ("my documents are 16k tokens", True, "change"),
    ("what is the peak VRAM?", True, "question"),
    ("which sampling settings?", True, "question"),
    ("   ", False, "empty"),
    ("asdkjh qwpoeiru zxmcnv", False, "nonsense"),
    ("asdkjh qwpoeiru zxmcnv", True, "nonsense"),
    ("???", True, "nonsense"),
    ("/export md", True, "command"),
    ("what is the peak VRAM?", False, "no_report"),
    ("can I fine-tune llama-2-7b on a 4090?", False, "task"),
])
def test_classify_routes_chat_lines(text, has_report, kind):
    assert classify(text, has_report=has_report).kind == kind


def test_classify_answer_and_oversized_paste():
    assert classify("one RTX 4090", has_report=False, awaiting_answer=True).kind == "answer"
    huge = "contract clause " * (MAX_CHARS // 8)
    intent = classify(huge, has_report=True)
    assert intent.kind == "too_long"
    reply = help_for(intent, has_report=True)
    assert f"{len(huge.strip()):,}" in reply and f"{MAX_CHARS:,}" in reply


def test_answers_quote_report_values_with_provenance():
    text, facts = answer_from_report(REPORT, "what is the peak VRAM?")
    assert facts[0].path == "efficiency.peak_vram_gib"
    assert "9.87" in text and "analytic: memory estimator" in text
    text, facts = answer_from_report(REPORT, "which top-p and temperature?")
    assert {"inference.sampling.top_p", "inference.sampling.temperature"} <= {f.path for f in facts}
    text, facts = answer_from_report(REPORT, "favourite colour of the moon")
    assert facts == [] and "only answer from its facts" in text


def test_every_number_in_an_answer_is_in_the_report():
    leaves = {f.value for f in flatten(REPORT)}
    for question in ("peak vram", "sampling", "checks", "kv cache", "method"):
        for fact in match_facts(REPORT, question):
            assert fact.value in leaves


def test_invented_numbers_are_caught():
    facts = match_facts(REPORT, "peak vram")
    assert invented_numbers("The peak is 9.87 GiB.", facts) == set()
    assert invented_numbers("The peak is 12.5 GiB.", facts) == {"12.5"}


def test_diff_reports_lists_changed_leaves():
    after = json.loads(json.dumps(REPORT))
    after["task"]["gpu"] = "a100-80gb-sxm"
    after["task"]["gpus"] = 2
    after["efficiency"]["peak_vram_gib"] = 12.1
    changes = {c.path: (c.before, c.after) for c in diff_reports(REPORT, after)}
    assert changes == {"task.gpu": ("rtx-4090", "a100-80gb-sxm"), "task.gpus": ("1", "2"),
                       "efficiency.peak_vram_gib": ("9.87", "12.1")}
    after["efficiency"]["breakdown"][0]["gib"] = 7.2
    lines = summarize_changes(diff_reports(REPORT, after), limit=2)
    assert lines[:2] == ["• task › gpu: rtx-4090 → a100-80gb-sxm", "• task › gpus: 1 → 2"]
    assert lines[2:] == ["… and 1 more value(s) (see the Report tab)",
                         "… plus 1 other value(s) (breakdowns, alternatives, provenance: the Report tab)"]


def test_session_store_round_trip(tmp_path):
    db = tmp_path / "s.sqlite"
    store = SessionStore(db)
    store.ensure("t1", "legal summariser", "none")
    store.add_message("t1", "user", "fine-tune a 7B model")
    store.add_message("t1", "assistant", "Designing…")
    store.update("t1", report_json='{"x": 1}', pending_question="Which GPU?")
    again = SessionStore(db)  # a new process would open the file the same way
    assert [m.text for m in again.messages("t1")] == ["fine-tune a 7B model", "Designing…"]
    info = again.get("t1")
    assert info.messages == 2 and info.has_report and info.pending_question == "Which GPU?"
    assert again.latest().thread_id == "t1"
    with pytest.raises(ValueError, match="unknown session fields"):
        again.update("t1", nonsense="x")


def test_metrics_tail_reads_complete_lines_only(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.poll() == 0  # no file yet
    path.write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "lo')
    assert tail.poll() == 1
    with path.open("a") as fh:
        fh.write('ss": 2.25}\nnot json\n{"step": 3, "loss": 2.0, "eval_loss": 2.1}\n')
    assert tail.poll() == 2
    assert [r["step"] for r in tail.rows] == [1, 2, 3] and tail.bad_lines == 1
