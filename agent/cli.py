"""The `qkv` command. Each subcommand calls the same tool function the graph and the MCP server call,
and prints its pydantic result as a table or, with --json, as the documented JSON schema.

Heavy libraries load inside the commands that need them: `qkv vram` never imports torch."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from qkv.agent.cli_app import SCHEMAS, JsonOpt, app, console, emit_json, validated
from qkv.tools.errors import QkvError

if TYPE_CHECKING:
    from qkv.tools.memory.schema import MemoryRequest


# The options of `qkv vram` whose definitions run over several lines.
_OptimizerOpt = Annotated[str, typer.Option(
    help="adamw | adamw-8bit | paged-adamw | paged-adamw-8bit | sgd | adafactor. paged-* (bitsandbytes) keep "
         "the state of tensors of 100k+ elements in CUDA unified memory, evicted to host RAM under pressure and "
         "paged back one tensor at a time for its update: the GPU needs the small tensors' state plus the "
         "largest tensor's; the rest is host RAM, costing PCIe traffic only when memory is short")]
_CheckpointingOpt = Annotated[bool | None, typer.Option(
    "--checkpointing/--no-checkpointing",
    help="gradient checkpointing (default: on for qlora, as peft's prepare_model_for_kbit_training turns it "
         "on; off otherwise)")]
_LoraTargetsOpt = Annotated[str | None, typer.Option(
    help="comma-separated module names or all-linear (default: PEFT's per-model default)")]
_WeightsOpt = Annotated[str | None, typer.Option(
    help="inference weights: fp32 bf16 fp16 int8 nf4 fp4 Q4_0 Q4_K_M Q5_K_M Q6_K Q8_0")]
_ShardingOpt = Annotated[str, typer.Option(
    help="none | ddp | zero1 | zero2 | zero3 | fsdp | fsdp2. fsdp = FSDP1 (flat parameters, one layer "
         "gathered at a time); fsdp2 = torch fully_shard (each parameter split on dim 0, padded to ceil(rows/N); "
         "the current and the prefetched layer gathered, one reduce-scatter in flight)")]
_Zero2AccountingOpt = Annotated[str, typer.Option(
    help="ZeRO-2 under bf16/fp16-mixed: deepspeed = DeepSpeed's own estimator, 2P + 18P/N (it also keeps an "
         "fp32 gradient partition); paper = the ZeRO paper's (2 + 14/N)P, K = 12. deepspeed is the default: it "
         "is what DeepSpeed allocates")]
_ContextExtensionOpt = Annotated[str | None, typer.Option(
    help="stated method to go past the window: linear dynamic yarn longrope llama3 sliding alibi")]
_LossChunkOpt = Annotated[int | None, typer.Option(
    help="chunked cross-entropy, tokens per chunk (qkv's trainer, Liger, Cut Cross-Entropy): the loss never "
         "holds the full tokens × vocab fp32 log-probs and gradients (12 B per entry), only one chunk's "
         "(8 B, 12 with a 16-bit head); e.g. 1024")]
_OffloadActivationsOpt = Annotated[bool, typer.Option(
    "--offload-activations",
    help="torch save_on_cpu: every tensor saved for backward is copied to host RAM in forward and back for its "
         "own backward node; the GPU keeps none in between (the loss buffers still peak at backward's start); "
         "host RAM holds them plus the weights matmuls save; costs PCIe traffic each step")]
_OptimizerInBwdOpt = Annotated[bool, typer.Option(
    "--optimizer-in-bwd", help="optimizer step fused into backward (torchtune): gradients never all live")]
_QloraFp32UpcastOpt = Annotated[bool, typer.Option(
    "--qlora-fp32-upcast/--qlora-bf16-embeddings",
    help="QLoRA: peft's fp32 upcast of embeddings/LM head, or keep them bf16 (torchao/torchtune)")]
_WhyOpt = Annotated[bool, typer.Option(
    "--why", help="diagnose: the dominant terms, each targeted fix with its re-estimated saving, a plan")]
_TraceOpt = Annotated[bool, typer.Option(
    "--trace", help="also trace one real step on fake tensors (exact; imports torch, seconds)")]


@app.command()
def vram(
    model: Annotated[str, typer.Argument(help="catalog name (qkv models), config.json, model folder or .gguf")],
    method: Annotated[str, typer.Option("--method", "-m", help="full | lora | qlora | inference")] = "full",
    gpu: Annotated[str | None, typer.Option("--gpu", "-g", help="catalog GPU to check against (qkv gpus)")] = None,
    batch: Annotated[int, typer.Option("--batch", "-b", help="micro-batch per GPU")] = 1,
    seq: Annotated[int, typer.Option("--seq", "-s", help="tokens per sequence / in the KV cache")] = 2048,
    grad_accum: Annotated[int, typer.Option(help="gradient-accumulation steps")] = 1,
    precision: Annotated[str, typer.Option(help="fp32 | bf16-mixed | fp16-mixed | bf16 | fp16")] = "bf16",
    optimizer: _OptimizerOpt = "adamw",
    checkpointing: _CheckpointingOpt = None,
    attention: Annotated[str, typer.Option(help="sdpa | flash | eager")] = "sdpa",
    lora_r: Annotated[int, typer.Option(help="LoRA rank")] = 8,
    lora_targets: _LoraTargetsOpt = None,
    lora_dropout: Annotated[float, typer.Option(help="LoRA dropout")] = 0.0,
    double_quant: Annotated[bool, typer.Option("--double-quant/--no-double-quant", help="QLoRA DQ")] = True,
    weights: _WeightsOpt = None,
    kv_dtype: Annotated[str, typer.Option(help="KV cache: bf16 fp16 fp32 fp8 q8_0 q4_0")] = "bf16",
    gpus: Annotated[int, typer.Option(help="number of GPUs")] = 1,
    sharding: _ShardingOpt = "none",
    zero2_accounting: _Zero2AccountingOpt = "deepspeed",
    offload: Annotated[str, typer.Option(help="none | optimizer | optimizer+params (ZeRO)")] = "none",
    context_extension: _ContextExtensionOpt = None,
    cuda_context_gib: Annotated[float, typer.Option(help="CUDA context allowance, GiB")] = 0.5,
    loss_chunk: _LossChunkOpt = None,
    offload_activations: _OffloadActivationsOpt = False,
    optimizer_in_bwd: _OptimizerInBwdOpt = False,
    qlora_fp32_upcast: _QloraFp32UpcastOpt = True,
    why: _WhyOpt = False,
    online: Annotated[bool, typer.Option(help="allow fetching a hub config.json")] = False,
    trace: _TraceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Peak GPU memory of a training or inference job, with a named breakdown and a fit verdict.

    Example: qkv vram llama-2-7b --method qlora --gpu rtx-4090 --seq 2048
    With --trace the real transformers model runs one step on fake CPU tensors and the exact peak is
    shown beside the estimate, per category.
    """
    from qkv.tools.memory.schema import MemoryRequest

    if checkpointing is None:
        checkpointing = method == "qlora"  # peft's prepare_model_for_kbit_training turns it on by default
    req = validated(
        MemoryRequest, model=model, method=method, gpu=gpu, batch=batch, seq=seq, grad_accum=grad_accum,
        precision=precision, optimizer=optimizer, grad_checkpointing=checkpointing, attention=attention,
        lora_r=lora_r, lora_targets=lora_targets.split(",") if lora_targets else None,
        lora_dropout=lora_dropout, quant_double=double_quant, weights=weights, kv_dtype=kv_dtype, gpus=gpus,
        sharding=sharding, zero2_accounting=zero2_accounting, offload=offload, context_extension=context_extension,
        cuda_context_gib=cuda_context_gib, online=online, loss_chunk=loss_chunk,
        offload_activations=offload_activations, optimizer_in_bwd=optimizer_in_bwd,
        kbit_fp32_upcast=qlora_fp32_upcast)
    _vram_report(req, why=why, trace=trace, json=json)


