"""The local backend on the real SmolLM2-135M-Instruct and Gemma 3 270M GGUFs (llama.cpp, offline, CPU)."""

from __future__ import annotations

import json
import re

import pytest

from qkv.tools.errors import BadInput, ContextExceeded
from qkv.tools.llm.base import Generation, open_backend
from qkv.tools.llm.chat import GGUF_TEMPLATE, PLAIN
from qkv.tools.llm.guard import GuardPolicy
from qkv.tools.sampling import SamplingPolicy

pytestmark = [pytest.mark.llm, pytest.mark.slow]

ASK = [{"role": "user", "content": "Name three primary colours."}]


@pytest.fixture(scope="module")
def smol(smollm2_gguf):
    backend = open_backend("local", model=str(smollm2_gguf), n_ctx=512, n_threads=1)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def gemma(gemma_gguf):
    backend = open_backend("local", model=str(gemma_gguf), n_ctx=256, n_threads=1)
    yield backend
    backend.close()


def test_backend_reports_window_and_template(smol, gemma):
    assert (smol.kind, smol.context_window, smol.trained_window) == ("local", 512, 8192)
    assert smol.template.source == GGUF_TEMPLATE and smol.template.has_template
    assert gemma.context_window == 256 and gemma.trained_window == 32768
    assert not gemma.template.has_template and gemma.template.source == PLAIN


def test_same_seed_same_text(smol):
    policy = SamplingPolicy(temperature=0.9, top_p=0.95, top_k=50, max_new_tokens=16, seed=1234)
    a = smol.chat(ASK, policy)
    b = smol.chat(ASK, policy)
    assert isinstance(a, Generation) and a.text and a.text == b.text
    assert a.policy_used == "temperature 0.9, top-p 0.95, top-k 50; max 16 new tokens; seed 1234"
    assert a.template == GGUF_TEMPLATE and a.truncation is None and not a.forced
    others = {smol.chat(ASK, policy.model_copy(update={"seed": s})).text for s in (1, 2, 3)}
    assert len(others | {a.text}) > 1  # the seed really drives the sampler


def test_greedy_matches_raw_llama_cpp(gemma, gemma_gguf):
    """qkv's local backend sends exactly what llama-cpp-python would: same ids, same greedy text."""
    import llama_cpp

    prompt = "The three primary colours are"
    ours = gemma.complete(prompt, SamplingPolicy.greedy(12))
    raw = llama_cpp.Llama(model_path=str(gemma_gguf), n_ctx=256, n_threads=1, verbose=False)
    try:
        ref = raw.create_completion(prompt, max_tokens=12, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0,
                                    repeat_penalty=1.0)
    finally:
        raw.close()
    assert ours.text == ref["choices"][0]["text"]
    assert ours.prompt_tokens == ref["usage"]["prompt_tokens"]
    assert ours.completion_tokens == ref["usage"]["completion_tokens"] == 12 and ours.finish_reason == "length"


def test_stop_strings_are_respected(gemma):
    prompt = "A list of fruits:\n1."
    free = gemma.complete(prompt, SamplingPolicy.greedy(24))
    # stop on a piece the unconstrained text really contains (the second list item's number, a comma...)
    stop = next(s for s in ("\n2.", "\n", ",", " ") if s in free.text[1:])
    cut = gemma.complete(prompt, SamplingPolicy.greedy(24, stop=[stop]))
    assert cut.text == free.text[:free.text.index(stop, 1 if free.text.startswith(stop) else 0)]
    assert stop not in cut.text[1:] and cut.finish_reason == "stop"
    assert repr(stop) in cut.policy_used


def test_stream_equals_the_full_generation(smol):
    policy = SamplingPolicy.greedy(16)
    full = smol.chat(ASK, policy)
    stream = smol.stream_chat(ASK, policy)
    assert stream.policy_used == "greedy; max 16 new tokens" and stream.truncation is None
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == full.text
    assert stream.result.text == full.text and stream.result.prompt_tokens == full.prompt_tokens


def test_long_prompt_is_truncated_and_says_so(gemma):
    text = " ".join(f"item {i}" for i in range(400))  # ~1,200 tokens for a 256-token window
    assert gemma.count_tokens(text) > 1000
    gen = gemma.complete(text, SamplingPolicy.greedy(8))
    assert 200 < gen.prompt_tokens <= 256 - 8
    assert gen.truncation and "exceeded the 256-token window" in gen.truncation and "head and tail" in gen.truncation
    slide = gemma.complete(text, SamplingPolicy.greedy(8), guard=GuardPolicy(strategy="sliding"))
    assert "sliding window" in slide.truncation and slide.prompt_tokens <= 248
    with pytest.raises(ContextExceeded, match="exceeds the 256-token window"):
        gemma.complete(text, SamplingPolicy.greedy(8), guard=GuardPolicy(strategy="strict"))


