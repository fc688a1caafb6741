"""The `openai` backend against a REAL OpenAI-compatible server started here on 127.0.0.1:
llama-cpp-python's own server (`python -m llama_cpp.server`) over the SmolLM2 GGUF. No mocks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qkv.tools.errors import BadInput, ContextExceeded
from qkv.tools.llm.base import BackendError, open_backend
from qkv.tools.llm.guard import GuardPolicy
from qkv.tools.sampling import SamplingPolicy

pytestmark = [pytest.mark.llm, pytest.mark.slow]

N_CTX = 512
ASK = [{"role": "user", "content": "Name three primary colours."}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(gguf: Path) -> tuple[subprocess.Popen, str]:
    """llama-cpp-python's server on a free port; returns once GET /v1/models answers (≤ 90 s)."""
    import httpx

    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] extras not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", str(N_CTX), "--n_threads", "1", "--n_threads_batch", "1", "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/models", timeout=1.0).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not come up within 90 s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: only this server's processes
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(smollm2_gguf):
    proc, url = start_server(smollm2_gguf)
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def remote(server):
    backend = open_backend("openai", url=server, n_ctx=N_CTX)
    yield backend
    backend.close()


def test_start_up_finds_model_tokenizer_and_window(remote, server, smollm2_gguf):
    assert remote.kind == "openai" and remote.flavor == "llama-cpp-python"
    assert remote.model.endswith(smollm2_gguf.name) and remote.context_window == N_CTX
    assert remote.count_tokens("Hello world") == 2  # the server's own SmolLM2 tokenizer


def test_chat_same_seed_same_text_as_local(remote, smollm2_gguf):
    policy = SamplingPolicy(temperature=0.8, top_p=0.9, top_k=40, max_new_tokens=12, seed=7)
    a, b = remote.chat(ASK, policy), remote.chat(ASK, policy)
    assert a.text and a.text == b.text and a.backend == "openai"
    assert a.policy_used == "temperature 0.8, top-p 0.9, top-k 40; max 12 new tokens; seed 7"
    local = open_backend("local", model=str(smollm2_gguf), n_ctx=N_CTX, n_threads=1)
    try:
        assert local.chat(ASK, policy).text == a.text  # every sampling knob reaches the server intact
    finally:
        local.close()


def test_streaming_chat_and_completion(remote):
    policy = SamplingPolicy.greedy(12)
    full = remote.chat(ASK, policy)
    stream = remote.stream_chat(ASK, policy)
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == full.text == stream.result.text
    assert stream.result.policy_used == "greedy; max 12 new tokens"
    raw = remote.stream_complete("Once upon a time", SamplingPolicy.greedy(8, stop=["."]))
    text = "".join(raw)
    assert "." not in text and raw.result.completion_tokens <= 8


def test_chat_token_count_is_an_upper_bound(remote):
    """The server's template is invisible over HTTP: the guard's estimate must never undercount."""
    gen = remote.chat(ASK, SamplingPolicy.greedy(1))
    assert remote._count_chat(ASK) >= gen.prompt_tokens  # gen.prompt_tokens is the server's own usage


def test_guards_over_http(remote):
    long = " ".join(f"item {i}" for i in range(300))
    gen = remote.complete(long, SamplingPolicy.greedy(4))
    assert gen.truncation and "exceeded the 512-token window" in gen.truncation
    assert gen.prompt_tokens <= N_CTX - 4  # the server's usage confirms it fit
    with pytest.raises(ContextExceeded):
        remote.chat([{"role": "user", "content": long}], SamplingPolicy.greedy(4), guard=GuardPolicy(strategy="strict"))
    with pytest.raises(BadInput, match="refusing to generate without a bound"):
        remote.chat(ASK, SamplingPolicy(max_new_tokens=None))


def test_json_schema_over_http(remote):
    schema = {"type": "object", "properties": {"colour": {"type": "string", "maxLength": 20}},
              "required": ["colour"]}
    gen = remote.chat(ASK, SamplingPolicy.greedy(24), response_format={"type": "json_schema",
                                                                        "json_schema": {"name": "c", "schema": schema}})
    # strict=False: llama-cpp-python's server grammar admits raw control characters inside strings
    assert set(json.loads(gen.text, strict=False)) == {"colour"}


def test_server_killed_mid_stream_is_a_clear_error_not_a_hang(smollm2_gguf):
    proc, url = start_server(smollm2_gguf)
    try:
        from qkv.tools.llm.openai_compat import OpenAIBackend

        backend = OpenAIBackend(url, n_ctx=N_CTX, timeout=30.0)  # a hang would surface as ReadTimeout
        story = [{"role": "user", "content": "Write a long story about a dragon."}]
        stream = backend.stream_chat(story, SamplingPolicy.greedy(400, repetition_penalty=1.1))
        got = [next(stream), next(stream)]
        assert all(isinstance(p, str) for p in got)
        stop_server(proc)
        with pytest.raises(BackendError) as exc:
            for _ in stream:
                pass
        msg = str(exc.value)
        assert "broke off" in msg or "without [DONE]" in msg
        assert "Timeout" not in msg  # the dead connection was noticed at once, not after the read timeout
        backend.close()
        with pytest.raises(BadInput, match="cannot reach"):  # and the dead endpoint is reported as such
            open_backend("openai", url=url, n_ctx=N_CTX)
    finally:
        stop_server(proc)
