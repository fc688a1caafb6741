"""The MCP registry: one table row per exposed qkv tool, resource and prompt.

A row names an existing tool function ("module:function"). Its input schema is the function's pydantic
request model and its output schema the pydantic result model, both read from the function's type hints,
so nothing is defined twice. Rows whose module has not landed yet are skipped (and listed as pending by
`qkv mcp --list`), so adding a tool is one row here and nothing else."""

from __future__ import annotations

import importlib
import inspect
import logging
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from qkv.agent.mcp_safety import PathKind

log = logging.getLogger("qkv.mcp")

# A request field the tool reads from disk, and what kind of file it is ("model" also accepts catalog names).
PathFields = Mapping[str, PathKind]


@dataclass(frozen=True)
class ToolSpec:
    """One MCP tool = one qkv function. `name` matches the CLI command so results compare one to one."""

    name: str
    target: str  # "module:function": a function (Request) -> Result, or () -> Result
    title: str
    paths: PathFields = field(default_factory=dict)
    long: bool = False  # reports progress while it runs, and runs one at a time (torch, big models)
    caps: Mapping[str, int] = field(default_factory=dict)  # per-tool integer ceilings on request fields
    cli: str = ""  # the equivalent CLI invocation, shown by --list and in the docs


# The tools. Names follow the CLI commands (`qkv params`, `qkv vram`, `qkv vram --trace`, `qkv doctor`, …).
TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("params", "qkv.tools.params:param_count", "Exact parameter count",
             paths={"model": "model"}, cli="qkv params MODEL --json"),
    ToolSpec("vram", "qkv.tools.memory.verdict:fit_report", "Peak GPU memory and fit verdict (analytic)",
             paths={"model": "model"}, cli="qkv vram MODEL [options] --json"),
    ToolSpec("vram_trace", "qkv.tools.trace.compare:compare_trace",
             "Peak GPU memory traced on fake tensors, beside the analytic estimate",
             paths={"model": "model"}, long=True, caps={"batch": 64, "seq": 32768, "gpus": 1024},
             cli="qkv vram MODEL --trace --json"),
    ToolSpec("doctor", "qkv.tools.doctor:run_doctor", "What this machine can run", cli="qkv doctor --json"),
    ToolSpec("profile", "qkv.tools.knowledge.layer_profile:layer_profile",
             "Layer profile: heads, KV heads, attention type, sliding windows, attention vs MLP cost",
             paths={"model": "model"}, cli="qkv profile MODEL --json"),
    ToolSpec("context", "qkv.tools.knowledge.context_rules:context_plan",
             "Context check: does the task fit the window, and how to extend it if not",
             paths={"model": "model"}, cli="qkv context MODEL --tokens N --json"),
    ToolSpec("scale", "qkv.tools.knowledge.scaling:scale", "Scaling laws: compute-optimal size, tokens, loss",
             cli="qkv scale --flops F --json"),
    ToolSpec("size", "qkv.tools.knowledge.sizing:size_architecture",
             "Architecture sizing: layers, width, heads for a parameter or compute budget", cli="qkv size --json"),
    ToolSpec("hparams", "qkv.tools.knowledge.hparams:recommend_hparams",
             "Hyperparameters scaled to the model size and method, with sources",
             paths={"model": "model"}, cli="qkv hparams MODEL --json"),
    ToolSpec("sampling", "qkv.tools.knowledge.sampling_rules:recommend_sampling",
             "Decoding policy for a task (top-p / top-k / temperature), with sources", cli="qkv sampling TASK --json"),
    ToolSpec("sampling_check", "qkv.tools.knowledge.sampling_rules:check_sampling",
             "Check a decoding policy against hard rule 3 (bounded sampling) and the task",
             cli="qkv sampling --check [options] --json"),
    ToolSpec("audit", "qkv.tools.tokenizer.audit:audit", "Tokenizer audit on a domain corpus",
             paths={"tokenizers": "tokenizer", "corpus": "text", "terms": "text"}, long=True,
             caps={"sample": 1_000_000, "max_new_tokens": 5000}, cli="qkv audit --json"),
    ToolSpec("evaluate", "qkv.tools.evaluate.api:evaluate_predictions",
             "Score a predictions file against references with the task's metric",
             paths={"predictions": "text", "references": "text", "source": "text"},
             cli="qkv eval -p PREDS -r REFS --task TASK --json"),
    ToolSpec("perplexity", "qkv.tools.evaluate.api:evaluate_perplexity",
             "Strided perplexity, bits per byte and word perplexity of a text under a local model",
             paths={"model": "model", "text_file": "text", "adapter": "model"}, long=True,
             caps={"window": 8192, "max_tokens": 200_000}, cli="qkv eval -m MODEL --text FILE --json"),
    ToolSpec("design", "qkv.agent.graph.api:design", "Full five-step design report (deterministic, llm none)",
             paths={"model": "model", "corpus": "text", "llm_model": "model"}, long=True,
             cli="qkv design TASK --llm none --json"),
)


@dataclass(frozen=True)
class ResourceSpec:
    """A read-only catalog served as JSON, identical to the CLI's --json listing."""

    uri: str
    target: str  # "module:function" returning a list of pydantic models
    title: str
    by_alias: bool = False
    cli: str = ""


RESOURCES: tuple[ResourceSpec, ...] = (
    ResourceSpec("qkv://catalog/models", "qkv.tools.catalog.summary:summarize_models",
                 "Model catalog: architecture, exact size, context window and source of each model",
                 cli="qkv models --json"),
    ResourceSpec("qkv://catalog/gpus", "qkv.tools.catalog.gpus:list_gpus",
                 "GPU catalog: memory, bandwidth, dense BF16 TFLOP/s, FP8, with sources",
                 by_alias=True, cli="qkv gpus --json"),
)

