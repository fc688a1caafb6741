"""The auditor on real text: Python's standard library (code) and /usr/share/common-licenses (legal)."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from qkv.tools.tokenizer.audit import AuditReport, AuditRequest, _recommend, audit

CODE = str(Path(sysconfig.get_paths()["stdlib"]) / "*.py")
LEGAL = "/usr/share/common-licenses/*"
TOKS = ["gpt2", "qwen2.5-0.5b", "bert-base-uncased"]
pytestmark = pytest.mark.slow  # two real corpora through three real tokenizers (~5-15 s for the module)


@pytest.fixture(scope="module")
def code() -> AuditReport:
    return audit(AuditRequest(tokenizers=TOKS, corpus=[CODE], sample=12, extend=False))


@pytest.fixture(scope="module")
def legal() -> AuditReport:
    return audit(AuditRequest(tokenizers=TOKS, corpus=[LEGAL], max_new_tokens=200))


def by_name(report: AuditReport) -> dict:
    return {m.name: m for m in report.tokenizers}


def test_byte_level_bpe_fragments_code_less_than_uncased_wordpiece(code):
    m = by_name(code)
    qwen, bert, gpt2 = m["qwen2.5-0.5b"], m["bert-base-uncased"], m["gpt2"]
    assert qwen.fertility < bert.fertility and qwen.pcw < bert.pcw
    assert gpt2.fertility < bert.fertility and gpt2.pcw < bert.pcw
    # Qwen has tokens for runs of spaces (indentation); GPT-2 spends a token on nearly every space
    assert qwen.tokens < 0.7 * gpt2.tokens and qwen.chars_per_token > 1.5 * gpt2.chars_per_token
    assert code.ranking[0].tokenizer == "qwen2.5-0.5b" and code.best == "qwen2.5-0.5b"


def test_code_is_more_fragmented_than_legal_prose(code, legal):
    c, lg = by_name(code), by_name(legal)
    for name in TOKS:
        assert c[name].fertility > lg[name].fertility
        assert c[name].chars_per_token < lg[name].chars_per_token


def test_side_by_side_consistency(legal):
    rows = legal.ranking
    assert [r.tokens for r in rows] == sorted(r.tokens for r in rows)
    assert rows[0].inflation == 1.0 and all(r.inflation >= 1.0 for r in rows)
    for m in legal.tokenizers:
        assert m.inflation == m.tokens / rows[0].tokens
        assert m.chars_per_token == m.characters / m.tokens and m.bytes_per_token == m.bytes / m.tokens
        assert m.unk_rate == m.unk_tokens / m.tokens
        assert m.words == legal.corpus.words
        frag = m.fragmented
        assert frag and all(f.n_pieces == len(f.pieces) >= 2 and f.excess_tokens == f.count * (f.n_pieces - 1)
                            for f in frag)
        assert [f.excess_tokens for f in frag] == sorted((f.excess_tokens for f in frag), reverse=True)
    names = {d.name for d in legal.definitions}
    assert {"fertility", "pcw", "chars_per_token", "bytes_per_token", "unk_rate", "byte_fallback_rate",
            "inflation"} <= names
    assert legal.plot["tokenizers"] == TOKS and len(legal.plot["fertility"]) == 3
    assert AuditReport.model_validate_json(legal.model_dump_json()) == legal


def test_extension_is_measured_on_a_real_copy(legal):
    for m in legal.tokenizers:
        e = m.extension
        assert e is not None and 0 < e.added <= 200 and len(e.tokens) == e.added
        assert e.tokens_before == m.tokens and e.tokens_after < e.tokens_before
        assert e.sequence_saving == 1 - e.tokens_after / e.tokens_before
        assert e.fertility_after < e.fertility_before == m.fertility and e.pcw_after < e.pcw_before
    gpt2 = by_name(legal)["gpt2"]
    assert gpt2.extension.hidden_size == 768  # catalog n_embd; GPT-2 ties input and output embeddings
    assert gpt2.extension.new_trainable_params == gpt2.extension.added * 768
    assert "resize_token_embeddings" in gpt2.extension.cost and "mean" in gpt2.extension.cost


def test_context_window_flags(legal):
    m = by_name(legal)
    gpt2, qwen = m["gpt2"].context, m["qwen2.5-0.5b"].context
    assert gpt2.window == 1024 and "catalog gpt2" in gpt2.window_source
    assert not gpt2.typical_fits and gpt2.median_doc_tokens > 1024 and gpt2.docs_over > 0
    assert "no longer fits" in gpt2.note
    assert gpt2.docs_over_after_extension <= gpt2.docs_over
    assert qwen.window == 32768 and qwen.typical_fits and qwen.docs_over == 0
    assert legal.context_flags == [x.context for x in legal.tokenizers]


def test_recommendation_follows_the_stated_rule(legal):
    gpt2 = by_name(legal)["gpt2"]
    saving = gpt2.extension.sequence_saving
    base = AuditRequest(tokenizers=TOKS, corpus=[LEGAL])
    keep = _recommend("gpt2", gpt2, base.model_copy(update={"extend_min_saving": saving + 0.01}), legal.best)
    assert keep.action == "keep" and f"{saving:.1%}" in keep.reason
    ext = _recommend("gpt2", gpt2, base.model_copy(update={"extend_min_saving": saving - 0.001}), legal.best)
    assert ext.action == "extend" and ext.n_tokens == gpt2.extension.added
    assert f"{gpt2.extension.tokens_before:,} -> {gpt2.extension.tokens_after:,}" in ext.reason
    adapter = _recommend("gpt2", gpt2, base.model_copy(update={"extend_min_saving": 0.9, "adapter_fertility": 1.0}),
                         legal.best)
    assert adapter.action == "adapter" and "adapter" in adapter.reason
    assert legal.recommendation == legal.recommendations[0] and legal.recommendation.tokenizer == "gpt2"
    assert "no longer fits" in legal.recommendation.reason  # the context flag travels with the decision


def test_context_window_override(tmp_path):
    path = tmp_path / "doc.txt"
    path.write_text("the lessee shall pay the rent " * 40)
    report = audit(AuditRequest(tokenizers=["gpt2"], corpus=[str(path)], context_window=100, extend=False))
    flag, n = report.context_flags[0], report.tokenizers[0].tokens
    assert n > 100 and flag.window == 100 and flag.window_source.startswith("request") and flag.docs_over == 1
    exact = audit(AuditRequest(tokenizers=["gpt2"], corpus=[str(path)], context_window=n, extend=False))
    assert exact.context_flags[0].docs_over == 0 and exact.context_flags[0].typical_fits  # a window of n fits n
