"""Sampling rules (hard rule 3): presets per task on the shared SamplingPolicy, and the checker."""

from __future__ import annotations

import pytest

from qkv.tools.errors import UnknownName
from qkv.tools.knowledge.sampling_rules import check_sampling, recommend_sampling, tasks
from qkv.tools.knowledge.sources import SOURCES
from qkv.tools.sampling import SamplingPolicy

REQUIRED = ("summarisation", "chat", "code", "qa", "translation", "classification", "extraction")


def test_every_required_task_has_a_bounded_sourced_preset():
    assert set(REQUIRED) <= set(tasks())
    for task in tasks():
        rec = recommend_sampling(task)
        assert isinstance(rec.policy, SamplingPolicy) and rec.policy.bounded and not rec.policy.issues()
        assert rec.sources and set(rec.sources) <= set(SOURCES) and rec.rationale
        assert set(rec.settings) >= {"temperature", "top_p", "top_k", "repetition_penalty", "max_new_tokens"}
        assert any(f.provenance == "cited" for f in rec.settings.values())
        assert rec.description == rec.policy.describe()


def test_presets_carry_the_published_settings():
    code = recommend_sampling("code")
    assert (code.policy.temperature, code.policy.top_p) == (0.2, 0.95)  # Codex pass@1
    assert code.settings["temperature"].sources == ["chen2021"] and "\ndef" in code.policy.stop
    chat = recommend_sampling("chat")
    assert (chat.policy.temperature, chat.policy.top_p) == (0.6, 0.9)
    assert "llama2-chat-genconfig" in chat.settings["temperature"].sources
    assert recommend_sampling("translation").policy.num_beams == 4
    assert recommend_sampling("qa").policy.mode == "greedy"
    assert recommend_sampling("summarization").task == "summarisation"  # aliases


def test_the_checker_fails_a_policy_without_a_bound():
    no_truncation = check_sampling(SamplingPolicy(temperature=1.0, top_p=1.0, top_k=0))
    assert no_truncation.status == "fail" and not no_truncation.bounded
    assert any(i.field == "top_p/top_k" for i in no_truncation.issues)
    no_length = check_sampling(SamplingPolicy.greedy(max_new_tokens=64).model_copy(update={"max_new_tokens": None}))
    assert no_length.status == "fail" and any(i.field == "max_new_tokens" for i in no_length.issues)
    assert check_sampling(SamplingPolicy(temperature=0.7, top_p=0.9)).status == "pass"
    assert check_sampling(SamplingPolicy(temperature=2.0, top_p=0.9)).status == "warn"


def test_the_checker_judges_a_policy_against_its_task():
    qa = check_sampling(SamplingPolicy(temperature=0.9, top_p=0.9), task="qa")
    assert qa.status == "warn" and qa.recommended.mode == "greedy" and "lm-eval" in qa.sources
    chat = check_sampling(SamplingPolicy.greedy(max_new_tokens=128), task="chat")
    assert chat.status == "warn"
    assert check_sampling(recommend_sampling("chat").policy, task="chat").status == "pass"
    for task in tasks():
        assert check_sampling(recommend_sampling(task).policy, task=task).status == "pass", task


def test_unknown_task_suggests_names():
    with pytest.raises(UnknownName) as err:
        recommend_sampling("summarizaton")
    assert "summarization" in str(err.value)
