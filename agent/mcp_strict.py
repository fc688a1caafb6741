"""Strict tool inputs for MCP: a tool's request model served with unknown keys refused (naming the argument
meant, other libraries' spellings recognised), booleans refused for numbers, limits as schema bounds,
fixed sets as enums, and descriptions and errors worded for a calling model. Used by the registry
(agent/mcp_tools.py) when it binds each tool."""

from __future__ import annotations

import copy
import importlib
import logging
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, model_validator
from pydantic.fields import FieldInfo
from pydantic.json_schema import SkipJsonSchema

from qkv.agent.mcp_safety import PathKind
from qkv.tools.errors import BadInput, QkvError

log = logging.getLogger("qkv.mcp")

if TYPE_CHECKING:
    from qkv.agent.mcp_tools import ToolSpec


def _import(target: str) -> Callable[..., Any]:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)

# A request field the tool reads from disk, and what kind of file it is ("model" also accepts catalog names).
PathFields = Mapping[str, PathKind]


# Names other tools and libraries use for qkv's arguments (Hugging Face, PEFT, vLLM, DeepSpeed, OpenAI…).
# Where a request model accepts one as an alias (validation_alias) it is simply accepted; otherwise the
# refusal names the argument meant: the first of these candidates that the tool has, before any fuzzy
# match on spelling (which would answer 'gpu' for gpu_count).
FOREIGN: Mapping[str, tuple[str, ...]] = {
    **dict.fromkeys(("gradient_checkpointing", "activation_checkpointing", "checkpointing"), ("grad_checkpointing",)),
    **dict.fromkeys(("seq_len", "seq_length", "sequence_length", "max_seq_length", "max_seq_len", "max_length",
                     "context_length", "block_size", "n_ctx"), ("seq", "tokens", "window", "context")),
    **dict.fromkeys(("batch_size", "micro_batch_size", "per_device_train_batch_size", "train_batch_size",
                     "train_micro_batch_size_per_gpu"), ("batch",)),
    **dict.fromkeys(("num_gpus", "n_gpus", "gpu_count", "world_size", "num_devices", "devices"), ("gpus",)),
    **dict.fromkeys(("gradient_accumulation_steps", "gradient_accumulation"), ("grad_accum",)),
    **dict.fromkeys(("kv_cache_dtype", "cache_dtype"), ("kv_dtype",)),
    **dict.fromkeys(("r", "rank", "lora_rank"), ("lora_r",)),
    **dict.fromkeys(("alpha",), ("lora_alpha",)),
    **dict.fromkeys(("target_modules",), ("lora_targets",)),
    **dict.fromkeys(("dtype", "torch_dtype", "mixed_precision"), ("precision",)),
    **dict.fromkeys(("attn_implementation",), ("attention",)),
    **dict.fromkeys(("gpu_name", "gpu_type", "device", "accelerator"), ("gpu",)),
    **dict.fromkeys(("model_name", "model_id", "model_name_or_path", "pretrained_model_name_or_path", "model_path",
                     "checkpoint"), ("model",)),
    **dict.fromkeys(("compute", "compute_budget", "budget", "flop_budget", "c"), ("flops",)),
    **dict.fromkeys(("num_params", "n_params", "parameters", "model_size", "n"), ("params",)),
    **dict.fromkeys(("train_tokens", "num_tokens", "d"), ("tokens",)),
    **dict.fromkeys(("vocab_size",), ("vocab",)),
    **dict.fromkeys(("tie_word_embeddings",), ("tie_embeddings",)),
    **dict.fromkeys(("tokenizer", "tokenizer_name"), ("tokenizers",)),
    **dict.fromkeys(("files", "data", "dataset", "text_files", "paths"), ("corpus",)),
    **dict.fromkeys(("preds", "hypotheses", "outputs"), ("predictions",)),
    **dict.fromkeys(("refs", "targets", "gold"), ("references",)),
    **dict.fromkeys(("file", "path", "text_path"), ("text_file",)),
    **dict.fromkeys(("prompt", "description", "request", "question"), ("task",)),
    # a decoding setting given at the top level of sampling_check belongs inside `policy`
    **dict.fromkeys(("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens", "max_tokens",
                     "num_beams", "stop", "seed"), ("policy",)),
}

