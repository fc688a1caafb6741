"""The `none` backend: no language model. Every generation call fails with a clear message, so the
deterministic pipeline (`--llm none`) can never silently depend on a model; extraction falls back to
the rule-based parser alone (extract.py treats `none` like no backend)."""

from __future__ import annotations

from qkv.tools.errors import BadInput
from qkv.tools.llm.guard import GuardPolicy
from qkv.tools.sampling import SamplingPolicy


def _refuse() -> BadInput:
    return BadInput("no language model is configured (--llm none)",
                    expected="--llm local (llama.cpp over a GGUF) or --llm openai with QKV_LLM_URL")


class NoneBackend:
    """A backend that generates nothing; `count_tokens` still answers with a stated upper bound
    (UTF-8 bytes: no tokenizer produces more tokens than bytes except for added special tokens)."""

    kind = "none"
    model = "none"
    context_window = 0

    def count_tokens(self, text: str) -> int:
        return len(text.encode("utf-8"))

    def complete(self, prompt: str, policy: SamplingPolicy, *, guard: GuardPolicy | None = None):
        raise _refuse()

    def stream_complete(self, prompt: str, policy: SamplingPolicy, *, guard: GuardPolicy | None = None):
        raise _refuse()

    def chat(self, messages: list[dict], policy: SamplingPolicy, *, guard: GuardPolicy | None = None,
             response_format: dict | None = None):
        raise _refuse()

    def stream_chat(self, messages: list[dict], policy: SamplingPolicy, *, guard: GuardPolicy | None = None):
        raise _refuse()

    def close(self) -> None:
        pass
