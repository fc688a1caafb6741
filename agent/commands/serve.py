"""`qkv serve`: the serving planner (the same `plan_serving` the design graph and the MCP server call).

No `from __future__ import annotations` here: typer builds every command's parameters on each start, and
string annotations would be eval'd (compiled) there, on the cold path of every `qkv` command."""

from typing import Annotated

import typer

from qkv.agent.cli_app import SCHEMAS, JsonOpt, app, console, emit_json, validated

SCHEMAS.update({"serve-request": "qkv.tools.serve.schema:ServingRequest",
                "serve": "qkv.tools.serve.schema:ServingPlan"})
ENGINES = ("vllm", "sglang", "llama.cpp", "transformers")


@app.command()
def serve(
    model: Annotated[str, typer.Argument(help="catalog name (qkv models), config.json, model folder or .gguf")],
    gpu: Annotated[str, typer.Option("--gpu", "-g", help="catalog GPU (qkv gpus) or gpu-<N>gib")],
    gpus: Annotated[int, typer.Option(help="GPUs available for serving")] = 1,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="requests served at once")] = 1,
    context: Annotated[int, typer.Option(help="tokens per request: prompt + output")] = 4096,
    output_tokens: Annotated[int, typer.Option(help="tokens generated per request")] = 256,
    prompt_tokens: Annotated[int | None, typer.Option(help="prompt tokens (default: context - output)")] = None,
    ttft_ms: Annotated[float | None, typer.Option(help="time-to-first-token target, ms")] = None,
    tpot_ms: Annotated[float | None, typer.Option(help="time-per-output-token target, ms")] = None,
    engine: Annotated[str, typer.Option(help=" | ".join(ENGINES))] = "vllm",
    weights: Annotated[str | None, typer.Option(
        help="bf16 fp16 fp8 awq-int4 gptq-int4 (vllm/sglang); Q8_0 Q6_K Q5_K_M Q4_K_M Q4_0 (llama.cpp); "
             "int8 nf4 (transformers)")] = None,
    kv_dtype: Annotated[str | None, typer.Option(help="bf16 fp16 fp8 (vllm/sglang); q8_0 q4_0 (llama.cpp)")] = None,
    tensor_parallel: Annotated[int | None, typer.Option(
        "--tp", "--tensor-parallel", help="tensor-parallel degree")] = None,
    beams: Annotated[int, typer.Option(help="beam width per request")] = 1,
    samples: Annotated[int, typer.Option(help="parallel samples per request (n)")] = 1,
    gpu_memory_utilization: Annotated[float, typer.Option(help="vLLM gpu_memory_utilization")] = 0.9,
    max_num_batched_tokens: Annotated[int | None, typer.Option(help="tokens per prefill step")] = None,
    online: Annotated[bool, typer.Option(help="allow fetching a hub config.json")] = False,
    json: JsonOpt = False,
) -> None:
    """Plan serving: tensor/pipeline parallelism, weight and KV formats, bounded prefill, each GPU's memory,
    the concurrency × context that fits, and roofline TTFT/TPOT bounds checked against targets.

    Example: qkv serve llama-3.1-70b --gpu h100-sxm --gpus 4 --concurrency 50 --context 8192 --tpot-ms 50
    """
    from qkv.tools.errors import BadInput, closest
    from qkv.tools.serve import plan_serving
    from qkv.tools.serve.schema import ServingRequest

    if engine not in ENGINES:
        raise BadInput(f"--engine {engine!r}", expected="a serving engine profile",
                       choices=closest(engine, ENGINES) or list(ENGINES))
    req = validated(ServingRequest, model=model, gpu=gpu, gpus=gpus, concurrency=concurrency, context=context,
                    output_tokens=output_tokens, prompt_tokens=prompt_tokens, ttft_ms=ttft_ms, tpot_ms=tpot_ms,
                    engine=engine, weights=weights, kv_dtype=kv_dtype, tensor_parallel=tensor_parallel, beams=beams,
                    samples=samples, gpu_memory_utilization=gpu_memory_utilization,
                    max_num_batched_tokens=max_num_batched_tokens, online=online)
    plan = plan_serving(req)
    if json:
        emit_json(plan)
        return
    render_serving(plan, console())


