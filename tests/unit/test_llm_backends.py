"""Backend selection, errors that need no model, sampling-argument mapping and rule-only extraction."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from qkv.tools.errors import BadInput, UnknownName
from qkv.tools.llm.base import Generation, GenerationStream, LLMBackend, open_backend
from qkv.tools.llm.extract import bound_strings, extract, extract_with_provenance, missing_schema
from qkv.tools.sampling import SamplingPolicy


class Task(BaseModel):
    params_b: float | None = Field(None, gt=0, description="model size in billions of parameters")
    gpu_memory_gb: float | None = Field(None, gt=0, description="GPU memory in GB")
    domain: str | None = Field(None, description="task domain")
    method: Literal["full", "lora", "qlora"] | None = Field(None, description="fine-tuning method")


def rules(text: str) -> dict:
    found = {}
    if m := re.search(r"(\d+(?:\.\d+)?)\s*B\b", text):
        found["params_b"] = float(m.group(1))
    if m := re.search(r"(\d+)\s*GB", text):
        found["gpu_memory_gb"] = float(m.group(1))
    if m := re.search(r"\b(qlora|lora)\b", text, re.I):
        found["method"] = m.group(1).lower()
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unknown_backend_names_the_choices():
    with pytest.raises(UnknownName) as exc:
        open_backend("opneai")
    assert "did you mean: openai" in str(exc.value)


def test_none_backend_refuses_to_generate(monkeypatch):
    monkeypatch.setenv("QKV_LLM", "none")
    backend = open_backend()
    assert isinstance(backend, LLMBackend) and backend.kind == "none"
    with pytest.raises(BadInput, match="no language model is configured"):
        backend.chat([{"role": "user", "content": "hi"}], SamplingPolicy())


def test_bad_context_env(monkeypatch):
    monkeypatch.setenv("QKV_LLM_CTX", "lots")
    with pytest.raises(BadInput, match="QKV_LLM_CTX"):
        open_backend("none")


def test_unreachable_endpoint_is_a_clear_error():
    port = free_port()  # bound then released: nothing listens there
    with pytest.raises(BadInput) as exc:
        open_backend("openai", url=f"http://127.0.0.1:{port}/v1")
    msg = str(exc.value)
    assert f"cannot reach the OpenAI-compatible endpoint at http://127.0.0.1:{port}/v1" in msg
    assert "QKV_LLM_URL" in msg


def test_openai_needs_a_url(monkeypatch):
    monkeypatch.delenv("QKV_LLM_URL", raising=False)
    with pytest.raises(BadInput, match="no OpenAI-compatible endpoint URL"):
        open_backend("openai")
    with pytest.raises(BadInput, match="no http"):
        open_backend("openai", url="127.0.0.1:8080")


def test_missing_and_non_gguf_files(tmp_path):
    from qkv.tools.llm.local import resolve_gguf

    with pytest.raises(BadInput, match="does not exist"):
        resolve_gguf(str(tmp_path / "nope.gguf"))
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(BadInput, match="is not a GGUF file"):
        resolve_gguf(str(fake))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInput, match=r"holds no \.gguf"):
        resolve_gguf(str(empty))


def test_sampling_arguments_are_all_explicit():
    from qkv.tools.llm.local import sampling_kwargs

    kw = sampling_kwargs(SamplingPolicy(temperature=0.5, top_p=0.8, top_k=20, min_p=0.0, repetition_penalty=1.1,
                                        stop=["\n\n"], seed=3))
    # min_p must be sent even when 0: llama-cpp-python's own default is 0.05
    assert kw == {"temperature": 0.5, "top_p": 0.8, "top_k": 20, "min_p": 0.0, "typical_p": 1.0,
                  "repeat_penalty": 1.1, "frequency_penalty": 0.0, "presence_penalty": 0.0, "stop": ["\n\n"],
                  "seed": 3}
    with pytest.raises(BadInput, match="beam search"):
        sampling_kwargs(SamplingPolicy(num_beams=4))


def test_rules_only_extraction_is_validated():
    task = extract(None, "Fine-tune a 7B model with QLoRA on one 24 GB GPU", Task, rules)
    assert task == Task(params_b=7.0, gpu_memory_gb=24.0, method="qlora")
    ex = extract_with_provenance(open_backend("none"), "a 1.5B model", Task, rules)
    assert ex.value == Task(params_b=1.5) and ex.from_rules == ["params_b"]
    assert ex.from_model == [] and ex.generation is None
    assert ex.still_missing == ["gpu_memory_gb", "domain", "method"]
    # the rule found params_b = 0, which the schema forbids (gt=0): a clear BadInput, not a bad object
    with pytest.raises(BadInput, match=r"'params_b' = 0\.0 read from the text is invalid"):
        extract(None, "a 0 B model", Task, rules)


def test_schema_for_missing_fields_is_nullable_required_and_bounded():
    schema = missing_schema(Task, ["domain", "method"])
    assert schema["required"] == ["domain", "method"]
    assert set(schema["properties"]) == {"domain", "method"}
    dom = schema["properties"]["domain"]["anyOf"]
    assert {"type": "string", "maxLength": 80} in dom and {"type": "null"} in dom
    meth = schema["properties"]["method"]["anyOf"]
    assert any(m.get("enum") == ["full", "lora", "qlora"] and "maxLength" not in m for m in meth)
    assert bound_strings({"type": "string", "maxLength": 5}) == {"type": "string", "maxLength": 5}


def test_generation_stream_exposes_the_result():
    def pieces():
        yield "a"
        yield "b"
        return Generation(text="ab", prompt_tokens=1, completion_tokens=2, finish_reason="stop", policy_used="greedy",
                          backend="none", model="m", context_window=8, seconds=0.0)

    stream = GenerationStream(pieces(), policy_used="greedy", truncation=None, prompt_tokens=1)
    assert "".join(stream) == "ab" and stream.result.text == "ab"


def _qkv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qkv.agent.cli", *args], capture_output=True, text=True, timeout=120)


def test_cli_refuses_an_unbounded_policy_before_loading_a_model():
    out = _qkv("generate", "hi", "--temperature", "1", "--top-p", "1", "--top-k", "0")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "refusing to generate without a bound" in out.stderr and "--force" in out.stderr
    out = _qkv("generate", "hi", "--unbounded")
    assert out.returncode == 2 and "no max_new_tokens" in out.stderr


def test_cli_schema_and_bad_option():
    out = _qkv("schema", "generate")
    assert out.returncode == 0 and "policy_used" in json.loads(out.stdout)["properties"]
    out = _qkv("generate", "hi", "--context", "middle-out")
    assert out.returncode == 2 and "unknown --context strategy 'middle-out'" in out.stderr
    assert "head_tail" in out.stderr


def test_the_one_reader_of_the_llm_setting():
    from qkv.tools.errors import BadInput
    from qkv.tools.llm.setting import is_llm_setting, llm_kind

    assert [llm_kind(s) for s in ("none", " local ", "http://127.0.0.1:8080/v1", "HTTPS://x", None)] == [
        "none", "local", "openai", "openai", "none"]
    for bad in ("gpt-17", "ftp://x", "Local"):
        assert not is_llm_setting(bad)
        with pytest.raises(BadInput, match="an http"):
            llm_kind(bad)
