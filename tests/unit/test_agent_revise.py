"""Follow-ups that change the model by family name ("use Mistral instead"): the catalog model of the task's
size, narrowed by a version or size written after the family; fuzzy family names; unknown ones named."""

from __future__ import annotations

import pytest

from qkv.agent.graph.intake import apply_answer, apply_defaults, check_answer, parse_task
from qkv.agent.graph.revise import merge_change, model_mention, unknown_model_word
from qkv.agent.graph.routing import first_affected_step
from qkv.agent.graph.schemas import TaskSpec
from qkv.tools.catalog.models import find_model
from qkv.tools.errors import UnknownName


@pytest.mark.parametrize(("text", "size", "model"), [
    ("use Mistral instead", 7e9, "mistral-7b-v0.1"),
    ("switch to Qwen 2.5 7B", 7e9, "qwen2.5-7b"),
    ("switch to Qwen 2.5 7B", 70e9, "qwen2.5-7b"),        # a stated size beats the task's size
    ("what about Llama 3.1 8B?", 13e9, "llama-3.1-8b"),
    ("try mistral-7b", 7e9, "mistral-7b-v0.1"),
    ("use qwen", 70e9, "qwen2.5-72b"),                     # family only: the task's size picks the variant
    ("use qwen", 0.5e9, "qwen2.5-0.5b"),
    ("use llama 3.1 instead", 70e9, "llama-3.1-70b"),       # version narrows, size picks
    ("try mistrall", 7e9, "mistral-7b-v0.1"),              # misspelt family: fuzzy (qkv.tools.errors.closest)
    ("switch to lama 3", 8e9, "llama-3.1-8b"),
    ("how about roberta?", 0.11e9, "roberta-base"),
])
def test_model_mention_maps_a_family_to_the_catalog_model_of_the_size(text, size, model):
    assert model_mention(text, size) == model
    assert find_model(model) is not None


@pytest.mark.parametrize("text", ["what if I had two A100s?", "my documents are 16k tokens", "hmm, interesting",
                                  "with LoRA", "what about the latency?", "use an H100 instead"])
def test_model_mention_ignores_other_changes(text):
    assert model_mention(text, 7e9) is None


def test_a_family_without_the_stated_size_is_an_error_naming_the_catalog_models():
    with pytest.raises(UnknownName, match="mistral 13B") as err:
        model_mention("use Mistral 13B", 7e9)
    assert set(err.value.choices) == {"mistral-7b-v0.1", "mistral-7b-instruct-v0.3"}  # the sizes it has


def test_unknown_model_word_names_what_is_not_in_the_catalog():
    assert unknown_model_word("use Falcon instead") == "falcon"
    assert unknown_model_word("use Mistral instead") is None   # known
    assert unknown_model_word("what about the latency?") is None  # a question topic, not a model
    assert unknown_model_word("hmm, interesting") is None


def _task(text: str) -> tuple[dict, list[dict]]:
    task, assumed = apply_defaults(parse_task(text))
    return task.model_dump(), [a.model_dump() for a in assumed]


def test_merge_change_use_mistral_on_the_worked_example():
    task, assumed = _task("Fine-tune a 7B parameter Transformer for legal document summarization on a consumer "
                          "GPU with 24GB VRAM")
    new, changed, _ = merge_change(task, assumed, "use Mistral instead")
    assert new["base_model"] == "mistral-7b-v0.1" and new["param_budget"] is None
    assert first_affected_step(changed) == "architecture"
    assert (new["gpu"], new["objective"], new["domain"]) == (task["gpu"], "summarisation", "legal")


def test_merge_change_family_uses_the_chosen_models_size_when_no_budget_was_stated():
    task, assumed = _task("fine-tune llama-2-70b for chat on two A100s")
    new, _, _ = merge_change(task, assumed, "switch to qwen", size_hint=68.98e9)
    assert new["base_model"] == "qwen2.5-72b"


def test_merge_change_qwen_with_size_is_the_model_not_a_budget():
    task, assumed = _task("fine-tune a 13B model for legal summarisation on an RTX 4090")
    new, changed, _ = merge_change(task, assumed, "switch to Qwen 2.5 7B")
    assert (new["base_model"], new["param_budget"]) == ("qwen2.5-7b", None)
    assert {"base_model", "param_budget"} <= changed


def test_merge_change_documents_length_and_gpu_count():
    task, assumed = _task("fine-tune a 13B model for legal summarisation on an RTX 3090")
    new, changed, _ = merge_change(task, assumed, "my documents are 16k tokens")
    assert new["max_doc_tokens"] == 16384 and first_affected_step(changed) == "architecture"
    new, changed, _ = merge_change(task, assumed, "what if I had two A100s?")
    assert (new["gpu"], new["gpus"]) == ("a100-80gb-sxm", 2) and first_affected_step(changed) == "efficiency"


def test_check_answer_raises_what_apply_answer_raises():
    with pytest.raises(UnknownName, match="a toaster"):
        check_answer("gpu", "a toaster")
    with pytest.raises(UnknownName, match="a toaster"):
        check_answer("model", "a toaster")  # was accepted, then failed at architecture on every resume
    check_answer("gpu", "RTX 4090")
    check_answer("model", "13B")
    check_answer("gpu", "")  # empty: the stated default will be taken
    task = apply_answer(TaskSpec(text="summarise contracts"), "model", "llama-2-13b")
    assert task.base_model == "llama-2-13b"
