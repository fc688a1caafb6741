"""Rule-based intake: free text → TaskSpec, defaults stated as assumptions, clear errors."""

from __future__ import annotations

import pytest

from qkv.agent.graph.intake import apply_answer, apply_defaults, decisive_gaps, parse_sampling, parse_task
from qkv.tools.errors import BadInput, UnknownName


def test_worked_example_is_parsed():
    t = parse_task("Fine-tune a 7B parameter Transformer for legal document summarization on a consumer GPU "
                   "with 24GB VRAM")
    assert (t.objective, t.domain, t.param_budget, t.vram_gib) == ("summarisation", "legal", 7e9, 24.0)
    assert t.gpu is None  # only the memory was stated
    task, assumed = apply_defaults(t)
    assert task.gpu == "rtx-4090"  # the 24 GB consumer card with the highest bf16 throughput stands in, as assumed
    fields = {a.field for a in assumed}
    assert {"gpu", "max_doc_tokens"} <= fields
    assert ("gpus", 1, "a consumer GPU") in {(s.field, s.value, s.text) for s in t.stated}  # 'a GPU' is one
    assert task.gpus == 1 and task.max_doc_tokens == 2048


@pytest.mark.parametrize(("text", "gpu", "gpus"), [
    ("summarise contracts on 2x A100", "a100-80gb-sxm", 2),
    ("a chat assistant on two RTX 4090s", "rtx-4090", 2),
    ("classify tickets on a T4", "t4", 1),
    ("serve it on 8 x H100", "h100-sxm", 8),
    ("chat model on one L4", "l4", 1),
    ("translate German to English on an A100 40GB", "a100-40gb-sxm", 1),
])
def test_gpu_and_count(text, gpu, gpus):
    t = parse_task(text)
    assert (t.gpu, t.gpus) == (gpu, gpus)


@pytest.mark.parametrize(("text", "field", "value"), [
    ("summarise 16k-token contracts with a 7B model", "max_doc_tokens", 16384),
    ("documents of up to 32,000 tokens, classify them", "max_doc_tokens", 32000),
    ("summarise 3k tokens reports", "doc_tokens", 3000),
    ("pre-train a 1B model on 300B tokens", "data_tokens", 3e11),
    ("pre-train with a budget of 1e21 FLOPs", "compute_flops", 1e21),
    ("classify 50k examples of tickets", "data_examples", 50000),
    ("serve llama-2-13b for 8 concurrent users", "concurrency", 8),
    ("qa under 40 ms per token with a 7B model", "latency_ms", 40.0),
])
def test_sizes_and_lengths(text, field, value):
    assert getattr(parse_task(text), field) == value


@pytest.mark.parametrize(("text", "objective", "mode"), [
    ("legal summarisation with a 7B model", "summarisation", "fine-tune"),
    ("sentiment classification of reviews", "classification", "fine-tune"),
    ("extractive question answering over manuals", "qa", "fine-tune"),
    ("translate English to German", "translation", "fine-tune"),
    ("pre-train a language model from scratch with 1e21 FLOPs", "language-modelling", "pre-train"),
    ("deploy llama-2-7b as a chatbot", "chat", "inference"),
])
def test_objective_and_mode(text, objective, mode):
    t = parse_task(text)
    assert (t.objective, t.mode) == (objective, mode)


def test_named_model_and_languages():
    t = parse_task("fine-tune Mistral-7B-v0.1 to translate French into English")
    assert t.base_model == "mistral-7b-v0.1"
    assert (t.source_lang, t.target_lang) == ("fr", "en")


def test_options_override_text():
    t = parse_task("summarise on an RTX 4090", gpu="h100", gpus=4, model="llama-2-13b")
    assert (t.gpu, t.gpus, t.base_model) == ("h100-sxm", 4, "llama-2-13b")


def test_stated_sampling_is_captured():
    assert parse_sampling("temperature 1.0 and no top-p or top-k") == {"temperature": 1.0, "top_p": 1.0, "top_k": 0}
    assert parse_sampling("use top-p 0.9, top_k=40") == {"top_p": 0.9, "top_k": 40}
    assert parse_sampling("summarise contracts") is None


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_request_is_a_clear_error(text):
    with pytest.raises(BadInput, match="empty"):
        parse_task(text)


@pytest.mark.parametrize("text", ["asdf qwerty", "1234 !!!", "lorem ipsum dolor"])
def test_garbage_request_is_a_clear_error(text):
    with pytest.raises(BadInput, match="no task found"):
        parse_task(text)


def test_unknown_gpu_option_lists_choices():
    with pytest.raises(UnknownName) as err:
        parse_task("summarise", gpu="rtx-9999")
    assert err.value.choices


def test_gaps_and_answers():
    t = parse_task("summarise legal contracts")
    assert [f for f, _ in decisive_gaps(t)] == ["gpu", "model"]
    t = apply_answer(t, "gpu", "two RTX 3090s")
    assert (t.gpu, t.gpus) == ("rtx-3090", 2)
    t = apply_answer(t, "model", "13B")
    assert t.param_budget == 13e9
    assert decisive_gaps(t) == []
    assert apply_answer(t, "model", "llama-2-7b").base_model == "llama-2-7b"


def test_unknown_gpu_answer_is_a_clear_error():
    t = parse_task("summarise legal contracts")
    with pytest.raises(UnknownName):
        apply_answer(t, "gpu", "a potato")


def test_llm_proposals_must_be_grounded_in_the_text():
    from qkv.agent.graph.nodes.intake import grounded

    text = "summarise legal contracts on the RTX-4090 in our office"
    assert grounded("RTX 4090", text) and grounded("rtx4090", text)
    assert not grounded("llama-2-7b", text)  # a name the text never mentions is an invention
    assert not grounded("", text)
