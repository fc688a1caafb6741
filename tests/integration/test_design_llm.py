"""--llm local: numbers and decisions are identical to --llm none; the bundled SmolLM2-135M words no report
section (it is the chat model, docs/model-wording.md); a named model rewords sections, and a worded section
stands only when the gate (`narrate.vet`) accepts it, so no model sentence states a number the tools did not
compute or drops one they did."""

from __future__ import annotations

import importlib.util
import re

import pytest

from qkv.agent.graph.api import DesignRequest, design
from qkv.agent.graph.narrate import BUNDLED_SOURCE, facts
from qkv.agent.graph.wording_gate import vet

WORKED = "Fine-tune a 7B parameter Transformer for legal document summarization on a consumer GPU with 24GB VRAM"

needs_llama = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                 reason="llama-cpp-python is not installed (extra: local)")


def test_vet_rejects_invented_numbers_loops_and_echoes():
    facts_text = "- peak: 9.492\n- gpu: rtx-4090\n- usable: 24.0"
    assert vet("The peak is 9.492 GiB on the rtx-4090.", facts_text) is None
    assert "28.7" in vet("A peak of 9 GiB (28.7 GiB usable).", facts_text)
    assert vet("the report is ready. the report is ready. the report is ready.", facts_text) == "repetitive output"
    assert vet("Rewrite the draft as two sentences.", facts_text).startswith("echoed the instructions")
    assert vet("Section of the design report: efficiency", facts_text).startswith("echoed the instructions")
    assert vet("What could be done differently?", facts_text).startswith("asked a question")
    assert vet("  ", facts_text) == "empty output"


def test_default_local_run_is_the_templates(monkeypatch):
    """`make run`: --llm local with no model named loads no model for the report; it reads as --llm none."""
    monkeypatch.delenv("QKV_LLM_MODEL", raising=False)
    plain = design(DesignRequest(task=WORKED, llm="none"))
    local = design(DesignRequest(task=WORKED, llm="local"))
    assert local.model_dump(exclude={"narrative_source"}) == plain.model_dump(exclude={"narrative_source"})
    assert set(local.narrative_source.values()) == {BUNDLED_SOURCE}


def _check_worded(plain, worded, label: str) -> None:
    """Numbers and decisions as --llm none; each section either the template (and why) or a wording the
    gate accepts, whose numbers the tools computed."""
    skip = {"narrative", "narrative_source"}
    assert worded.model_dump(exclude=skip) == plain.model_dump(exclude=skip)
    assert set(worded.narrative) == set(plain.narrative)
    for section, slots in facts(plain).items():
        text, source = worded.narrative[section], worded.narrative_source[section]
        allowed = "\n".join(f"- {k}: {v}" for k, v in slots.items()) + "\n" + plain.narrative[section]
        if source == label:
            assert vet(text, allowed, keep=plain.narrative[section]) is None, section
            numbers = {n.replace(",", "").rstrip(".") for n in re.findall(r"\d+(?:[.,]\d+)*", text)}
            assert numbers <= {n.replace(",", "").rstrip(".") for n in re.findall(r"\d+(?:[.,]\d+)*", allowed)}
        else:
            assert source.startswith(("template (model output rejected", "template (the model returned")), source
            assert text == plain.narrative[section]


@pytest.mark.slow
@pytest.mark.llm
@needs_llama
def test_named_smollm2_is_gated():
    """--llm-model smollm2 asks the bundled 135M model to word the report anyway: the gate decides."""
    plain = design(DesignRequest(task=WORKED, llm="none"))
    worded = design(DesignRequest(task=WORKED, llm="local", llm_model="smollm2"))
    _check_worded(plain, worded, "llm:local (smollm2)")


@pytest.mark.slow
@pytest.mark.llm
@needs_llama
def test_llm_model_picks_the_wording_model():
    """--llm-model gemma3-270m: the bundled Gemma words the prose (named in narrative_source) where the gate
    accepts it; numbers and decisions are those of --llm none."""
    plain = design(DesignRequest(task=WORKED, llm="none"))
    worded = design(DesignRequest(task=WORKED, llm="local", llm_model="gemma3-270m"))
    _check_worded(plain, worded, "llm:local (gemma3-270m)")
