"""The researcher's knowledge of a model and its serving as commands: `qkv context`, `qkv sampling`,
`qkv profile` (their schemas are registered in knowledge.py). Each calls one function of
`qkv.tools.knowledge` and prints its result as a table, or as JSON with --json."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from qkv.agent.cli_app import JsonOpt, app, console, emit_json, validated
from qkv.agent.commands.knowledge import _print_list, _si


@app.command()
def context(
    model: Annotated[str, typer.Argument(help="catalog name, config.json, model folder or .gguf")],
    tokens: Annotated[int, typer.Option("--tokens", "-t", help="tokens the task needs in context at once")],
    batch: Annotated[int, typer.Option(help="sequences decoded together")] = 1,
    kv_dtype: Annotated[str, typer.Option(help="KV cache: bf16 fp16 fp32 fp8 q8_0 q4_0")] = "bf16",
    need_full_attention: Annotated[bool, typer.Option(
        "--need-full-attention", help="every token must see every other: rules out chunking and windows")] = False,
    online: Annotated[bool, typer.Option(help="allow fetching a hub config.json")] = False,
    json: JsonOpt = False,
) -> None:
    """Does the task's length fit the model's window? If not, the options and their KV-cache cost.

    Options: RoPE scaling (linear, dynamic NTK, YaRN, Llama 3, with the config block), a sliding window, an ALiBi
    model, chunking/retrieval, a long-context base model. Exits 2 when no option reaches the length.

    Example: qkv context llama-2-7b --tokens 16000
    """
    from qkv.tools.knowledge.context_rules import ContextRequest, context_plan

    plan = context_plan(validated(ContextRequest, model=model, tokens=tokens, batch=batch, kv_dtype=kv_dtype,
                                  need_full_attention=need_full_attention, online=online))
    if json:
        emit_json(plan)
        return
    from rich.table import Table

    c = console()
    verdict = "[green]fits[/]" if plan.fits else f"[yellow]exceeds ×{plan.factor:.2f}[/]"
    c.print(f"[bold]{plan.model}[/]: {plan.required:,} tokens vs window {plan.window.value:,} → {verdict} · "
            f"action [bold]{plan.action}[/]")
    c.print(f"KV cache {plan.kv_bytes_per_token.value:,} B/token ({plan.kv_bytes_per_token.note}) → "
            f"{plan.kv_cache.value / 2**30:,.2f} GiB at {plan.required:,} tokens × batch {plan.request.batch}")
    if plan.options:
        table = Table(show_edge=False, pad_edge=False)
        for col in ("option", "usable", "up to", "KV GiB", "fine-tuning"):
            table.add_column(col)
        for o in plan.options:
            mark = "→ " if plan.recommended and plan.recommended.name == o.name else "  "
            table.add_row(f"{mark}{o.kind}: {o.name}", "yes" if o.applicable else "no",
                          f"{o.max_tokens:,}" if o.max_tokens else ("any" if o.applicable else "—"),
                          f"{o.kv_cache.value / 2**30:,.2f}" if o.kv_cache else "—", o.needs_finetuning)
        c.print(table)
        _print_list("why", [f"{o.name}: {o.reason}" for o in plan.options if o.applicable])
    if plan.recommended and plan.recommended.config_block:
        import json as _json

        c.print("[bold]config.json[/] \"rope_scaling\": " + _json.dumps(plan.recommended.config_block))
        c.print("[bold]transformers 5[/] \"rope_parameters\": " + _json.dumps(plan.recommended.rope_parameters))
    _print_list("caveats", plan.caveats)


@app.command()
def sampling(
    task: Annotated[str | None, typer.Argument(
        help="summarisation | chat | code | qa | translation | classification | extraction | creative")] = None,
    check: Annotated[bool, typer.Option("--check", help="check the policy given by the options below")] = False,
    temperature: Annotated[float, typer.Option(help="--check: temperature (0 = greedy)")] = 0.7,
    top_p: Annotated[float, typer.Option(help="--check: nucleus mass (1.0 = off)")] = 0.9,
    top_k: Annotated[int, typer.Option(help="--check: top-k (0 = off)")] = 40,
    max_new_tokens: Annotated[int, typer.Option(help="--check: length cap (0 = unbounded)")] = 256,
    repetition_penalty: Annotated[float, typer.Option(help="--check: 1.0 = off")] = 1.0,
    num_beams: Annotated[int, typer.Option(help="--check: beam width")] = 1,
    json: JsonOpt = False,
) -> None:
    """Decoding per task (top-p/top-k/temperature/repetition penalty, with sources), or check a policy.

    Without a task, lists every preset. With --check, flags a policy without a sampling bound (fail, exit 1)
    or one that is risky for the task (warn).

    Examples: qkv sampling code · qkv sampling --check --temperature 1.0 --top-p 1.0 --top-k 0
    """
    from qkv.tools.knowledge.sampling_rules import check_sampling, recommend_sampling, tasks
    from qkv.tools.sampling import SamplingPolicy

    if check:
        policy = validated(SamplingPolicy, temperature=temperature, top_p=top_p, top_k=top_k,
                           max_new_tokens=max_new_tokens or None, repetition_penalty=repetition_penalty,
                           num_beams=num_beams)
        result = check_sampling(policy, task)
        if json:
            emit_json(result)
        else:
            color = {"pass": "green", "warn": "yellow", "fail": "red"}[result.status]
            console().print(f"[{color}]{result.status}[/]: {result.description}")
            for i in result.issues:
                console().print(f" • {i.level} {i.field}: {i.message}")
            if result.recommended:
                console().print(f"preset for {result.task}: {result.recommended.describe()}")
        if result.status == "fail":
            sys.exit(1)  # a verdict, not a usage error: scripts can gate on it
        return
    recs = [recommend_sampling(task)] if task else [recommend_sampling(t) for t in tasks()]
    if json:
        if task:
            emit_json(recs[0])
        else:
            from pydantic import TypeAdapter

            from qkv.tools.knowledge.sampling_rules import SamplingRecommendation

            sys.stdout.write(TypeAdapter(list[SamplingRecommendation]).dump_json(recs, indent=2).decode() + "\n")
        return
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for col in ("task", "policy", "sources"):
        table.add_column(col)
    for r in recs:
        table.add_row(r.task, r.description, ", ".join(r.sources))
    console().print(table)
    if task:
        console().print(recs[0].rationale)
        _print_list("notes", recs[0].notes)


@app.command()
def profile(
    model: Annotated[str, typer.Argument(help="catalog name, config.json, model folder or .gguf")],
    seq: Annotated[int, typer.Option("--seq", "-s", help="sequence length of the task")] = 2048,
    all_layers: Annotated[bool, typer.Option("--all-layers", help="one row per layer instead of runs")] = False,
    online: Annotated[bool, typer.Option(help="allow fetching a hub config.json")] = False,
    json: JsonOpt = False,
) -> None:
    """Layer profile: attention type (MHA/GQA/MQA), heads, KV heads, head dim, sliding-window pattern, MoE,
    parameter shares, and attention-score vs linear FLOPs at --seq with the length where attention dominates.

    Example: qkv profile gemma-3-270m --seq 8192
    """
    from qkv.tools.knowledge.layer_profile import ProfileRequest, layer_profile

    p = layer_profile(validated(ProfileRequest, model=model, seq=seq, online=online))
    if json:
        emit_json(p)
        return
    from rich.table import Table

    c = console()
    moe = f" · MoE {p.experts} experts top-{p.experts_per_token}" if p.experts else ""
    c.print(f"[bold]{p.model}[/] · {len(p.layers)} layers · {p.attention_type} {p.heads} heads / {p.kv_heads} KV "
            f"heads × {p.head_dim}{moe} · pattern: {p.pattern}")
    c.print(f"parameters {p.params_total:,} (active {p.params_active:,}): attention {p.share_attention.value:.1%}, "
            f"MLP {p.share_mlp.value:.1%}, embeddings {p.share_embeddings.value:.1%}, "
            f"norms/biases {p.share_norm_bias.value:.2%}")
    table = Table(show_edge=False, pad_edge=False)
    for col in ("layers", "attention", "window", "heads/kv", "attn params", "MLP params", "score GFLOP",
                "linear GFLOP", "KV B/token"):
        table.add_column(col)
    groups: list[list] = []
    for layer in p.layers:
        key = (layer.block, layer.attention, layer.window, layer.params_attention, layer.params_mlp)
        if all_layers or not groups or groups[-1][0] != key:
            groups.append([key, [layer]])
        else:
            groups[-1][1].append(layer)
    for _, members in groups:
        first, last = members[0], members[-1]
        span = str(first.index) if first is last else f"{first.index}-{last.index}"
        kind = first.attention + (" +cross" if first.cross_attention else "")
        table.add_row(span, kind, f"{first.window:,}" if first.window else "—",
                      f"{first.heads}/{first.kv_heads} ({first.attention_type})", _si(first.params_attention),
                      _si(first.params_mlp), f"{first.attention_score_flops / 1e9:,.1f}",
                      f"{first.linear_flops / 1e9:,.1f}", f"{first.kv_bytes_per_token:,}")
    c.print(table)
    cross = p.crossover_seq.value
    c.print(f"at seq {p.request.seq:,}: attention scores {p.attention_share.value:.1%} of layer FLOPs; eager score "
            f"memory {p.score_memory_ratio.value:.2f}× the linear outputs; attention dominates from "
            f"{f'{cross:,} tokens' if cross else 'never (windows cap it)'}")
    _print_list("notes", p.notes)
