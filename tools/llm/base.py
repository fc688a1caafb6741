"""The one small interface every language-model backend speaks, the result it returns, and the factory.

Backends: `local` (llama-cpp-python over a GGUF file; default SmolLM2-135M-Instruct), `openai` (any
OpenAI-compatible HTTP endpoint: llama-server, vLLM, Ollama, llama-cpp-python's server) and `none`
(refuses to generate: the deterministic pipeline). Two hard rules are enforced here for every backend:
nothing is generated without a bounded SamplingPolicy (rule 3) and no prompt silently exceeds the
context window (rule 1; see guard.py). Heavy libraries load only inside the backend that needs them."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from qkv.tools.errors import BadInput, QkvError, UnknownName, closest
from qkv.tools.llm.guard import GuardPolicy
from qkv.tools.sampling import SamplingPolicy

BackendKind = Literal["local", "openai", "none"]
KINDS: tuple[str, ...] = ("local", "openai", "none")

__all__ = [
    "KINDS",
    "BackendError",
    "BackendKind",
    "Generation",
    "GenerationStream",
    "GuardPolicy",
    "LLMBackend",
    "SamplingPolicy",
    "open_backend",
]


class BackendError(QkvError):
    """The backend failed while generating (server died mid-stream, HTTP error, model refused)."""


class Generation(BaseModel):
    """One finished generation, with everything needed to reproduce and audit it."""

    text: str = Field(description="generated text (stop strings removed)")
    prompt_tokens: int = Field(description="tokens actually sent to the model, after any truncation")
    completion_tokens: int = Field(description="tokens generated")
    finish_reason: str = Field(description="stop (EOS or a stop string) | length (hit max_new_tokens) | ...")
    policy_used: str = Field(description="SamplingPolicy.describe() of the policy in effect (hard rule 3)")
    truncation: str | None = Field(None, description="what the context guard did, or None if the prompt fit")
    forced: bool = Field(False, description="True when an unbounded policy ran because the caller forced it")
    warnings: list[str] = Field(default_factory=list, description="policy warnings (quality risks)")
    template: str | None = Field(None, description="chat template used (chat only)")
    backend: str = Field(description="local | openai | none")
    model: str = Field(description="GGUF file name or the endpoint's model id")
    context_window: int = Field(description="tokens the model accepts (prompt + generated)")
    seconds: float = Field(description="wall time of the generation, measured")


class GenerationStream(Iterator[str]):
    """Text pieces as they are decoded; after the last piece `.result` holds the full Generation
    (policy used, truncation note, token counts), so a streaming caller can report it too.

    Known before the first piece: `policy_used`, `truncation`, `prompt_tokens`."""

    def __init__(self, pieces: Generator[str, None, Generation], *, policy_used: str,
                 truncation: str | None, prompt_tokens: int) -> None:
        self._pieces = pieces
        self.policy_used = policy_used
        self.truncation = truncation
        self.prompt_tokens = prompt_tokens
        self.result: Generation | None = None

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration as stop:
            self.result = stop.value
            raise

    def close(self) -> None:
        """Stop generating early (frees the model or the HTTP connection)."""
        self._pieces.close()


@runtime_checkable
class LLMBackend(Protocol):
    """What the agent, the evaluator and the CLI rely on. Messages are OpenAI-style dicts
    (`{"role": "system"|"user"|"assistant", "content": str}`)."""

    kind: str
    model: str
    context_window: int

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` with the model's own tokenizer."""
        ...

    def complete(self, prompt: str, policy: SamplingPolicy, *, guard: GuardPolicy | None = None) -> Generation:
        """Continue raw text (no chat template)."""
        ...

    def stream_complete(self, prompt: str, policy: SamplingPolicy, *,
                        guard: GuardPolicy | None = None) -> GenerationStream:
        """Continue raw text, yielding text pieces as they are decoded."""
        ...

    def chat(self, messages: list[dict], policy: SamplingPolicy, *, guard: GuardPolicy | None = None,
             response_format: dict | None = None) -> Generation:
        """Answer a conversation through the model's chat template; `response_format` constrains to JSON
        (`{"type": "json_object", "schema": {...}}` or OpenAI's `{"type": "json_schema", ...}`)."""
        ...

    def stream_chat(self, messages: list[dict], policy: SamplingPolicy, *,
                    guard: GuardPolicy | None = None) -> GenerationStream:
        """Answer a conversation, yielding text pieces as they are decoded."""
        ...

    def close(self) -> None:
        """Free the model / HTTP connection."""
        ...


def open_backend(kind: str | None = None, *, model: str | None = None, url: str | None = None,
                 n_ctx: int | None = None, n_threads: int | None = None) -> LLMBackend:
    """Open a backend. Unset arguments come from the environment: QKV_LLM (kind, default `local`),
    QKV_LLM_MODEL (GGUF path or endpoint model id), QKV_LLM_URL (OpenAI-compatible base URL),
    QKV_LLM_CTX (context window). `local` defaults to the bundled SmolLM2-135M-Instruct GGUF;
    `model="gemma3-270m"` picks the bundled Gemma 3 270M base GGUF."""
    kind = (kind or os.environ.get("QKV_LLM") or "local").strip().lower()
    model = model or os.environ.get("QKV_LLM_MODEL") or None
    if n_ctx is None and os.environ.get("QKV_LLM_CTX"):
        try:
            n_ctx = int(os.environ["QKV_LLM_CTX"])
        except ValueError:
            raise BadInput(f"QKV_LLM_CTX={os.environ['QKV_LLM_CTX']!r} is not an integer",
                           expected="a context window in tokens, e.g. 4096") from None
    if n_ctx is not None and n_ctx < 16:
        raise BadInput(f"context window {n_ctx} is too small", expected="n_ctx >= 16 tokens")
    if kind == "local":
        from qkv.tools.llm.local import LocalBackend

        return LocalBackend(model, n_ctx=n_ctx, n_threads=n_threads)
    if kind == "openai":
        from qkv.tools.llm.openai_compat import OpenAIBackend

        return OpenAIBackend(url or os.environ.get("QKV_LLM_URL"), model=model, n_ctx=n_ctx)
    if kind == "none":
        from qkv.tools.llm.none import NoneBackend

        return NoneBackend()
    raise UnknownName(f"no LLM backend named '{kind}'", expected="set by --llm or QKV_LLM",
                      choices=closest(kind, KINDS) or list(KINDS))
