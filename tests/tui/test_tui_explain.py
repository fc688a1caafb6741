"""Answers, not dumps: the questions a design raises get a paragraph built from the report's ladder, diagnosis
and trade-off, numbers quoted from the report; a question the report cannot answer says so."""

from __future__ import annotations

import pytest

from qkv.agent.graph.api import DesignRequest, design
from qkv.tui.facts import answer_from_report

WORKED = "Fine-tune a 7B model for legal document summarisation on one consumer GPU with 24 GB of VRAM"
TIGHT = "QLoRA llama-3.1-70b for chat on one RTX 4090"
CHATBOT = "a multilingual customer-support chatbot for English, Hindi and Arabic on 4 A100s, 200k dialogues"


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    db = tmp_path_factory.mktemp("explain") / "s.sqlite"
    tasks = {"worked": WORKED, "tight": TIGHT, "chatbot": CHATBOT}
    return {k: design(DesignRequest(task=t), db_path=db) for k, t in tasks.items()}


def test_why_the_method_is_the_ladder_and_the_tradeoff(reports):
    r = reports["worked"]
    text, facts = answer_from_report(r, "why LoRA and not QLoRA?")
    e = r.efficiency
    assert text.startswith(f"The plan is {e.strategy} at {e.peak_vram_gib} GiB")
    assert e.tradeoffs["summary"] in text and facts
    assert text.count("\n") < 12  # a paragraph and the facts, not every leaf


def test_why_it_does_not_fit_names_the_terms_and_the_fixes(reports):
    r = reports["tight"]
    assert not r.efficiency.fits
    text, _ = answer_from_report(r, "why doesn't it fit?")
    top = r.efficiency.diagnosis.ranked[0]
    assert "does not fit" in text and f"{top.name} {top.gib} GiB" in text and "What would fit" in text


def test_inference_memory_and_training_time(reports):
    r = reports["worked"]
    text, _ = answer_from_report(r, "how much memory does inference need?")
    assert f"{r.inference.peak_vram_gib} GiB" in text
    text, facts = answer_from_report(r, "how long will training take?")
    assert "does not estimate" in text and "tokens/s" in text and not facts


def test_training_time_comes_from_the_data_budget_when_the_data_size_is_stated(reports):
    db = reports["chatbot"].resource_budget.data_budget
    assert db is not None and db.hours
    text, facts = answer_from_report(reports["chatbot"], "how long will training take?")
    assert f"about {db.hours:.1f} h" in text.lower() and f"{db.steps:,} steps = {db.epochs} epochs" in text
    assert "does not estimate" not in text
    assert {"resource_budget.data_budget.hours", "resource_budget.data_budget.steps"} <= {f.path for f in facts}