# The persona itself comes from qkv.prompts/persona.md (the agent's own); this stands in when it is absent.
PERSONA_FALLBACK = """\
You are a principal Transformer researcher: precise, quantitative and sceptical of cost. Attention is \
quadratic in sequence length unless a kernel or a window says otherwise; memory decides the method. Never \
extend a model past its context window without naming the extension, never claim one set of \
hyperparameters suits every model size, and never recommend generating text without a length cap and \
top-p or top-k bounds.
"""

# How a calling agent should use qkv's tools with that persona (MCP-specific, so it lives here).
TOOL_GUIDE = """\
Work through five steps, in order, calling qkv's tools for every number:
1. Objective: encoder, decoder or encoder-decoder; the metrics (perplexity plus the task metric).
2. Architecture: `profile` (layers, heads, KV heads, attention type, windows), `params`, and `context` \
when the task's tokens may exceed the window; `scale` / `size` for a model trained from scratch.
3. Efficiency: `vram` for full fine-tuning, LoRA and QLoRA on the target GPU (its ladder names the \
cheapest strategy that fits); `vram_trace` to confirm a close call; `hparams` for the chosen method.
4. Tokenization: `audit` the tokenizer on a sample of the domain corpus.
5. Inference: `vram` with method inference (quantized weights, KV cache), then `sampling` and \
`sampling_check` for a bounded decoding policy.
Or call `design` for the whole report at once. Quote each figure with its provenance (analytic, traced, \
measured, or cited with its source); never estimate a number yourself.
"""


@dataclass(frozen=True)
class BoundTool:
    """A ToolSpec whose function is imported, with the pydantic model its arguments validate against.

    Two shapes of function are served without writing anything twice: `f(req: Request, ...) -> Result`
    (the request model IS the input schema), and `f(a: T, b: U = ...) -> Result` with plain or pydantic
    parameters (the input schema is derived from the signature, as the SDK itself would)."""

    spec: ToolSpec
    fn: Callable[..., BaseModel]
    request: type[BaseModel]
    result: type[BaseModel]
    unpack: bool  # True: call fn(**fields); False: call fn(request)
    progress: bool  # the function takes `progress(done, total)`: forward it to the client

    @property
    def description(self) -> str:
        return inspect.getdoc(self.fn) or self.spec.title

    def input_schema(self) -> dict[str, Any]:
        return self.request.model_json_schema()

    def output_schema(self) -> dict[str, Any]:
        return self.result.model_json_schema(mode="serialization")

    def call(self, request: BaseModel, progress: Callable[[int, int], None] | None = None) -> BaseModel:
        """Run the qkv function on a validated request."""
        extra = {"progress": progress} if self.progress and progress is not None else {}
        if self.unpack:
            return self.fn(**{name: getattr(request, name) for name in type(request).model_fields}, **extra)
        return self.fn(request, **extra)


def _import(target: str) -> Callable[..., Any]:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def bind(spec: ToolSpec) -> BoundTool | None:
    """Import a tool row; None when its module or function is not there yet (a tool still being written)."""
    try:
        fn = _import(spec.target)
    except (ImportError, AttributeError) as exc:
        log.debug("tool %s pending: %s", spec.name, exc)
        return None
    except Exception:  # a broken tool module must not take the other tools down with it
        log.exception("tool %s skipped: importing %s failed", spec.name, spec.target)
        return None
    hints = typing.get_type_hints(fn)
    result = hints.get("return")
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "progress"]
    takes_progress = "progress" in inspect.signature(fn).parameters
    if not _is_model(result):
        log.warning("tool %s skipped: %s does not return a pydantic model", spec.name, spec.target)
        return None
    first = hints.get(params[0].name) if params else None
    # `f(req, *, db_path=None)`: keyword-only extras with defaults are the Python caller's, not the agent's.
    rest_private = all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in params[1:])
    if params and _is_model(first) and rest_private:
        return BoundTool(spec, fn, first, result, unpack=False, progress=takes_progress)
    # Plain parameters: the request model is the signature (no extra keys, so typos are errors).
    fields: dict[str, Any] = {
        p.name: (hints.get(p.name, Any), ... if p.default is inspect.Parameter.empty else p.default) for p in params}
    request = create_model(f"{spec.name}_request", __config__=ConfigDict(extra="forbid"), **fields)
    request.__doc__ = f"Arguments of {spec.target}."
    return BoundTool(spec, fn, request, result, unpack=True, progress=takes_progress)


def bound_tools(specs: tuple[ToolSpec, ...] = TOOLS) -> tuple[list[BoundTool], list[ToolSpec]]:
    """(available tools, pending rows)."""
    ready, pending = [], []
    for spec in specs:
        bound = bind(spec)
        (ready if bound else pending).append(bound or spec)
    return ready, pending


def read_catalog(spec: ResourceSpec) -> str:
    """The resource body: the same JSON the CLI prints with --json."""
    from pydantic import TypeAdapter

    rows = _import(spec.target)()
    item = type(rows[0]) if rows else BaseModel
    return TypeAdapter(list[item]).dump_json(rows, indent=2, by_alias=spec.by_alias).decode()


def persona_prompt(task: str) -> str:
    """The researcher persona for a task: the agent's persona (qkv.prompts/persona.md when installed),
    how to use qkv's tools step by step, then the task."""
    from importlib.resources import files

    try:
        persona = files("qkv.prompts").joinpath("persona.md").read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        persona = PERSONA_FALLBACK
    return f"{persona.rstrip()}\n\n{TOOL_GUIDE}\nTask: {task}\n"