# CLI wording → MCP wording, for errors and descriptions an MCP caller reads.
_CLI_TERMS: tuple[tuple[str, str], ...] = (
    ("`qkv gpus`", "the resource qkv://catalog/gpus"), ("qkv gpus", "the resource qkv://catalog/gpus"),
    ("`qkv models`", "the resource qkv://catalog/models"), ("qkv models", "the resource qkv://catalog/models"),
    ("with --online", "with online: true"),
)
_CLI_FLAGS = {"checkpointing": "grad_checkpointing", "no-checkpointing": "grad_checkpointing",
              "double-quant": "quant_double", "no-double-quant": "quant_double"}
_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)")


class UnknownArgument(BadInput):
    """An argument the tool does not take; says which one was probably meant and lists the valid ones."""

    def __init__(self, key: str, tool: str, valid: list[str], meant: str | None) -> None:
        self.key, self.tool, self.valid, self.meant = key, tool, valid, meant
        super().__init__(f"unknown argument '{key}'", choices=[meant] if meant else ())

    def render(self) -> str:
        hint = f" — did you mean '{self.meant}'?" if self.meant else "."
        return f"unknown argument '{self.key}'{hint} {self.tool} takes: {', '.join(self.valid) or 'no arguments'}."


def _spellings(name: str, info: FieldInfo) -> list[str]:
    """Every key that sets this field: its name and its documented aliases (validation_alias)."""
    alias = info.validation_alias
    names = [name]
    if isinstance(alias, str):
        names.append(alias)
    elif isinstance(alias, AliasChoices):
        names += [c for c in alias.choices if isinstance(c, str)]
    return list(dict.fromkeys(names))


def _meant(key: str, valid: list[str], spellings: Mapping[str, str]) -> str | None:
    """The argument a caller most likely meant by an unknown key: a known foreign name first, then a close
    spelling (a fuzzy match strong enough to be worth saying)."""
    from rapidfuzz import fuzz, process, utils

    for candidate in FOREIGN.get(key.lower(), ()):
        if candidate in valid:
            return candidate
    hit = process.extractOne(key, list(spellings), scorer=fuzz.WRatio, processor=utils.default_process,
                             score_cutoff=70)
    return spellings[hit[0]] if hit else None


