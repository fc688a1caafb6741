"""Chat templates taken from the GGUF metadata (`tokenizer.chat_template`), rendered with the same Jinja
sandbox llama-cpp-python uses, so qkv can count the exact prompt tokens before generating.

A GGUF without a template (a base model such as Gemma 3 270M) gets a stated plain fallback
("System:/User:/Assistant:" turns) instead of a silent guess; every Generation names the template used."""

from __future__ import annotations

from dataclasses import dataclass, field

PLAIN = "plain fallback (the GGUF has no chat template: base model; prefer complete())"
GGUF_TEMPLATE = "gguf tokenizer.chat_template"
_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}


@dataclass(frozen=True)
class Rendered:
    """A conversation rendered to one prompt string. `added_special` means the template already wrote the
    BOS text itself (so the tokenizer must not add another one)."""

    prompt: str
    stop: list[str] = field(default_factory=list)
    added_special: bool = False


class ChatTemplate:
    """Render OpenAI-style messages to the model's prompt format."""

    def __init__(self, template: str | None, *, bos: str, eos: str) -> None:
        self.template = template
        self.bos, self.eos = bos, eos
        self.source = GGUF_TEMPLATE if template else PLAIN
        self._formatter = None
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

    @property
    def has_template(self) -> bool:
        return self._formatter is not None

    def render(self, messages: list[dict]) -> Rendered:
        _check_messages(messages)
        if self._formatter is not None:
            out = self._formatter(messages=messages)
            stop = [s for s in ([out.stop] if isinstance(out.stop, str) else (out.stop or [])) if s]
            return Rendered(prompt=out.prompt, stop=stop, added_special=bool(out.added_special))
        turns = [f"{_ROLES[m['role']]}: {m['content']}" for m in messages]
        # The stops end the answer where a base model would start writing the next turn itself.
        return Rendered(prompt="\n\n".join([*turns, "Assistant:"]), stop=["\nUser:", "\nSystem:"])


def _check_messages(messages: list[dict]) -> None:
    from qkv.tools.errors import BadInput

    if not messages:
        raise BadInput("empty conversation", expected="at least one {'role': 'user', 'content': ...} message")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES or not isinstance(m.get("content"), str):
            raise BadInput(f"message #{i} is malformed: {m!r}",
                           expected="{'role': 'system'|'user'|'assistant', 'content': str}",
                           choices=list(_ROLES))


def template_from_metadata(metadata: dict[str, str], *, bos: str, eos: str) -> ChatTemplate:
    """The chat template a GGUF declares (llama.cpp exposes the metadata as strings)."""
    return ChatTemplate(metadata.get("tokenizer.chat_template") or None, bos=bos, eos=eos)
