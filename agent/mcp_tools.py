"""The MCP registry: one table row per exposed qkv tool, resource and prompt.

A row names an existing tool function ("module:function"). Its input schema is the function's pydantic
request model and its output schema the pydantic result model, both read from the function's type hints,
so nothing is defined twice. Over MCP the request model is served strict (`mcp_input_model`): unknown
keys are refused naming the argument meant, a boolean is never a number, per-tool caps are schema bounds,
fixed value sets are enums, options MCP cannot serve are hidden, and descriptions and errors are worded by
argument names, not CLI flags. The row's `description` is what a calling model reads. Every row's target
exists: one that cannot bind is a programming error and raises ToolBindError. Adding a tool is one row here
and nothing else."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from qkv.agent.mcp_safety import PathKind
from qkv.agent.mcp_strict import _import, _is_model, for_mcp, mcp_input_model
from qkv.tools.errors import QkvError

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
    description: str = ""  # what a calling model reads: what it answers, when to call it, units
    # Fields that work over MCP only when the server allows them (`online`): accepted, not advertised.
    hidden: tuple[str, ...] = ("online",)
    # Fields that cannot work over MCP, with why: a truthy value is refused with that reason.
    unavailable: Mapping[str, str] = field(default_factory=dict)
    # Free-string fields whose valid values are a fixed tuple ("module:NAME"): an enum over MCP.
    choices: Mapping[str, str] = field(default_factory=dict)
    # One valid argument set: what a calling model can start from, and what the tests call every tool with
    # (a row needs no test entry of its own; paths are relative to an allowed root).
    example: Mapping[str, Any] = field(default_factory=dict)


# What the descriptions say about models and GPUs (every tool that takes one says it the same way).
_MODEL = ("Models are catalog names (resource qkv://catalog/models, e.g. 'llama-3.1-8b', 'mistral-7b', 'gpt2') or a "
          "config.json, model folder or .gguf file inside the server's allowed folders.")
_GPU = ("GPUs are catalog names (resource qkv://catalog/gpus, e.g. 'rtx-4090', 'a100-80gb', 'h100-sxm'); "
        "'gpu-24gib' stands for any GPU with exactly 24 GiB.")

# The tools. Names follow the CLI commands (`qkv params`, `qkv vram`, `qkv vram --trace`, `qkv doctor`, …).
TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("params", "qkv.tools.params:param_count", "Exact parameter count",
             paths={"model": "model"}, cli="qkv params MODEL --json", description=(
                 "Exact parameter count of a model, in parameters (not bytes): total, embedding, LM head, "
                 "non-embedding, attention, MLP, norms and biases, and the parameters active per token (MoE). "
                 "Call it whenever a design needs a model's size. `exact: true` also builds the model on "
                 "PyTorch's meta device to confirm the count (seconds). " + _MODEL),
             example={"model": "gpt2"}),
    ToolSpec("vram", "qkv.tools.memory.verdict:fit_report", "Peak GPU memory and fit verdict (analytic)",
             paths={"model": "model"}, cli="qkv vram MODEL [options] --json",
             choices={"context_extension": "qkv.tools.memory.context:EXTENSIONS"}, description=(
                 "Will a fine-tuning or inference job fit in GPU memory? Peak memory per GPU in bytes and GiB "
                 "(estimate.total_gib), broken down into weights, gradients, optimizer state, activations, KV "
                 "cache and overhead, each with its formula. With `gpu`: the verdict (estimate.fit.fits and the "
                 "headroom), the largest batch and sequence length that fit, and a ladder of cheaper strategies "
                 "(for each method from full fine-tuning to LoRA to QLoRA: micro-batch 1, gradient "
                 "checkpointing, chunked loss, activation offload, 8-bit optimizer; then sharding) whose "
                 "`recommended` rung is the first that fits with the margin. Analytic and instant: call it "
                 "first for any memory question. `seq` "
                 "is tokens per sequence (training) or tokens held in the KV cache (inference); `batch` is "
                 "sequences per GPU. " + _MODEL + " " + _GPU),
             example={"model": "llama-3.1-8b", "method": "qlora", "seq": 4096, "gpu": "rtx-4090"}),
    ToolSpec("vram_why", "qkv.tools.memory.diagnose:diagnose", "Why a job needs its memory, and what fixes it",
             paths={"model": "model"}, cli="qkv vram MODEL [options] --why --json",
             choices={"context_extension": "qkv.tools.memory.context:EXTENSIONS"}, description=(
                 "Why does a training job need the memory it needs, and what would bring it down? Ranks the "
                 "memory terms by their share of the peak (ranked), and for each of the largest names the "
                 "targeted fix (chunked cross-entropy, gradient checkpointing, activation offload, bf16 "
                 "embeddings under QLoRA, 8-bit optimizer, LoRA, QLoRA, optimizer step in backward) with its "
                 "saving in GiB — each re-estimated, never guessed — and its throughput or quality cost with a "
                 "source; then a plan of fixes, least disruptive first, until it fits (plan, plan_fits). Call it "
                 "after `vram` says a job does not fit, or to see what dominates. Same arguments as `vram`. "
                 + _MODEL + " " + _GPU),
             example={"model": "llama-3.1-8b", "method": "qlora", "seq": 8192, "gpu": "rtx-3060-12gb"}),
    ToolSpec("vram_trace", "qkv.tools.trace.compare:compare_trace",
             "Peak GPU memory traced on fake tensors, beside the analytic estimate",
             paths={"model": "model"}, long=True, caps={"batch": 64, "seq": 32768, "gpus": 1024},
             choices={"context_extension": "qkv.tools.memory.context:EXTENSIONS"},
             cli="qkv vram MODEL --trace --json", description=(
                 "Confirms a `vram` estimate by tracing one real training step (or inference prefill) of the "
                 "transformers model on fake tensors: the exact peak of live tensor bytes per category beside "
                 "the analytic estimate, and their relative error. Takes seconds to minutes and runs one at a "
                 "time: use it to settle a close call, not as a first check. Same arguments as `vram`, with "
                 "batch ≤ 64 and seq ≤ 32,768. " + _MODEL + " " + _GPU),
             example={"model": "tiny-llama", "method": "lora", "seq": 64}),
    ToolSpec("serve_plan", "qkv.tools.serve.planner:plan_serving",
             "Serving plan: tensor parallelism, formats, per-GPU memory, latency bounds",
             paths={"model": "model"}, cli="qkv serve MODEL --gpu GPU [options] --json", description=(
                 "How to serve a model for a load: `concurrency` requests of `context` tokens (prompt + "
                 "`output_tokens`) on `gpus` × `gpu`. Chooses the tensor-parallel degree (pipeline stages past "
                 "one 8-GPU node), the weight format (bf16, fp8, AWQ/GPTQ INT4, GGUF types for llama.cpp; "
                 "bitsandbytes NF4 is refused for serving engines) and the KV dtype, and reports one GPU's "
                 "memory in bytes and GiB: weights, the paged KV pool (blocks and tokens), the activation "
                 "workspace at the bounded prefill (max_num_batched_tokens), CUDA context and graphs; the "
                 "largest concurrency at the context and the longest context at the concurrency; roofline lower "
                 "bounds on time per output token and time to first token (ms), a throughput-vs-concurrency "
                 "table; and `ttft_ms`/`tpot_ms` targets checked, a miss naming computed levers. `engine`: "
                 "vllm (default), sglang, llama.cpp or transformers. Beams and samples multiply the KV held. "
                 "Analytic and instant. " + _MODEL + " " + _GPU),
             example={"model": "llama-3.1-8b", "gpu": "h100-sxm", "concurrency": 8, "context": 4096}),
    ToolSpec("doctor", "qkv.tools.doctor:run_doctor", "What this machine can run", cli="qkv doctor --json",
             description=(
                 "What the machine running this server can do: torch and whether CUDA (and which GPU) is "
                 "available, transformers, peft, bitsandbytes, llama.cpp, flash-attn and the bundled GGUF "
                 "models, each present or not with what it enables (tracing, LoRA/QLoRA, local generation). "
                 "Takes no arguments.")),
    ToolSpec("profile", "qkv.tools.knowledge.layer_profile:layer_profile",
             "Layer profile: heads, KV heads, attention type, sliding windows, attention vs MLP cost",
             paths={"model": "model"}, cli="qkv profile MODEL --json", description=(
                 "Layer-by-layer architecture of a model: for each layer the attention type (MHA, GQA or MQA), "
                 "query heads, KV heads, head dimension, sliding-window or global attention and MoE routing; "
                 "parameter shares; attention-score versus linear-layer FLOPs and memory at `seq` tokens; and "
                 "the sequence length from which attention dominates. Call it in the architecture step. "
                 "`config` takes an inline HF config.json object (a proposed architecture) instead of a "
                 "catalog model. " + _MODEL),
             example={"model": "gemma-3-270m"}),
    ToolSpec("context", "qkv.tools.knowledge.context_rules:context_plan",
             "Context check: does the task fit the window, and how to extend it if not",
             paths={"model": "model"}, cli="qkv context MODEL --tokens N --json", description=(
                 "Does a task's length fit the model's context window? `tokens` is what must be in context at "
                 "once (prompt + output). If it does not fit: the ways to reach it (RoPE scaling — linear, "
                 "dynamic NTK, YaRN, Llama 3, LongRoPE — with the config block, sliding window, ALiBi, chunking "
                 "or retrieval, a long-context model), each with its KV-cache cost in bytes, and a recommended "
                 "action. Call it when documents plus output may exceed the window. " + _MODEL),
             example={"model": "llama-2-7b", "tokens": 16000}),
    ToolSpec("scale", "qkv.tools.knowledge.scaling:scale", "Scaling laws: compute-optimal size, tokens, loss",
             cli="qkv scale --flops F --json", description=(
                 "Scaling laws for training from scratch. Give exactly one of `flops` (training compute in "
                 "FLOPs), `params` (model parameters N) or `tokens` (training tokens D); returns the "
                 "compute-optimal N, D and C (Hoffmann et al. 2022, Epoch's 2024 refit by default) and the "
                 "predicted loss; with `gpu`, the training time in days on `gpus` GPUs at `mfu`; with "
                 "`inference_tokens`, the smaller inference-aware optimum (Sardana et al. 2024). GPUs are "
                 "catalog names (resource qkv://catalog/gpus, e.g. 'h100-sxm', 'a100-80gb')."),
             example={"flops": 1e21}),
    ToolSpec("size", "qkv.tools.knowledge.sizing:size_architecture",
             "Architecture sizing: layers, width, heads for a parameter or compute budget", cli="qkv size --json",
             description=(
                 "Proposes a decoder-only architecture for a parameter target (`params`) or a training compute "
                 "budget (`flops`, sized at its Chinchilla optimum): layers, hidden size, heads, KV heads, FFN "
                 "size, head dimension, vocabulary, norm and positions, with an exact parameter count and a "
                 "comparison with published models of similar size. For a model trained from scratch; `scale` "
                 "answers the budget question itself."),
             example={"params": 1e9}),
    ToolSpec("hparams", "qkv.tools.knowledge.hparams:recommend_hparams",
             "Hyperparameters scaled to the model size and method, with sources",
             paths={"model": "model"}, cli="qkv hparams MODEL --json", description=(
                 "Training hyperparameters scaled to the model's size and the method (full, lora, qlora, "
                 "pretrain): learning rate, schedule, warmup, weight decay, batch, gradient clipping and, for "
                 "LoRA/QLoRA, rank, alpha, dropout and target modules, each with its published source. Give "
                 "`model` (its parameters are counted) or `params`. The learning rate is an output, not an "
                 "argument. Call it once `vram` has chosen the method. " + _MODEL),
             example={"model": "llama-2-7b", "method": "qlora"}),
    ToolSpec("sampling", "qkv.tools.knowledge.sampling_rules:recommend_sampling",
             "Decoding policy for a task (top-p / top-k / temperature), with sources", cli="qkv sampling TASK --json",
             description=(
                 "The decoding policy to deploy for a task: temperature, top-p, top-k, min-p, repetition "
                 "penalty, max new tokens and beams, each with its source. Always bounded (hard rule 3: a "
                 "length cap, and top-p or top-k when sampling). Call it in the inference step."),
             example={"task": "code"}),
    ToolSpec("sampling_check", "qkv.tools.knowledge.sampling_rules:check_sampling",
             "Check a decoding policy against hard rule 3 (bounded sampling) and the task",
             cli="qkv sampling --check [options] --json", description=(
                 "Checks a decoding policy against hard rule 3: status `fail` when generation is unbounded (no "
                 "max_new_tokens, or sampling with neither top_p < 1 nor top_k > 0), `warn` for known risks for "
                 "the task (sampling on a reference-scored task, greedy chat), `pass` otherwise; with `task`, "
                 "the task's recommended policy beside it. Call it on any policy before recommending it."),
             example={"policy": {"temperature": 0.7, "top_p": 0.9}}),
    ToolSpec("audit", "qkv.tools.tokenizer.audit:audit", "Tokenizer audit on a domain corpus",
             paths={"tokenizers": "tokenizer", "corpus": "text", "terms": "text"}, long=True,
             caps={"sample": 1_000_000, "max_new_tokens": 5000}, cli="qkv audit --json", description=(
                 "How badly does a tokenizer fragment a domain corpus? For each tokenizer (the first is the "
                 "base): fertility (tokens per word), the share of words split into pieces, the most "
                 "fragmented frequent words and document lengths against the context window; it then extends "
                 "each vocabulary with proposed tokens, re-measures, and recommends keep, extend or a domain "
                 "adapter. Corpus files, folders or globs (.txt, .jsonl, .csv) and tokenizer files must be "
                 "inside the server's allowed folders. Takes seconds; progress is reported in bytes read."),
             example={"tokenizers": ["gpt2"], "corpus": ["corpus.txt"], "extend": False}),
    ToolSpec("evaluate", "qkv.tools.evaluate.api:evaluate_predictions",
             "Score a predictions file against references with the task's metric",
             paths={"predictions": "text", "references": "text", "source": "text"},
             cli="qkv eval -p PREDS -r REFS --task TASK --json", description=(
                 "Scores a file of system outputs against a file of references with the task's standard "
                 "metric: ROUGE-1/2/L (summarisation), sacreBLEU and chrF with their signatures (translation), "
                 "exact match and F1 (qa), accuracy and macro-F1 (classification); with `source`, faithfulness "
                 "proxies (numbers and names not found in the source). Files are UTF-8 inside the server's "
                 "allowed folders: .txt (one item per line), .jsonl, .json, .csv or .tsv."),
             example={"predictions": "preds.txt", "references": "refs.txt"}),
    ToolSpec("perplexity", "qkv.tools.evaluate.api:evaluate_perplexity",
             "Strided perplexity, bits per byte and word perplexity of a text under a local model",
             paths={"model": "model", "text_file": "text", "adapter": "model"}, long=True,
             caps={"window": 8192, "max_tokens": 200_000}, cli="qkv eval -m MODEL --text FILE --json",
             description=(
                 "Strided (sliding-window) perplexity of a text under a local causal language model: token "
                 "perplexity, bits per byte and word perplexity (the last two compare across tokenizers). "
                 "Model: 'gemma3-270m' (bundled) or a model folder or .gguf file inside the server's allowed "
                 "folders. Give the text itself in `text` or a file in `text_file`. `window` is tokens per "
                 "forward pass (at most 8,192); runs one at a time and takes seconds to minutes."),
             example={"text": "a short text to score", "window": 64}),
    ToolSpec("design", "qkv.agent.graph.api:design", "Full five-step design report (deterministic, llm none)",
             paths={"model": "model", "corpus": "text", "llm_model": "model"}, long=True,
             unavailable={"interactive": "the design cannot stop to ask a question here; it lists each default "
                                         "it assumed under `assumptions`, so state the fact in `task` or an "
                                         "argument instead"},
             cli="qkv design TASK --llm none --json", description=(
                 "The whole design for a task described in words, in five steps (objective, architecture, "
                 "efficiency, tokenization, inference): the model, its parameter count and layer profile, the "
                 "fine-tuning method that fits the GPU with its memory breakdown and hyperparameters, a "
                 "tokenizer audit, the inference plan and sampling policy, and the three hard-rule checks; "
                 "every figure with its provenance and every assumed default listed. `gpu`, `gpus` and `model` "
                 "override what the text says. Deterministic and about a second with llm 'none' (the "
                 "default). " + _GPU),
             example={"task": "fine-tune a 7B model for legal summarisation on one 24 GB GPU"}),
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

@dataclass(frozen=True)
class BoundTool:
    """A ToolSpec whose function is imported, with the pydantic model its arguments validate against.

    Two shapes of function are served without writing anything twice: `f(req: Request, ...) -> Result`
    (the tool's request model, made strict for MCP, is the input schema), and `f(a: T, b: U = ...) -> Result`
    with plain or pydantic parameters (the input schema is derived from the signature, as the SDK itself
    would). Either way `request` is the MCP input model (`mcp_input_model`): unknown keys, booleans given
    for numbers and fields MCP cannot serve are refused with the valid names, and errors are worded by
    argument names rather than CLI flags."""

    spec: ToolSpec
    fn: Callable[..., BaseModel]
    request: type[BaseModel]
    result: type[BaseModel]
    unpack: bool  # True: call fn(**fields); False: call fn(request)
    progress: bool  # the function takes `progress(done, total)`: forward it to the client

    @property
    def description(self) -> str:
        return self.spec.description or inspect.getdoc(self.fn) or self.spec.title

    def input_schema(self) -> dict[str, Any]:
        return self.request.model_json_schema()

    def output_schema(self) -> dict[str, Any]:
        return self.result.model_json_schema(mode="serialization")

    def call(self, request: BaseModel, progress: Callable[[int, int], None] | None = None) -> BaseModel:
        """Run the qkv function on a validated request; its errors are worded for an MCP caller."""
        extra = {"progress": progress} if self.progress and progress is not None else {}
        try:
            if self.unpack:
                return self.fn(**{name: getattr(request, name) for name in type(request).model_fields}, **extra)
            return self.fn(request, **extra)
        except QkvError as exc:
            for_mcp(exc, self.request)
            raise


class ToolBindError(RuntimeError):
    """A registry row that cannot become a tool: a programming error in the table or in the tool module."""


def bind(spec: ToolSpec) -> BoundTool:
    """Import a tool row and read its request and result models; raises ToolBindError when it cannot."""
    try:
        fn = _import(spec.target)
    except Exception as exc:
        raise ToolBindError(f"MCP tool row {spec.name!r}: cannot import its target {spec.target} "
                            f"({type(exc).__name__}: {exc})") from exc
    hints = typing.get_type_hints(fn, include_extras=True)  # Annotated[..., Field(...)] keeps its description
    result = hints.get("return")
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "progress"]
    takes_progress = "progress" in inspect.signature(fn).parameters
    if not _is_model(result):
        raise ToolBindError(f"MCP tool row {spec.name!r}: its target {spec.target} does not return a pydantic "
                            "model")
    first = hints.get(params[0].name) if params else None
    # `f(req, *, db_path=None)`: keyword-only extras with defaults are the Python caller's, not the agent's.
    rest_private = all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in params[1:])
    if params and _is_model(first) and rest_private:
        return BoundTool(spec, fn, mcp_input_model(spec, first), result, unpack=False, progress=takes_progress)
    # Plain parameters: the request model is the signature.
    fields: dict[str, Any] = {
        p.name: (hints.get(p.name, Any), ... if p.default is inspect.Parameter.empty else p.default) for p in params}
    request = create_model(f"{spec.name}_request", __config__=ConfigDict(extra="forbid"), **fields)
    request.__doc__ = f"Arguments of the {spec.name} tool."
    return BoundTool(spec, fn, mcp_input_model(spec, request), result, unpack=True, progress=takes_progress)


def bound_tools(specs: tuple[ToolSpec, ...] = TOOLS) -> list[BoundTool]:
    """Every row bound, in table order; raises ToolBindError on the first row that cannot bind."""
    return [bind(spec) for spec in specs]


def read_catalog(spec: ResourceSpec) -> str:
    """The resource body: the same JSON the CLI prints with --json."""
    from pydantic import TypeAdapter

    rows = _import(spec.target)()
    item = type(rows[0]) if rows else BaseModel
    return TypeAdapter(list[item]).dump_json(rows, indent=2, by_alias=spec.by_alias).decode()


def persona_prompt(task: Annotated[str, Field(description=(
        "the design task in words, e.g. 'fine-tune a 7B model for legal summarisation on one 24 GB GPU'"))]) -> str:
    """The researcher persona for a task: the agent's persona (prompts/persona.md), how to use qkv's tools
    step by step (prompts/mcp_tool_guide.md), then the task."""
    from qkv.prompts import load

    return f"{load('persona.md').rstrip()}\n\n{load('mcp_tool_guide.md')}\nTask: {task}\n"
