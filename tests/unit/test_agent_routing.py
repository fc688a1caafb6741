"""Routing is pure: state in, next step out; revisions re-run only the steps their fields affect."""

from __future__ import annotations

from qkv.agent.graph.intake import apply_defaults, parse_task
from qkv.agent.graph.revise import merge_change
from qkv.agent.graph.routing import after_architecture, after_efficiency, first_affected_step, predecessor


def test_architecture_routes_to_context_only_past_the_window():
    assert after_architecture({"architecture": {"context_window": 4096, "required_tokens": 16384}}) == "context"
    assert after_architecture({"architecture": {"context_window": 4096, "required_tokens": 4096}}) == "efficiency"
    assert after_architecture({"architecture": {"context_window": None, "required_tokens": 10**6}}) == "efficiency"


def test_efficiency_loops_until_settled():
    assert after_efficiency({"efficiency": {"settled": False}}) == "efficiency"
    assert after_efficiency({"efficiency": {"settled": True}}) == "tokenization"


def test_first_affected_step_is_the_earliest():
    assert first_affected_step({"gpu", "gpus"}) == "efficiency"
    assert first_affected_step({"concurrency"}) == "inference"
    assert first_affected_step({"gpu", "base_model"}) == "architecture"
    assert first_affected_step({"objective", "sampling"}) == "objective"
    assert first_affected_step({"corpus"}) == "tokenization"


def test_predecessor_continues_at_the_step():
    assert predecessor("efficiency") == "context"  # context → efficiency is the unconditional edge
    assert predecessor("architecture") == "objective"
    assert predecessor("inference") == "tokenization"
    assert predecessor("context") == "objective"  # context is only reached through architecture


def _task(text: str) -> dict:
    task, assumed = apply_defaults(parse_task(text))
    return task.model_dump(), [a.model_dump() for a in assumed]


def test_merge_change_two_a100s():
    task, assumed = _task("fine-tune a 13B model for legal summarisation")
    new, changed, kept = merge_change(task, assumed, "what if I had two A100s?")
    assert changed == {"gpu", "gpus"}
    assert (new["gpu"], new["gpus"]) == ("a100-80gb-sxm", 2)
    assert new["param_budget"] == 13e9 and new["objective"] == "summarisation"
    assert not any(a["field"] in ("gpu", "gpus") for a in kept)


def test_merge_change_model_replaces_budget():
    task, assumed = _task("fine-tune a 13B model for legal summarisation on an RTX 4090")
    new, changed, _ = merge_change(task, assumed, "use llama-2-7b instead")
    assert new["base_model"] == "llama-2-7b" and new["param_budget"] is None
    assert "base_model" in changed and first_affected_step(changed) == "architecture"


def test_merge_change_nothing_recognised():
    task, assumed = _task("fine-tune a 13B model for legal summarisation on an RTX 4090")
    _, changed, _ = merge_change(task, assumed, "hmm, interesting")
    assert changed == set()


def test_merge_change_rederives_defaults_for_a_new_objective():
    task, assumed = _task("summarise legal contracts with a 7B model on an RTX 4090")
    assert task["max_doc_tokens"] == 2048  # assumed for a generator
    new, changed, kept = merge_change(task, assumed, "what if it were translation from English to German?")
    assert new["objective"] == "translation" and new["max_doc_tokens"] == 512  # re-assumed for translation
    assert {"objective", "max_doc_tokens"} <= changed
    assert any(a["field"] == "max_doc_tokens" and a["value"] == 512 for a in kept)


def test_merge_change_serving_words_keep_the_mode():
    task, assumed = _task("summarise legal contracts with a 7B model on an RTX 4090")
    new, changed, kept = merge_change(task, assumed, "what if I deployed it with temperature 1.2 and no top-p?")
    assert new["mode"] == "fine-tune" and new["deploy"] and new["sampling"]["top_p"] == 1.0
    assert first_affected_step(changed) == "inference"
    assert any(a["field"] == "concurrency" for a in kept)
