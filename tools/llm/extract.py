"""Structured extraction: rules first, then (optionally) a model constrained to a JSON schema fills only
the fields the rules did not find. The result is always validated by pydantic.

Why this order: tiny local models produce *valid* JSON under a grammar but often wrong *values*
(STACK-NOTES: 0-1 of 3 fields fully right for Gemma 3 270M), so a deterministic parser owns every field
it can read, the model is only asked about the rest, and each value it proposes is validated on its own
(a bad one is dropped, never allowed to spoil the fields that were right)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, create_model

from qkv.tools.errors import BadInput
from qkv.tools.llm.guard import GuardPolicy
from qkv.tools.sampling import SamplingPolicy

MAX_STRING_CHARS = 80  # a bound on every string the grammar lets the model write (no runaway strings)



class Extraction(BaseModel):
    """The validated value plus where each field came from."""

    value: Any = Field(description="an instance of the requested schema")
    from_rules: list[str] = Field(description="fields the rule-based parser found")
    from_model: list[str] = Field(description="fields the language model filled (validated one by one)")
    rejected: dict[str, str] = Field(default_factory=dict, description="model values dropped, with the reason")
    still_missing: list[str] = Field(description="fields neither found (left to their defaults)")
    generation: str | None = Field(None, description="the model's raw JSON output, when a model was asked")


def bound_strings(schema: dict, max_chars: int = MAX_STRING_CHARS) -> dict:
    """Add `maxLength` to every string in a JSON schema that has none (returns a new dict)."""
    if isinstance(schema, list):
        return [bound_strings(s, max_chars) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: bound_strings(v, max_chars) for k, v in schema.items()}
    types = out.get("type")
    if (types == "string" or (isinstance(types, list) and "string" in types)) and "enum" not in out:
        out.setdefault("maxLength", max_chars)
    return out


def missing_schema(schema: type[BaseModel], fields: list[str]) -> dict:
    """JSON schema asking for exactly `fields`, each nullable and required (so the model must decide on
    each key and `null` means "not stated"), strings bounded."""
    sub = create_model(  # type: ignore[call-overload]
        f"{schema.__name__}Missing",
        **{f: (schema.model_fields[f].annotation | None, Field(..., description=schema.model_fields[f].description))
           for f in fields})
    return bound_strings(sub.model_json_schema())


def _field_prompt(schema: type[BaseModel], fields: list[str]) -> str:
    lines = []
    for f in fields:
        info = schema.model_fields[f]
        lines.append(f"- {f}: {info.description or f}")
    return "\n".join(lines)


def extract_with_provenance(backend, text: str, schema: type[BaseModel], rule_parser: Callable[[str], dict],
                            *, max_string_chars: int = MAX_STRING_CHARS) -> Extraction:
    """Rules, then a schema-constrained model for the gaps, then pydantic validation; with provenance."""
    found = {k: v for k, v in (rule_parser(text) or {}).items() if v is not None and k in schema.model_fields}
    missing = [f for f in schema.model_fields if f not in found]
    merged = dict(found)
    from_model: list[str] = []
    rejected: dict[str, str] = {}
    raw = None
    if backend is not None and getattr(backend, "kind", "none") != "none" and missing:
        fmt_schema = missing_schema(schema, missing)
        if max_string_chars != MAX_STRING_CHARS:
            fmt_schema = bound_strings(fmt_schema, max_string_chars)
        messages = [{"role": "system", "content": _system()},
                    {"role": "user", "content": f"Text:\n{text}\n\nFields:\n{_field_prompt(schema, missing)}"}]
        # Greedy (deterministic) and bounded: each field needs at most ~max_string_chars/3 tokens plus keys.
        policy = SamplingPolicy.greedy(max_new_tokens=min(1024, 32 + len(missing) * (8 + max_string_chars // 2)))
        gen = backend.chat(messages, policy, guard=GuardPolicy(strategy="head_tail"),
                           response_format={"type": "json_object", "schema": fmt_schema})
        raw = gen.text
        try:
            # strict=False: llama-cpp-python's server grammar lets raw newlines into strings (see local.py)
            proposed = json.loads(raw, strict=False)
        except json.JSONDecodeError:
            proposed = {}
            rejected["*"] = f"not JSON (finish_reason {gen.finish_reason}): {raw[:80]!r}"
        for f in missing:
            v = proposed.get(f) if isinstance(proposed, dict) else None
            if v is None:
                continue
            try:
                merged[f] = TypeAdapter(schema.model_fields[f].annotation).validate_python(v)
                from_model.append(f)
            except ValidationError as exc:
                rejected[f] = exc.errors()[0]["msg"]
    try:
        value = schema.model_validate(merged)
    except ValidationError:
        # A model-filled value that passes alone but breaks a cross-field rule: trust the rules only.
        for f in from_model:
            rejected.setdefault(f, "dropped: failed whole-model validation")
            merged.pop(f, None)
        from_model = []
        try:
            value = schema.model_validate(merged)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "input"
            if err["type"] == "missing":
                raise BadInput(f"could not find '{where}' in the text",
                               expected=f"a text that states {where}") from None
            raise BadInput(f"'{where}' = {err.get('input')!r} read from the text is invalid: {err['msg']}",
                           expected=f"a text that states a valid {where}") from None
    still = [f for f in schema.model_fields if f not in found and f not in from_model]
    return Extraction(value=value, from_rules=sorted(found), from_model=from_model, rejected=rejected,
                      still_missing=still, generation=raw)


def extract(backend, text: str, schema: type[BaseModel], rule_parser: Callable[[str], dict]) -> BaseModel:
    """Parse `text` into `schema`: the rule-based parser always runs first; if a backend is given
    (not `none`), the model fills only the fields the rules missed, under a JSON-schema grammar
    (llama.cpp) or `response_format` (OpenAI-compatible). Always pydantic-validated."""
    return extract_with_provenance(backend, text, schema, rule_parser).value


def _system() -> str:
    """The extractor's system prompt (prompts/extract_system.md)."""
    from qkv.prompts import load

    return load("extract_system.md").strip()
