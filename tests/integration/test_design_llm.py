"""--llm local: the bundled model words the narrative; numbers and decisions are identical to --llm none,
and no model-worded section states a number the tools did not compute."""

from __future__ import annotations

import importlib.util
import re

import pytest

from qkv.agent.graph.api import DesignRequest, design
from qkv.agent.graph.narrate import facts, vet

WORKED = "Fine-tune a 7B parameter Transformer for legal document summarization on a consumer GPU with 24GB VRAM"

needs_llama = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                 reason="llama-cpp-python is not installed (extra: local)")


def test_vet_rejects_invented_numbers_loops_and_echoes():
    facts_text = "- peak: 9.492\n- gpu: rtx-4090\n- usable: 24.0"
    assert vet("The peak is 9.492 GiB on the rtx-4090.", facts_text) is None
    assert "28.7" in vet("A peak of 9 GiB (28.7 GiB usable).", facts_text)
    assert vet("the report is ready. the report is ready. the report is ready.", facts_text) == "repetitive output"
    assert vet("Rewrite the draft as two sentences.", facts_text) == "echoed the instructions"
    assert vet("Section of the design report: efficiency", facts_text) == "echoed the instructions"
    assert vet("What could be done differently?", facts_text).startswith("asked a question")
    assert vet("  ", facts_text) == "empty output"


@pytest.mark.slow
@pytest.mark.llm
@needs_llama
def test_local_wording_keeps_numbers_and_decisions():
    plain = design(DesignRequest(task=WORKED, llm="none"))
    worded = design(DesignRequest(task=WORKED, llm="local"))
    skip = {"narrative", "narrative_source"}
    assert worded.model_dump(exclude=skip) == plain.model_dump(exclude=skip)
    assert set(worded.narrative) == set(plain.narrative)
    allowed = {k: "\n".join(f"{a}: {b}" for a, b in v.items()) + "\n" + plain.narrative[k]
               for k, v in facts(plain).items()}
    for section, text in worded.narrative.items():
        source = worded.narrative_source[section]
        assert source == "llm:local" or source.startswith("template (model output rejected")
        if source == "llm:local":  # every number the model wrote was computed by a tool
            numbers = {n.replace(",", "").rstrip(".") for n in re.findall(r"\d+(?:[.,]\d+)*", text)}
            assert numbers <= {n.replace(",", "").rstrip(".")
                               for n in re.findall(r"\d+(?:[.,]\d+)*", allowed[section])}
        else:
            assert text == plain.narrative[section]


@pytest.mark.slow
@pytest.mark.llm
@needs_llama
def test_llm_model_picks_the_wording_model():
    """--llm-model gemma3-270m: the bundled Gemma words the prose (named in narrative_source); numbers and
    decisions are those of --llm none."""
    plain = design(DesignRequest(task=WORKED, llm="none"))
    worded = design(DesignRequest(task=WORKED, llm="local", llm_model="gemma3-270m"))
    skip = {"narrative", "narrative_source"}
    assert worded.model_dump(exclude=skip) == plain.model_dump(exclude=skip)
    for section, source in worded.narrative_source.items():
        assert source == "llm:local (gemma3-270m)" or source.startswith("template (model output rejected"), section