def _gib(b: int | float) -> str:
    return f"{b / 1024**3:,.2f}"


def render_serving(plan, con) -> None:
    """The plan as a few tables: layout, one GPU's memory, KV pool, bounds, targets, throughput, frontier."""
    from rich.table import Table

    r = plan.request
    par = f"TP {plan.tensor_parallel}" + (f" × PP {plan.pipeline_parallel}" if plan.pipeline_parallel > 1 else "")
    rep = f" × {plan.replicas} replicas" if plan.replicas > 1 else ""
    verdict = "[green]fits[/]" if plan.fits else "[red]does not fit[/]"
    kv = "no KV cache" if plan.kv_dtype == "none" else f"{plan.kv_dtype} KV"
    con.print(f"[bold]{plan.model}[/] on {r.gpus} × {plan.gpu_display} · {plan.engine} · {par}{rep} · "
              f"{plan.weights} weights · {kv} · {r.concurrency} × {r.context:,} tokens — {verdict}")
    mem = Table(title=f"one GPU ({plan.usable_gib:g} GiB usable)", show_edge=False, pad_edge=False)
    for col in ("term", "GiB", "provenance", "formula"):
        mem.add_column(col, justify="right" if col == "GiB" else "left")
    for m in plan.per_gpu:
        mem.add_row(m.name, _gib(m.bytes), m.provenance, m.formula)
    con.print(mem)
    if plan.kv:
        k = plan.kv
        blocks = f"{k.blocks:,} blocks × {k.block_size} = " if k.blocks else ""
        con.print(f"KV: {k.bytes_per_token:,} B/token/GPU · pool {blocks}{k.tokens:,} tokens · needed "
                  f"{k.tokens_needed:,} · largest concurrency at {r.context:,} tokens: {k.max_concurrency:,} · "
                  f"longest context at {r.concurrency}: {k.max_context:,}")
    con.print(f"prefill: ≤ {plan.prefill_tokens_per_step:,} tokens per step · decoding: {plan.decoding}")
    lat = plan.latency
    if lat:
        con.print(f"bounds (analytic roofline): time per output token ≥ {lat.tpot_ms:.1f} ms · TTFT ≥ "
                  f"{lat.ttft_ms:,.0f} ms (attention {lat.attention_flop_share:.0%} of prefill FLOPs) · ≤ "
                  f"{lat.tokens_per_s:,.0f} tokens/s · all-reduce {lat.allreduce_ms:.2f} ms/step")
    elif plan.kv is not None:
        con.print("bounds: not computed (the GPU's bandwidth or peak FLOP/s is not known)")
    for t in plan.targets:
        mark = "[green]met[/]" if t.met else "[red]missed[/]"
        con.print(f"target {t.name} {t.target:g}: bound {t.bound:.1f} — {mark}")
        for lever in t.levers:
            con.print(f"  - {lever}")
    if plan.throughput:
        tab = Table(title="throughput vs concurrency (full context)", show_edge=False, pad_edge=False)
        for col in ("users", "ms/token", "tokens/s", "fits"):
            tab.add_column(col, justify="right")
        for row in plan.throughput:
            tab.add_row(str(row.concurrency), f"{row.tpot_ms:.1f}", f"{row.tokens_per_s:,.0f}",
                        "yes" if row.fits else "no")
        con.print(tab)
    if plan.frontier:
        top = max(p.max_concurrency for p in plan.frontier) or 1
        con.print("largest concurrency × context:")
        for p in plan.frontier:
            bar = "█" * max(0, round(30 * p.max_concurrency / top))
            con.print(f"  {p.context:>9,} tokens  {p.max_concurrency:>6,}  {bar}")
    for n in plan.notes:
        con.print(f"note: {n}")
