"""Who words the chat replies. The facts and decisions always come from the report; with `--llm none`
replies are the templates, with `--llm local` (or a URL) the model rephrases the template's facts and
its text streams token by token. A model's wording that states a number absent from the facts is
discarded and the template is shown instead (words may vary, numbers may not)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from pydantic import BaseModel

from qkv.tui.facts import Fact, invented_numbers


class VoiceConfig(BaseModel):
    """The LLM setting shown in the header and chosen with /llm: 'none', 'local', or an http(s) URL."""

    llm: str = "none"
    model: str | None = None

    @property
    def kind(self) -> str:
        """'none' | 'local' | 'openai', or 'invalid' (the app says what is expected)."""
        from qkv.tools.llm.setting import is_llm_setting, llm_kind

        return llm_kind(self.llm) if is_llm_setting(self.llm) else "invalid"

    def describe(self) -> str:
        if self.kind == "none":
            return "LLM: none (templates)"
        if self.kind == "local":
            return f"LLM: local · {self.model or 'SmolLM2-135M-Instruct (bundled)'}"
        return f"LLM: {self.llm}" + (f" · {self.model}" if self.model else "")


class Voice:
    """Lazily opens the backend on first use (in a worker thread) so the app starts instantly."""

    def __init__(self, config: VoiceConfig) -> None:
        self.config = config
        self._backend = None
        self._lock = threading.Lock()
        self.last_note: str | None = None

    @property
    def uses_model(self) -> bool:
        return self.config.kind != "none"

    def backend(self):
        with self._lock:
            if self._backend is None:
                from qkv.tools.llm.setting import open_setting

                self._backend = open_setting(self.config.llm, model=self.config.model)
            return self._backend

    def close(self) -> None:
        with self._lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None

    def stream_answer(self, question: str, facts: list[Fact], template: str) -> Iterator[str]:
        """Yield the reply piece by piece. With no model, or no facts, the template is the reply."""
        self.last_note = None
        if not self.uses_model or not facts:
            yield template  # a template is complete at once: nothing to stream
            return
        from qkv.tools.sampling import SamplingPolicy

        facts_text = "\n".join(f"- {f.line()}" for f in facts)
        messages = [{"role": "system", "content": _system()},
                    {"role": "user", "content": f"Facts from the design report:\n{facts_text}\n\nQuestion: {question}"}]
        policy = SamplingPolicy(temperature=0.2, top_p=0.9, top_k=40, max_new_tokens=120, seed=0)
        text = ""
        try:
            stream = self.backend().stream_chat(messages, policy)
            for piece in stream:
                text += piece
                yield piece
        except Exception as exc:  # a backend failure must not kill the chat: fall back to the template
            self.last_note = f"(the language model failed: {exc}; the facts are below)"
            yield "\n" + self.last_note + "\n" + template
            return
        bad = invented_numbers(text, facts, question)
        if bad:
            self.last_note = (f"(the model's wording stated {', '.join(sorted(bad))}, which the report does not; "
                              "showing the report's facts instead)")
        elif repeats(text):
            self.last_note = "(the model's wording repeated itself; showing the report's facts instead)"
        yield "\n\n" + (self.last_note + "\n" if self.last_note else "") + template

    def phrase_summary(self, template: str) -> Iterator[str]:
        """Summaries of a finished design are templates over the report's numbers (the report's own
        narrative is worded by the agent under the same LLM setting)."""
        yield template


def repeats(text: str) -> bool:
    """A loop: any three-word phrase said three times ('beam search ×2' thirteen times was once accepted)."""
    from collections import Counter

    words = text.lower().split()
    grams = Counter(zip(words, words[1:], words[2:], strict=False))
    return bool(grams) and max(grams.values()) >= 3


def _system() -> str:
    """The chat's system prompt (prompts/chat_answer_system.md)."""
    from qkv.prompts import load

    return load("chat_answer_system.md").strip()
