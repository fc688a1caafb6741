"""`qkv train`: fine-tune (full / LoRA / QLoRA) from a YAML config, resumable, with a pilot mode.

Import stays light: torch / transformers / peft load inside the command, after the config is checked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from qkv.agent.cli_app import SCHEMAS, JsonOpt, app, console, emit_json

if TYPE_CHECKING:
    from qkv.tools.train.config import TrainConfig
    from qkv.tools.train.schema import TrainSummary

SCHEMAS.update({
    "train-config": "qkv.tools.train.config:TrainConfig",
    "train": "qkv.tools.train.schema:TrainSummary",
    "train-pilot": "qkv.tools.train.schema:PilotResult",
})


@app.command()
def train(
    config: Annotated[Path | None, typer.Argument(
        help="training config YAML (see configs/ and --print-config)")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="continue from the latest COMPLETE checkpoint in the output folder")] = False,
    pilot: Annotated[int | None, typer.Option(
        "--pilot", help="run N steps only, with held-out perplexity before and after")] = None,
    sample: Annotated[int | None, typer.Option("--sample", help="pilot: use only the first N training rows")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="output folder (overrides run.output_dir)")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help="override train.max_steps")] = None,
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="print the config as commented YAML (the defaults when no CONFIG) and exit")] = False,
    method: Annotated[str, typer.Option(help="with --print-config and no CONFIG: full | lora | qlora")] = "lora",
    validate: Annotated[bool, typer.Option(
        "--validate", help="check the config, the data and this machine without loading the model, then exit")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="progress bar on stderr")] = True,
    json: JsonOpt = False,
) -> None:
    """Fine-tune a causal LM with transformers + peft (+ bitsandbytes for QLoRA).

    Example: qkv train configs/pilot-gemma3-270m-lora-cpu.yaml --pilot 30
    Writes OUT/checkpoint-N (atomic), OUT/metrics.jsonl, OUT/adapter, OUT/config.yaml, OUT/summary.json.
    Ctrl-C saves a checkpoint and exits 130; `--resume` picks up from the latest complete one.
    """
    from qkv.tools.train.config import to_yaml

    if config is None:
        return _print_default_config(print_config, method)
    cfg = _load(config, out, max_steps)
    if print_config:
        typer.echo(to_yaml(cfg, header=f"qkv train {config}"))
        return
    base_dir = config.resolve().parent
    if validate:
        return _validate(cfg, config, base_dir)
    if pilot is not None:
        summary = _pilot(cfg, pilot, sample, base_dir, resume, progress, json)
    else:
        summary = _train(cfg, base_dir, resume, progress, json)
    if summary.status == "interrupted":
        # SystemExit, not typer.Exit: main() runs the app with standalone_mode=False, which turns typer.Exit
        # into a return value it does not pass on; 130 is the shell's code for "stopped by Ctrl-C"
        raise SystemExit(130)


def _print_default_config(print_config: bool, method: str) -> None:
    """No CONFIG: with --print-config, the defaults for --method as commented YAML; without, an error."""
    from qkv.tools.train.config import TrainConfig, to_yaml

    if not print_config:
        from qkv.tools.errors import BadInput

        raise BadInput("no training config given", expected="qkv train CONFIG.yaml, or --print-config for a "
                       "commented one")
    from qkv.tools.train.config import config_from_dict

    cfg = config_from_dict({"method": {"kind": method}}) if method != "lora" else TrainConfig()
    typer.echo(to_yaml(cfg, header="qkv train CONFIG.yaml   (write this to a file, edit, run)"))


def _load(config: Path, out: Path | None, max_steps: int | None) -> TrainConfig:
    """The config file with the command line's --out and --max-steps applied."""
    from qkv.tools.train.config import TrainConfig, load_config

    cfg = load_config(config)
    updates = {}
    if out is not None:
        updates["run"] = cfg.run.model_copy(update={"output_dir": str(out)})
    if max_steps is not None:
        updates["train"] = cfg.train.model_copy(update={"max_steps": max_steps})
    if updates:
        cfg = TrainConfig(**{**cfg.model_dump(), **{k: v.model_dump() for k, v in updates.items()}})
    return cfg


def _validate(cfg: TrainConfig, config: Path, base_dir: Path) -> None:
    """--validate: the config, the data and this machine checked, the model not loaded."""
    from qkv.tools.train.preflight import preflight

    rows = preflight(cfg, base_dir)
    console().print(f"[green]ok[/green] {config}: {cfg.method.kind} on {cfg.model.name}, "
                    f"{len(rows.train)} training rows, {len(rows.eval)} held-out rows; model not loaded")


def _pilot(cfg: TrainConfig, steps: int, sample: int | None, base_dir: Path, resume: bool, progress: bool,
           json: bool) -> TrainSummary:
    """--pilot N: N steps with held-out perplexity before and after."""
    from qkv.tools.train.pilot import pilot as run_pilot

    result = run_pilot(cfg, steps, sample=sample, base_dir=base_dir, resume=resume, progress=progress)
    if json:
        emit_json(result)
        return result.summary
    _render(result.summary)
    c = console()
    if result.after is None:
        c.print(f"held-out perplexity before: {result.before.token_ppl:.3f} (pilot interrupted)")
    else:
        c.print(f"held-out perplexity: {result.before.token_ppl:.3f} → {result.after.token_ppl:.3f} "
                f"(× {result.ppl_ratio:.3f}; bits/byte {result.before.bits_per_byte:.4f} → "
                f"{result.after.bits_per_byte:.4f}, {result.after.tokens} tokens)")
    return result.summary


def _train(cfg: TrainConfig, base_dir: Path, resume: bool, progress: bool, json: bool) -> TrainSummary:
    """The full run (resumable)."""
    from qkv.tools.train.run import train as run_train

    summary = run_train(cfg, base_dir=base_dir, resume=resume, progress=progress)
    if summary.rank:
        pass  # under `accelerate launch` only rank 0 reports: one table (or one JSON document), not one per rank
    elif json:
        emit_json(summary)
    else:
        _render(summary)
    return summary


def _render(summary: TrainSummary) -> None:
    from rich.table import Table

    gib = 1024**3
    t = Table(title=f"qkv train — {summary.method} on {summary.model} ({summary.status})", show_header=False)
    t.add_row("steps", f"{summary.steps} / {summary.max_steps}")
    if summary.resumed_from:
        t.add_row("resumed from", summary.resumed_from)
    t.add_row("trainable / total params", f"{summary.trainable_params:,} / {summary.params:,}")
    t.add_row("final loss / eval loss", f"{summary.final_loss} / {summary.eval_loss}")
    t.add_row("tokens seen, tokens/s", f"{summary.tokens_seen:,}, {summary.tokens_per_s}")
    if summary.memory:
        m = summary.memory
        pred = f"{m.predicted_allocated_bytes / gib:.2f} GiB" if m.predicted_allocated_bytes else "n/a"
        t.add_row(f"peak memory ({m.measured_kind})", f"{m.measured_bytes / gib:.2f} GiB (estimator: {pred})")
    t.add_row("last checkpoint", str(summary.last_checkpoint))
    t.add_row("weights", str(summary.adapter_dir))
    t.add_row("run folder", summary.output_dir)
    console().print(t)
    for note in summary.notes:
        console().print(f"[yellow]note[/yellow] {note}")