def _vram_report(req: MemoryRequest, *, why: bool, trace: bool, json: bool) -> None:
    """The estimate with its fit verdict; with --why the diagnosis after it (the dominant terms, each targeted
    fix), with --trace one real step traced on fake tensors beside it. --json prints the one result."""
    from qkv.tools.memory.verdict import fit_report

    if why:
        from qkv.tools.memory.diagnose import diagnose

        result = diagnose(req)
    elif trace:
        from qkv.tools.trace.compare import compare_trace

        result = compare_trace(req)
    else:
        result = fit_report(req)
    if json:
        emit_json(result)
        return
    from qkv.agent.render import render_comparison, render_diagnosis, render_fit

    if why:
        render_fit(fit_report(req), console())
        render_diagnosis(result, console())
    elif trace:
        render_fit(result.analytic, console())
        render_comparison(result, console())
    else:
        render_fit(result, console())


@app.command()
def params(
    model: Annotated[str, typer.Argument(help="catalog name, config.json, model folder or .gguf")],
    exact: Annotated[bool, typer.Option("--exact", help="also build the transformers class on the meta device")]
    = False,
    online: Annotated[bool, typer.Option(help="allow fetching a hub config.json")] = False,
    json: JsonOpt = False,
) -> None:
    """Exact parameter count: total, embedding, non-embedding, and active per token for MoE."""
    from qkv.tools.params import ParamCountRequest, param_count

    result = param_count(validated(ParamCountRequest, model=model, exact=exact, online=online))
    if json:
        emit_json(result)
        return
    from qkv.agent.render import render_params

    render_params(result, console())


