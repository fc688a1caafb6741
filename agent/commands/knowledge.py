"""The researcher's knowledge as commands, for training: `qkv scale`, `qkv size`, `qkv hparams` (the model
and inference ones, `qkv context`, `qkv sampling`, `qkv profile`, are in knowledge_model.py). Each calls one
function of `qkv.tools.knowledge` (the same ones the design agent and the MCP server call) and prints its
result as a table, or as JSON with --json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qkv.agent.cli_app import SCHEMAS, JsonOpt, app, console, emit_json, validated

SCHEMAS.update({
    "scale-request": "qkv.tools.knowledge.scaling:ScaleRequest",
    "scale": "qkv.tools.knowledge.scaling:ScaleReport",
    "size-request": "qkv.tools.knowledge.sizing:SizeRequest",
    "size": "qkv.tools.knowledge.sizing:ArchitectureProposal",
    "hparams-request": "qkv.tools.knowledge.hparams:HparamRequest",
    "hparams": "qkv.tools.knowledge.hparams:HparamPlan",
    "context-request": "qkv.tools.knowledge.context_rules:ContextRequest",
    "context": "qkv.tools.knowledge.context_rules:ContextPlan",
    "sampling": "qkv.tools.knowledge.sampling_rules:SamplingRecommendation",
    "sampling-check": "qkv.tools.knowledge.sampling_rules:SamplingCheck",
    "profile-request": "qkv.tools.knowledge.layer_profile:ProfileRequest",
    "profile": "qkv.tools.knowledge.layer_profile:LayerProfile",
})


def _si(x: float | None, unit: str = "") -> str:
    """1.23e9 → '1.23 B'; plain below a thousand."""
    if x is None:
        return "—"
    for scale, suffix in ((1e15, "P"), (1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {suffix}{unit}"
    return f"{x:.3g}{(' ' + unit) if unit else ''}"


def _prov(fig) -> str:
    if fig.provenance == "cited":
        return "cited: " + ", ".join(fig.sources)
    return fig.provenance + (f" ({', '.join(fig.sources)})" if fig.sources else "")


def _figure_table(rows: list[tuple[str, str, object]]):
    """A three-column table: quantity, value, provenance (figure objects)."""
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("provenance")
    for name, value, fig in rows:
        table.add_row(name, value, _prov(fig) if fig is not None else "")
    return table


def _print_list(title: str, items: list[str]) -> None:
    c = console()
    if items:
        c.print(f"[bold]{title}[/]")
        for item in items:
            c.print(f" • {item}")


@app.command()
def scale(
    flops: Annotated[float | None, typer.Option(help="training compute budget in FLOPs, e.g. 1e21")] = None,
    params: Annotated[float | None, typer.Option(help="model parameters, e.g. 7e9")] = None,
    tokens: Annotated[float | None, typer.Option(help="training tokens, e.g. 2e12")] = None,
    fit: Annotated[str, typer.Option(help="loss-law constants: epoch (Besiroglu 2024 refit) | hoffmann")] = "epoch",
    gpu: Annotated[str | None, typer.Option(help="catalog GPU for the training time (qkv gpus), e.g. H100")] = None,
    gpus: Annotated[int, typer.Option(help="number of GPUs")] = 1,
    mfu: Annotated[float, typer.Option(help="model FLOPs utilisation in (0, 1]; 0.4 is typical")] = 0.4,
    inference_tokens: Annotated[float | None, typer.Option(
        help="tokens you expect to serve: adds the inference-aware optimum (Sardana et al. 2024)")] = None,
    json: JsonOpt = False,
) -> None:
    """Chinchilla scaling: compute-optimal parameters and tokens, C ≈ 6ND, predicted loss and training time.

    Give one of --flops, --params or --tokens; the other two follow from Hoffmann et al.'s compute-optimal
    frontier (≈20 tokens per parameter). The loss L(N, D) = E + A/N^α + B/D^β uses the Epoch AI refit by default.

    Example: qkv scale --flops 1e21 --gpu H100 --gpus 8 --mfu 0.4
    """
    from qkv.tools.knowledge.scaling import ScaleRequest
    from qkv.tools.knowledge.scaling import scale as run

    report = run(validated(ScaleRequest, flops=flops, params=params, tokens=tokens, fit=fit, gpu=gpu, gpus=gpus,
                           mfu=mfu, inference_tokens=inference_tokens))
    if json:
        emit_json(report)
        return
    rows = [("parameters N", _si(report.params.value), report.params),
            ("training tokens D", _si(report.tokens.value), report.tokens),
            ("training FLOPs C = 6ND", f"{report.flops.value:.3g}", report.flops),
            ("tokens per parameter", f"{report.tokens_per_param.value:.1f}", report.tokens_per_param),
            (f"loss L(N, D) [{report.fit.name}]", f"{report.loss.value:.3f} nats", report.loss)]
    if report.training:
        t = report.training
        rows += [(f"peak per GPU ({t.gpu})", _si(t.peak_flops_per_gpu.value, "FLOP/s"), t.peak_flops_per_gpu),
                 ("MFU", f"{t.mfu.value:.0%}", t.mfu),
                 (f"training time on {t.gpus} GPU(s)", f"{t.days.value:,.1f} days", t.days),
                 ("GPU-hours", f"{t.gpu_hours.value:,.0f}", t.gpu_hours)]
    if report.inference:
        i = report.inference
        rows += [("inference-aware N", _si(i.params.value), i.params),
                 ("inference-aware D", _si(i.tokens.value), i.tokens),
                 ("total FLOPs saved", f"{i.saving.value:.1%}", i.saving)]
    c = console()
    c.print(_figure_table(rows))
    c.print("[bold]Approach-3 optima at this budget[/]: " + "; ".join(
        f"{a.method}: {_si(a.params)} params × {_si(a.tokens)} tokens ({a.tokens_per_param:.0f}/param)"
        for a in report.alternatives))
    _print_list("notes", report.notes)
    c.print("sources: " + ", ".join(report.sources))


@app.command()
def size(
    params: Annotated[float | None, typer.Option(help="target parameter count, e.g. 1e9")] = None,
    flops: Annotated[float | None, typer.Option(help="or a compute budget: sizes its Chinchilla-optimal N")] = None,
    vocab: Annotated[int | None, typer.Option(help="vocabulary size (default 32,000 below 3B, 128,256 above)")] = None,
    context: Annotated[int, typer.Option(help="context window in tokens")] = 4096,
    attention: Annotated[str, typer.Option(help="gqa | mha | mqa")] = "gqa",
    norm: Annotated[str, typer.Option(help="rmsnorm | layernorm")] = "rmsnorm",
    position: Annotated[str, typer.Option(help="rope | alibi")] = "rope",
    tie_embeddings: Annotated[bool | None, typer.Option(
        "--tie-embeddings/--untie-embeddings", help="share input/output embeddings (default: below 1.5B)")] = None,
    save_config: Annotated[Path | None, typer.Option(help="write the proposed HF config.json here")] = None,
    json: JsonOpt = False,
) -> None:
    """Size a decoder-only Transformer from scratch: depth, width, heads, KV heads, FFN, vocab, norm, positions.

    The count is exact (qkv's closed-form counter) and the shape is compared with published models of that size.

    Example: qkv size --params 1e9 --save-config my-1b/config.json
    """
    from qkv.tools.knowledge.sizing import SizeRequest, size_architecture

    p = size_architecture(validated(SizeRequest, params=params, flops=flops, vocab=vocab, context=context,
                                    attention=attention, norm=norm, position=position,
                                    tie_embeddings=tie_embeddings))
    if save_config:
        _write_json(save_config, p.config)
    if json:
        emit_json(p)
        return
    from rich.table import Table

    rows = [("target parameters", _si(p.target_params.value), p.target_params),
            ("layers", str(p.layers.value), p.layers),
            ("d_model", str(p.hidden.value), p.hidden),
            ("heads", str(p.heads.value), p.heads),
            ("KV heads", f"{p.kv_heads.value} ({p.attention_type})", p.kv_heads),
            ("head dim", str(p.head_dim.value), p.head_dim),
            ("FFN (SwiGLU)", str(p.intermediate.value), p.intermediate),
            ("vocabulary", f"{p.vocab.value:,}", p.vocab),
            ("tied embeddings", str(p.tie_embeddings.value), p.tie_embeddings),
            ("norm", str(p.norm.value), p.norm),
            ("positions", str(p.position.value), p.position),
            ("Chinchilla-optimal tokens", _si(p.tokens.value), p.tokens)]
    c = console()
    c.print(_figure_table(rows))
    c.print(f"exact parameters [bold]{p.params:,}[/] ({p.relative_error:+.1%} vs target) · d_model/layers "
            f"{p.aspect_ratio:.1f} · FFN/d_model {p.ffn_ratio:.2f}")
    table = Table(show_edge=False, pad_edge=False, title="published models of that size")
    for col in ("model", "params", "layers", "d_model", "heads/kv", "head dim", "d/L"):
        table.add_column(col)
    for s in p.compared_with:
        table.add_row(s.name, _si(s.params), str(s.layers), str(s.hidden), f"{s.heads}/{s.kv_heads}",
                      str(s.head_dim), f"{s.aspect_ratio:.1f}")
    c.print(table)
    _print_list("notes", p.notes)
    if save_config:
        c.print(f"config written to {save_config}")


def _write_json(path: Path, data: dict) -> None:
    """Atomic write (qkv.tools.atomic)."""
    import json as _json

    from qkv.tools.atomic import write_text

    write_text(path, _json.dumps(data, indent=2) + "\n")


@app.command()
def hparams(
    model: Annotated[str | None, typer.Argument(help="catalog name, config.json or .gguf (or use --params)")] = None,
    params: Annotated[float | None, typer.Option(help="parameter count when no model is named, e.g. 7e9")] = None,
    method: Annotated[str, typer.Option("--method", "-m", help="full | lora | qlora | pretrain")] = "lora",
    tokens: Annotated[float | None, typer.Option(help="training tokens, to turn ratios into steps")] = None,
    seq: Annotated[int, typer.Option(help="tokens per training sequence")] = 2048,
    json: JsonOpt = False,
) -> None:
    """Hyperparameters scaled to model size and method, each with its source (no default across scales).

    Learning rate, schedule, warmup, weight decay, batch, max grad norm and LoRA r/alpha/dropout/targets come
    from GPT-3's Table 2.1, Llama 2, Alpaca, Tulu 2, the LoRA paper and QLoRA's released scripts.

    Example: qkv hparams llama-2-7b --method qlora
    """
    from qkv.tools.knowledge.hparams import HparamRequest, recommend_hparams

    plan = recommend_hparams(validated(HparamRequest, model=model, params=params, method=method, tokens=tokens,
                                       seq=seq))
    if json:
        emit_json(plan)
        return

    def val(fig) -> str:
        v = fig.value
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1e4:
            return f"{v:,}" + (f" {fig.unit}" if fig.unit else "")
        if isinstance(v, float) and v and abs(v) < 1e-2:
            return f"{v:.2e}"
        if isinstance(v, float) and v >= 1e4:
            return _si(v, " " + (fig.unit or "")).strip()
        return (", ".join(v) if isinstance(v, list) else str(v)) + (f" {fig.unit}" if fig.unit else "")

    rows = [(name, val(fig), fig) for name, fig in [
        ("parameters", plan.params), ("learning rate", plan.learning_rate), ("schedule", plan.schedule),
        ("warmup", plan.warmup), ("weight decay", plan.weight_decay), ("batch", plan.batch_sequences),
        ("batch tokens", plan.batch_tokens), ("max grad norm", plan.max_grad_norm), ("optimizer", plan.optimizer)]]
    if plan.quantization:
        rows.append(("quantization", val(plan.quantization), plan.quantization))
    if plan.lora:
        lo = plan.lora
        rows += [("LoRA r", val(lo.r), lo.r), ("LoRA alpha", val(lo.alpha), lo.alpha),
                 ("LoRA dropout", val(lo.dropout), lo.dropout), ("LoRA targets", val(lo.targets), lo.targets),
                 ("LoRA scaling alpha/r", val(lo.scaling), lo.scaling)]
    if plan.steps:
        rows += [("steps", val(plan.steps), plan.steps), ("warmup steps", val(plan.warmup_steps), plan.warmup_steps)]
    c = console()
    c.print(f"[bold]{plan.method}[/] · {_si(plan.params.value)} parameters")
    c.print(_figure_table(rows))
    _print_list("notes", plan.notes)
    c.print("sources: " + ", ".join(plan.sources))
