"""`generate`: the one typed entry point behind `qkv generate`, the MCP tool and the TUI.

A request names the backend, the prompt, the sampling policy and the context guard; the answer is a
Generation that always states the policy in effect and what the guard did."""

from __future__ import annotations

import threading
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qkv.tools.llm.base import Generation, GenerationStream, LLMBackend, open_backend
from qkv.tools.llm.guard import GuardPolicy, gate_policy
from qkv.tools.sampling import SamplingPolicy

Mode = Literal["auto", "chat", "complete"]


class GenerateRequest(BaseModel):
    """One generation: where (backend/model), what (prompt), how (policy) and within which window (guard)."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description="the user's text")
    llm: Literal["local", "openai", "none"] | None = Field(None, description="backend; default $QKV_LLM or local")
    model: str | None = Field(None, description="GGUF path or alias (smollm2, gemma3-270m); endpoint model id")
    url: str | None = Field(None, description="OpenAI-compatible base URL (openai backend); default $QKV_LLM_URL")
    n_ctx: int | None = Field(None, ge=16, description="context window in tokens (local: KV cache size)")
    n_threads: int | None = Field(None, ge=1, description="CPU threads for llama.cpp")
    mode: Mode = Field("auto", description="chat (template), complete (raw text) or auto (chat if the model "
                                           "has a chat template)")
    system: str | None = Field(None, description="system message (chat mode)")
    policy: SamplingPolicy = Field(default_factory=SamplingPolicy)
    guard: GuardPolicy = Field(default_factory=GuardPolicy)


# One open backend is kept so repeated calls (TUI, MCP) do not reload the GGUF each time.
_cache: dict[tuple, LLMBackend] = {}
_cache_lock = threading.Lock()


def backend_for(req: GenerateRequest) -> LLMBackend:
    """The backend a request names, reused while the same one is asked for."""
    key = (req.llm, req.model, req.url, req.n_ctx, req.n_threads)
    with _cache_lock:
        if key not in _cache:
            for old in _cache.values():
                old.close()
            _cache.clear()
            _cache[key] = open_backend(req.llm, model=req.model, url=req.url, n_ctx=req.n_ctx,
                                       n_threads=req.n_threads)
        return _cache[key]


def close_cached() -> None:
    """Free the kept backend (tests, and the TUI when the user switches models)."""
    with _cache_lock:
        for old in _cache.values():
            old.close()
        _cache.clear()


def _use_chat(backend: LLMBackend, req: GenerateRequest) -> bool:
    if req.mode != "auto":
        return req.mode == "chat"
    template = getattr(backend, "template", None)
    return template is None or template.has_template  # remote servers apply their own template


def _messages(req: GenerateRequest) -> list[dict]:
    msgs = [{"role": "system", "content": req.system}] if req.system else []
    return [*msgs, {"role": "user", "content": req.prompt}]


def generate(req: GenerateRequest) -> Generation:
    """Generate text under a bounded sampling policy and the context guard (hard rules 1 and 3)."""
    gate_policy(req.policy, req.guard)  # refuse an unbounded policy before loading any model
    backend = backend_for(req)
    if _use_chat(backend, req):
        return backend.chat(_messages(req), req.policy, guard=req.guard)
    return backend.complete(req.prompt, req.policy, guard=req.guard)


def generate_stream(req: GenerateRequest) -> GenerationStream:
    """As `generate`, yielding text pieces; `.result` holds the Generation once the stream ends."""
    gate_policy(req.policy, req.guard)
    backend = backend_for(req)
    if _use_chat(backend, req):
        return backend.stream_chat(_messages(req), req.policy, guard=req.guard)
    return backend.stream_complete(req.prompt, req.policy, guard=req.guard)