@app.command()
def models(json: JsonOpt = False) -> None:
    """The model catalog: architecture, size and context window of each model, with its source."""
    from pydantic import TypeAdapter

    from qkv.tools.catalog.summary import ModelSummary, summarize_models

    rows = summarize_models()
    if json:
        sys.stdout.write(TypeAdapter(list[ModelSummary]).dump_json(rows, indent=2).decode() + "\n")
        return
    from rich import box
    from rich.table import Table

    # A borderless table fits 80 columns whole (the boxed one cut the context column).
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1), collapse_padding=True)
    for col in ("name", "type", "params", "layers", "hidden", "heads/kv", "attn", "context"):
        # Names are what users copy into other commands: never cut them ("tinyllama…" is no name).
        table.add_column(col, justify="right" if col not in ("name", "type", "attn") else "left",
                         no_wrap=col == "name", min_width=len(col))
    for r in rows:
        table.add_row(r.name, r.model_type, f"{r.params / 1e9:,.3f}B", str(r.layers), str(r.hidden),
                      f"{r.heads}/{r.kv_heads}", r.attention, f"{r.context:,}" if r.context else "relative")
    console().print(table)


@app.command()
def gpus(json: JsonOpt = False) -> None:
    """The GPU catalog: memory, bandwidth, dense BF16 TFLOP/s and FP8 support, with sources."""
    from pydantic import TypeAdapter

    from qkv.tools.catalog.gpus import GpuSpec, list_gpus

    rows = list_gpus()
    if json:
        sys.stdout.write(TypeAdapter(list[GpuSpec]).dump_json(rows, indent=2, by_alias=True).decode() + "\n")
        return
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for col in ("name", "memory GiB", "GB/s", "BF16 TFLOP/s", "FP8", "class"):
        table.add_column(col)
    for g in rows:
        mem = f"{g.memory_gib:g}" + (" (unified)" if g.unified_memory else "")
        table.add_row(g.name, mem, f"{g.bandwidth_gb_s:,.0f}",
                      f"{g.bf16_dense_tflops:g}" if g.bf16_dense_tflops else "—", "yes" if g.fp8 else "no",
                      g.gpu_class)
    console().print(table)




@app.command()
def schema(name: Annotated[str, typer.Argument(help=" | ".join(SCHEMAS))]) -> None:
    """Print the JSON Schema of a command's --json output (or of its request) — the stable contract."""
    import importlib
    import json as _json

    if name not in SCHEMAS:
        from qkv.tools.errors import UnknownName, closest

        raise UnknownName(f"no schema named '{name}'", choices=closest(name, SCHEMAS) or list(SCHEMAS))
    module, cls = SCHEMAS[name].split(":")
    model = getattr(importlib.import_module(module), cls)
    sys.stdout.write(_json.dumps(model.model_json_schema(mode="serialization"), indent=2) + "\n")


@app.command()
def doctor(json: JsonOpt = False) -> None:
    """What is installed and usable here: torch, CUDA, bitsandbytes, flash-attn, llama-cpp, bundled models."""
    from qkv.tools.doctor import run_doctor

    report = run_doctor()
    if json:
        emit_json(report)
        return
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for col in ("component", "status", "detail"):
        table.add_column(col)
    for c in report.checks:
        table.add_row(c.name, "[green]ok[/]" if c.ok else "[yellow]missing[/]", c.detail)
    console().print(table)


# Capability commands: each module registers its commands on `app` when imported (typer and pydantic
# only at import time; the heavy libraries load inside the commands).
from qkv.agent.commands import audit, design, evaluate, generate, knowledge, knowledge_model, mcp, serve, train, tui  # noqa: E402, F401


def chat_args(argv: list[str]) -> list[str]:
    """`qkv --llm none` means `qkv chat --llm none`: options before any command are the chat's own.

    The chat is what `qkv` alone opens, so its options work without naming it. Only an argument list
    that starts with one of the chat's options is rewritten; `--help` and commands are left alone."""
    if not argv or not argv[0].startswith("-") or argv[0] in ("--help", "-h"):
        return argv
    import typer.main

    chat_cmd = typer.main.get_command(app).commands["chat"]  # type: ignore[attr-defined]
    flags = {opt for param in chat_cmd.params for opt in (*param.opts, *param.secondary_opts)}
    return ["chat", *argv] if argv[0].split("=", 1)[0] in flags else argv


def main() -> None:
    """Entry point: run the app; a QkvError becomes one line on stderr and exit code 2."""
    try:
        # typer.Exit(n) comes back as its code when not standalone
        rc = app(args=chat_args(sys.argv[1:]), standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except QkvError as err:
        sys.stderr.write(f"qkv: error: {err}\n")
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("qkv: interrupted\n")
        sys.exit(130)
    except typer.Abort:
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: missing argument, a value of the wrong type
        show = getattr(exc, "show", None)
        if show:
            show()
        else:
            sys.stderr.write(f"qkv: error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