def _numeric(annotation: Any) -> str | None:
    """'an integer' / 'a number' when the annotation takes only numbers (and None): pydantic would read a
    JSON true there as 1, which is never what a caller meant."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] if typing.get_origin(annotation) in (
        typing.Union, types.UnionType) else [annotation]
    if args and all(a is int for a in args):
        return "an integer"
    if args and all(a in (int, float) for a in args):
        return "a number"
    return None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    models = [a for a in (annotation, *args) if _is_model(a)]
    return models[0] if len(models) == 1 else None


def check_keys(model: type[BaseModel], data: Mapping[str, Any], tool: str, *, where: str = "",
               path_fields: frozenset[str] = frozenset(), unavailable: Mapping[str, str] | None = None) -> None:
    """Refuse what pydantic would otherwise ignore or coerce: an unknown key, two spellings of one field,
    a boolean for a number, a field that cannot work here. Nested pydantic models are checked the same way.
    Path fields accept only their own name: the sandbox checks paths by that name before validation."""
    spellings: dict[str, str] = {}
    for name, info in model.model_fields.items():
        for key in ([name] if name in path_fields else _spellings(name, info)):
            spellings[key] = name
    valid = [n for n, info in model.model_fields.items() if not _hidden(info)]
    seen: dict[str, str] = {}
    for key, value in data.items():
        field_name = spellings.get(key) if isinstance(key, str) else None
        if field_name is None:
            meant = _meant(str(key), valid, spellings)
            inner = _nested_model(model.model_fields[meant].annotation) if meant else None
            if inner is not None and key in inner.model_fields:  # a policy setting given at the top level
                meant = f"{meant}.{key}"
            raise UnknownArgument(f"{where}{key}", tool, valid, f"{where}{meant}" if meant else None)
        if field_name in seen:
            raise BadInput(f"'{where}{seen[field_name]}' and '{where}{key}' are the same argument",
                           expected=f"one of them ('{field_name}')")
        seen[field_name] = key
        if unavailable and field_name in unavailable and value:
            raise BadInput(f"argument '{key}' is not available over MCP: {unavailable[field_name]}")
        annotation = model.model_fields[field_name].annotation
        if isinstance(value, bool) and (kind := _numeric(annotation)):
            raise BadInput(f"argument '{where}{key}' is {str(value).lower()}",
                           expected=f"{kind}, not a boolean")
        nested = _nested_model(annotation)
        if nested is not None and isinstance(value, Mapping):
            check_keys(nested, value, f"{tool}'s {where}{key}", where=f"{where}{key}.")


def _hidden(info: FieldInfo) -> bool:
    return any(isinstance(m, SkipJsonSchema) for m in info.metadata)


def mcp_words(text: str | None, fields: Mapping[str, FieldInfo]) -> str | None:
    """CLI wording → MCP wording: `--grad-accum` → `grad_accum` (when the tool has that argument),
    `qkv gpus` → the catalog resource. A flag that is no argument of this tool is left as it is."""
    if not text:
        return text
    for cli, mcp in _CLI_TERMS:
        text = text.replace(cli, mcp)

    def arg(m: re.Match[str]) -> str:
        flag = m.group(1)
        name = _CLI_FLAGS.get(flag, flag.replace("-", "_"))
        return name if name in fields else m.group(0)

    return _FLAG.sub(arg, text)


def for_mcp(exc: QkvError, request: type[BaseModel]) -> None:
    """Reword an error in place by this tool's argument names: the request's own validators and the tool
    functions are shared with the CLI, whose errors name its flags."""
    if not isinstance(exc, UnknownArgument):
        fields = request.model_fields
        exc.what = mcp_words(exc.what, fields) or exc.what
        exc.expected = mcp_words(exc.expected, fields)
        exc.args = (exc.render(),)


def _with_cap(info: FieldInfo, cap: int) -> FieldInfo:
    """The field with an upper bound (looser bounds dropped), so the schema states the tool's real limit."""
    import annotated_types

    new = copy.copy(info)
    new.metadata = [m for m in info.metadata if not isinstance(m, annotated_types.Le | annotated_types.Lt)]
    new.metadata.append(annotated_types.Le(cap))
    return new


def mcp_input_model(spec: ToolSpec, base: type[BaseModel]) -> type[BaseModel]:
    """The tool's request model as MCP serves it: a subclass (so the tool function receives an instance of
    its own request type) that forbids unknown keys, refuses booleans for numbers, states the per-tool caps
    as schema bounds, hides `online` (usable only when the server allows it), refuses fields MCP cannot
    serve, turns fixed value sets into enums, and words descriptions and errors by argument names."""
    fields = base.model_fields
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {}
    for name, info in fields.items():
        annotation: Any = info.annotation
        new = copy.copy(info)
        if name in spec.choices:
            values = tuple(_import(spec.choices[name]))
            literal = typing.Literal[values]  # type: ignore[valid-type]
            annotation = literal | None if _optional(info.annotation) else literal
        if name in spec.caps:
            new = _with_cap(new, spec.caps[name])
        if name in spec.hidden or name in spec.unavailable:
            annotation = SkipJsonSchema[annotation]
        new.description = mcp_words(info.description, fields)
        annotations[name], namespace[name] = annotation, new
    paths = frozenset(spec.paths)
    unavailable = dict(spec.unavailable)

    def strict(cls: type[BaseModel], data: Any, handler: Callable[[Any], BaseModel]) -> BaseModel:
        if isinstance(data, Mapping):
            check_keys(cls, data, spec.name, path_fields=paths, unavailable=unavailable)
        try:
            return handler(data)
        except QkvError as exc:
            for_mcp(exc, cls)
            raise

    namespace.update({
        "__module__": base.__module__, "__doc__": base.__doc__, "__annotations__": annotations,
        "__qualname__": base.__qualname__,
        "model_config": ConfigDict(extra="forbid", title=base.model_config.get("title") or base.__name__),
        "_mcp_strict": model_validator(mode="wrap")(classmethod(strict)),  # type: ignore[arg-type]
    })
    return typing.cast(type[BaseModel], type(base)(base.__name__, (base,), namespace))


def _optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)
