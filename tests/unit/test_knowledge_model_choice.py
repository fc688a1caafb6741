"""Base-model choice by capability (qkv.tools.knowledge.model_choice): languages, specialisation, size,
effective context and instruct variant filter before size and window; every loser says why."""

from __future__ import annotations

from qkv.tools.catalog.models import get_model, list_models
from qkv.tools.knowledge.model_choice import ChoiceRequest, choose_model


def _lost(choice, name: str) -> str:
    return " ".join(next(c for c in choice.candidates if c.model == name).reasons)


def test_languages_filter_before_size():
    c = choose_model(ChoiceRequest(kind="decoder", params=7e9, languages=["en", "hi", "ar"]))
    assert {"hi", "ar"} <= set(get_model(c.chosen).capabilities.languages)
    assert "does not cover hi, ar" in _lost(c, "llama-2-7b")
    assert "does not cover ar" in _lost(c, "llama-3.1-8b")


def test_chat_prefers_the_instruct_variant_and_says_so():
    c = choose_model(ChoiceRequest(kind="decoder", params=7e9, instruct=True))
    assert get_model(c.chosen).capabilities.variant == "instruct"
    # The chosen model's base sibling (the catalog entry whose instruct variant it is) lost for being a base.
    bases = [m.name for m in list_models() if m.capabilities and m.capabilities.instruct_variant == c.chosen]
    assert bases, f"{c.chosen} has no base model in the catalog to weigh it against"
    assert all("instruct variant" in _lost(c, b) for b in bases)


def test_task_fine_tuning_prefers_the_base_model_of_equal_data():
    c = choose_model(ChoiceRequest(kind="decoder", params=7e9))
    assert get_model(c.chosen).capabilities.variant == "base"
    assert "more data" in _lost(c, "llama-2-7b")  # 2T tokens against 15-18T at the same size


def test_code_tasks_get_code_models_and_other_tasks_do_not():
    assert get_model(choose_model(ChoiceRequest(kind="decoder", params=1.3e9, code=True)).chosen
                     ).capabilities.specialisation == "code"
    c = choose_model(ChoiceRequest(kind="decoder", params=7e9))
    assert "code-specialised" in _lost(c, "deepseek-coder-6.7b-base")


def test_effective_context_is_what_counts():
    c = choose_model(ChoiceRequest(kind="decoder", params=8e9, need_tokens=60_000))
    # Llama 3.1 8B claims 128k but RULER measures 32k effective: it loses on the measured window.
    assert "effective window 32,768 < the 60,000 tokens needed" in _lost(c, "llama-3.1-8b")
    assert c.chosen != "llama-3.1-8b"
    c = choose_model(ChoiceRequest(kind="decoder", params=7e9, need_tokens=200_000))
    assert c.warnings and "context" in c.warnings[0]  # nothing covers it: relaxed, and said


def test_encoders_are_chosen_among_encoders():
    c = choose_model(ChoiceRequest(kind="encoder", need_tokens=256))
    assert c.chosen in ("bert-base-uncased", "bert-large-uncased", "roberta-base")
    assert all(x.verdict == "lost" and x.reasons for x in c.candidates if x.model != c.chosen)
