"""The one reader of the LLM setting (`--llm`, `/llm`, the MCP `llm` argument): 'none' (templates only),
'local' (the bundled llama.cpp model) or the http(s) URL of an OpenAI-compatible server."""

from __future__ import annotations

from typing import Literal

from qkv.tools.errors import BadInput

Kind = Literal["none", "local", "openai"]
EXPECTED = "none, local, or an http(s):// URL of an OpenAI-compatible server"


def llm_kind(setting: str | None) -> Kind:
    """'none' | 'local' | 'openai' for a setting; BadInput naming the valid forms otherwise."""
    value = (setting or "none").strip()
    if value in ("none", "local"):
        return value  # type: ignore[return-value]
    if value.lower().startswith(("http://", "https://")):
        return "openai"
    raise BadInput(f"--llm {value!r}", expected=EXPECTED)


def is_llm_setting(setting: str | None) -> bool:
    """Whether `setting` is one of the valid forms (for interactive inputs that warn instead of raising)."""
    try:
        llm_kind(setting)
    except BadInput:
        return False
    return True


def open_setting(setting: str, *, model: str | None = None):
    """The backend an LLM setting names (`local` → the bundled llama.cpp model or `model`; a URL → that
    OpenAI-compatible server, `model` its model id; `none` → templates only)."""
    from qkv.tools.llm.base import open_backend

    kind = llm_kind(setting)
    return open_backend(kind, model=model, url=setting.strip() if kind == "openai" else None)
