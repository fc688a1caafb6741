"""Perplexity and generation-based evaluation with the real Gemma 3 270M (bundled GGUF): through
transformers (dequantised) and through llama.cpp (Q4_K_M as shipped). One transformers model per module."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from qkv.tools.errors import BadInput
from qkv.tools.evaluate import ModelEvalRequest, evaluate_model
from qkv.tools.evaluate.backends import EvalModel
from qkv.tools.evaluate.faithfulness import counterfactual_probe
from qkv.tools.evaluate.perplexity import perplexity_of
from qkv.tools.sampling import SamplingPolicy

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"
TEXT = (DATA / "apache2_excerpt.txt").read_text()
# 257 tokens with BOS: with a 128-token window that is 2 non-overlapping windows, 3 at stride 64.
N_TOKENS, WINDOW = 257, 128

pytestmark = [pytest.mark.slow, pytest.mark.llm]


@pytest.fixture(scope="module")
def hf():
    from qkv.tools.hf_models import load_causal_lm

    return load_causal_lm("gemma3-270m")


@pytest.fixture(scope="module")
def hf_ppl(hf):
    """Stride 64 and non-overlapping (stride = window) perplexities of the same 256 text tokens."""
    model, tok = hf
    return {s: perplexity_of(model, tok, TEXT, window=WINDOW, stride=s, max_tokens=N_TOKENS) for s in (64, WINDOW)}


def test_transformers_and_llama_cpp_agree_within_2_percent(hf_ppl):
    from qkv.tools.evaluate.perplexity_gguf import perplexity_gguf
    from qkv.tools.paths import bundled_gemma_gguf

    ll = perplexity_gguf(bundled_gemma_gguf(), TEXT, window=WINDOW, stride=64, max_tokens=N_TOKENS)
    tr = hf_ppl[64]
    assert ll.tokens == tr.tokens == N_TOKENS - 1  # same BOS rule, same tokens scored
    assert ll.windows == tr.windows == 3
    assert abs(ll.token_ppl / tr.token_ppl - 1) < 0.02, (ll.token_ppl, tr.token_ppl)
    assert abs(ll.bits_per_byte / tr.bits_per_byte - 1) < 0.02
    assert ll.bytes == tr.bytes and ll.words == tr.words  # both decoded the same 256-token prefix


def test_small_stride_beats_non_overlapping_windows(hf_ppl):
    strided, chunks = hf_ppl[64], hf_ppl[WINDOW]
    assert strided.tokens == chunks.tokens  # every token scored once in both
    assert strided.token_ppl < chunks.token_ppl  # more context per token
    assert strided.bits_per_byte < chunks.bits_per_byte
    r = strided  # the definitions of lm-eval-harness (facts.json lmeval-bpb)
    assert r.bits_per_byte == pytest.approx(r.nll_sum_nats / r.bytes / math.log(2))
    assert r.word_ppl == pytest.approx(math.exp(r.nll_sum_nats / r.words))
    assert r.token_ppl == pytest.approx(math.exp(r.nll_sum_nats / r.tokens))
    assert any("tokenizer" in n for n in r.notes)


def test_mode_is_restored_and_short_text_is_an_error(hf):
    import torch

    model, tok = hf
    model.train()
    try:
        with torch.no_grad():
            r = perplexity_of(model, tok, "A short sentence about licences.", window=WINDOW, allow_short=True)
        assert model.training  # restored
        assert r.window < WINDOW and r.tokens >= 5
    finally:
        model.eval()
    with pytest.raises(BadInput, match="shorter than one window"):
        perplexity_of(model, tok, "Too short.", window=WINDOW)
    with pytest.raises(BadInput, match="empty"):
        perplexity_of(model, tok, "   ", window=WINDOW)


def test_models_that_cannot_load_are_clear_errors(tmp_path):
    with pytest.raises(BadInput, match="cannot load weights"):
        EvalModel(str(tmp_path / "nope"))
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"not a gguf at all")
    with pytest.raises(BadInput, match="not a GGUF"):
        EvalModel(str(fake), backend="llama-cpp")
    with pytest.raises(BadInput, match="transformers cannot load"):
        EvalModel(str(fake), backend="transformers")


def test_generation_eval_transformers_greedy_and_beam(hf, tmp_path):
    m = EvalModel.from_loaded(*hf, label="gemma3-270m")
    for limit, policy in ((2, SamplingPolicy.greedy(max_new_tokens=8)),
                          (1, SamplingPolicy(temperature=0, num_beams=2, length_penalty=0.8, max_new_tokens=6))):
        req = ModelEvalRequest(data=str(DATA / "summaries.jsonl"), task="summarisation", limit=limit,
                               sampling=policy, perplexity=False, predictions_out=str(tmp_path / "out.jsonl"))
        report = evaluate_model(req, model=m)
        assert report.items == limit and report.scores is not None
        assert {x.name for x in report.scores.metrics} >= {"rouge1", "rougeLsum"}
        assert report.sampling == policy.describe()
        assert len(Path(report.predictions_file).read_text().splitlines()) == limit
    unbounded = SamplingPolicy(temperature=0.8, top_p=1.0, top_k=0, max_new_tokens=12)
    with pytest.raises(BadInput, match="refusing to generate"):
        evaluate_model(ModelEvalRequest(data=str(DATA / "summaries.jsonl"), sampling=unbounded), model=m)


def test_generation_eval_llama_cpp_with_perplexity():
    req = ModelEvalRequest(model="gemma3-270m", data=str(DATA / "summaries.jsonl"), task="summarisation", limit=2,
                           sampling=SamplingPolicy(temperature=0.7, top_p=0.9, top_k=40, max_new_tokens=12, seed=1),
                           window=64)
    report = evaluate_model(req)
    assert report.backend == "llama-cpp"
    assert report.perplexity is not None and report.perplexity.backend == "llama-cpp"
    assert report.scores.faithfulness is not None
    assert "top-p 0.9" in report.sampling


def test_counterfactual_probe_is_a_labelled_proxy(hf):
    m = EvalModel.from_loaded(*hf, label="gemma3-270m")
    report = counterfactual_probe(m, templates=str(DATA / "counterfactual_small.json"))
    assert len(report.pairs) == 4 and "proxy" in report.label
    for p in report.pairs:
        assert p.ppl_a > 1 and p.ppl_b > 1 and p.log_ratio == pytest.approx(math.log(p.ppl_a / p.ppl_b))
    assert 0 <= report.share_a_preferred <= 1