def test_long_conversation_drops_turns(smol):
    turns = [{"role": "system", "content": "Be brief."}]
    for i in range(16):
        turns += [{"role": "user", "content": f"Fact {i}: the code word number {i} is {'blue ' * 8}"},
                  {"role": "assistant", "content": "Noted."}]
    turns.append({"role": "user", "content": "Which colour did I repeat?"})
    gen = smol.chat(turns, SamplingPolicy.greedy(8), guard=GuardPolicy(strategy="sliding"))
    assert gen.prompt_tokens <= 512 - 8
    assert "dropped" in gen.truncation and "oldest" in gen.truncation


def test_unbounded_refused_forced_reported(smol):
    full_tail = SamplingPolicy(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=4, seed=0)
    with pytest.raises(BadInput, match="refusing to generate without a bound"):
        smol.chat(ASK, full_tail)
    gen = smol.chat(ASK, full_tail, guard=GuardPolicy(force=True))
    assert gen.forced and any("FORCED" in w for w in gen.warnings) and gen.completion_tokens <= 4


def test_base_model_chat_uses_the_stated_plain_fallback(gemma):
    gen = gemma.chat([{"role": "user", "content": "Say hello."}], SamplingPolicy.greedy(8))
    assert gen.template == PLAIN and any("no chat template" in w for w in gen.warnings)


def test_json_schema_constrained_output(smol):
    schema = {"type": "object", "properties": {"colour": {"type": "string", "maxLength": 20},
                                               "count": {"type": "integer"}}, "required": ["colour", "count"]}
    gen = smol.chat([{"role": "user", "content": "Give a colour and a count as JSON."}], SamplingPolicy.greedy(48),
                    response_format={"type": "json_object", "schema": schema})
    data = json.loads(gen.text)
    assert set(data) == {"colour", "count"} and isinstance(data["count"], int) and len(data["colour"]) <= 20


def test_extraction_rules_win_model_fills_gaps_validated(smol):
    from typing import Literal

    from pydantic import BaseModel, Field

    from qkv.tools.llm.extract import extract_with_provenance

    class Task(BaseModel):
        params_b: float | None = Field(None, gt=0, description="model size in billions of parameters")
        domain: str | None = Field(None, description="the task domain, e.g. legal summarisation")
        method: Literal["full", "lora", "qlora"] | None = Field(None, description="fine-tuning method")

    def rules(text: str) -> dict:
        m = re.search(r"(\d+(?:\.\d+)?)\s*B\b", text)
        return {"params_b": float(m.group(1))} if m else {}

    ex = extract_with_provenance(smol, "Fine-tune a 7B model for legal summarisation.", Task, rules)
    assert isinstance(ex.value, Task) and ex.value.params_b == 7.0 and ex.from_rules == ["params_b"]
    assert "params_b" not in ex.from_model and ex.generation is not None
    json.loads(ex.generation)  # the grammar always yields JSON
    for f in ex.from_model:  # whatever the model filled passed validation
        assert getattr(ex.value, f) is not None
    assert set(ex.from_model) | set(ex.still_missing) | set(ex.rejected) >= {"domain", "method"} - set(ex.from_rules)


def test_corrupt_gguf_is_bad_input(tmp_path, smollm2_gguf):
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(smollm2_gguf.read_bytes()[:1_000_000])  # a real header, the tensors cut off
    with pytest.raises(BadInput, match=r"llama\.cpp cannot load truncated\.gguf"):
        open_backend("local", model=str(bad), n_ctx=64)


def test_generate_api_picks_raw_completion_for_a_base_model(gemma_gguf):
    from qkv.tools.llm.api import GenerateRequest, close_cached, generate, generate_stream

    req = GenerateRequest(prompt="The capital of France is", model=str(gemma_gguf), n_ctx=256, n_threads=1,
                          policy=SamplingPolicy.greedy(6))
    try:
        gen = generate(req)
        assert gen.template is None and gen.completion_tokens == 6  # auto → complete(): no chat template
        stream = generate_stream(req)
        assert "".join(stream) == gen.text == stream.result.text
    finally:
        close_cached()


def test_cli_generate_json_and_stream(gemma_gguf):
    import subprocess
    import sys

    base = [sys.executable, "-m", "qkv.agent.cli", "generate", "The capital of France is", "-m", str(gemma_gguf),
            "--temperature", "0", "--max-new-tokens", "6", "--n-ctx", "256", "--threads", "1"]
    out = subprocess.run([*base, "--json"], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    gen = Generation.model_validate_json(out.stdout)
    assert gen.policy_used == "greedy; max 6 new tokens" and gen.completion_tokens == 6
    out = subprocess.run([*base, "--stream"], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout == gen.text + "\n"
    assert "policy: greedy; max 6 new tokens" in out.stderr and "llama_" not in out.stderr
