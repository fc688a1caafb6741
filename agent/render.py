"""Terminal rendering of tool results with rich (tables, not prose). Imported only by the CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from qkv.tools.memory.schema import GB, GIB
from qkv.tools.memory.verdict import FitReport
from qkv.tools.params import ParamCount

if TYPE_CHECKING:  # the trace comparison is rendered only with --trace; keep its import off the fast path
    from qkv.tools.trace.compare import TraceComparison


def _gib(b: float) -> str:
    return f"{b / GIB:,.2f}"


def _gb(b: float) -> str:
    return f"{b / GB:,.2f}"


def render_fit(report: FitReport, console: Console) -> None:
    e = report.estimate
    r = e.request
    head = f"[bold]{e.model}[/] · {r.method} · batch {r.batch} × seq {r.seq:,}"
    if r.method != "inference":
        head += f" · {r.precision} · {r.optimizer}" + (" · grad ckpt" if r.grad_checkpointing else "")
    if r.gpus > 1:
        head += f" · {r.gpus} GPUs ({r.sharding})"
    console.print(head)
    console.print(f"params {e.params:,} · trainable {e.trainable_params:,} · peak during [bold]{e.peak_phase}[/]")
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("component")
    table.add_column("GiB", justify="right")
    table.add_column("GB", justify="right")
    table.add_column("provenance")
    for t in e.terms:
        table.add_row(t.name, _gib(t.bytes), _gb(t.bytes), t.provenance)
    table.add_section()
    table.add_row("[bold]allocated peak[/]", f"[bold]{_gib(e.allocated_bytes)}[/]", _gb(e.allocated_bytes),
                  "≈ torch.cuda.max_memory_allocated")
    for t in e.overhead:
        table.add_row(t.name, _gib(t.bytes), _gb(t.bytes), "assumed allowance")
    table.add_row("[bold]total per GPU[/]", f"[bold]{_gib(e.total_bytes)}[/]", _gb(e.total_bytes), "≈ nvidia-smi")
    console.print(table)
    console.print("[dim]how each term was computed:[/]")
    for t in [*e.terms, *e.overhead]:
        note = f" [dim]— {t.note}[/]" if t.note else ""
        console.print(f"  [bold]{t.name}[/]: {t.formula}{note}", highlight=False)
    if e.host_bytes:
        console.print(f"host RAM (offloaded activations, paged optimizer state): {_gib(e.host_bytes)} GiB "
                      "(not on the GPU)")
    if e.fit:
        verdict = "[green]fits[/]" if e.fit.fits else "[red]does not fit[/]"
        console.print(f"{e.fit.gpu}: {verdict} · usable {_gib(e.fit.usable_bytes)} GiB · "
                      f"headroom {_gib(e.fit.headroom_bytes)} GiB")
        console.print(f"largest micro-batch that fits: {report.max_batch} · longest sequence: {report.max_seq:,}")
    if report.ladder:
        lad = Table(title="strategies, in the order a researcher tries them", show_edge=False, pad_edge=False)
        lad.add_column("strategy")
        lad.add_column("GiB", justify="right")
        lad.add_column("fits")
        for o in report.ladder:
            mark = ("[yellow]tight[/]" if o.tight else "[green]yes[/]") if o.fits else "[red]no[/]"
            star = "  ← recommended" if o.name == report.recommended else ""
            lad.add_row(o.name + star, _gib(o.total_bytes), mark)
        console.print(lad)
    for w in e.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    console.print("[dim]analytic estimate; docs/memory-model.md gives every formula and its source[/]")


def render_params(p: ParamCount, console: Console) -> None:
    table = Table(title=f"{p.model} ({p.model_class})", show_edge=False, pad_edge=False)
    table.add_column("count")
    table.add_column("params", justify="right")
    rows = [("total", p.total), ("embedding", p.embedding), ("lm_head (untied)", p.lm_head),
            ("non-embedding", p.non_embedding), ("attention", p.attention), ("MLP / experts", p.mlp),
            ("norms and biases", p.norm_and_bias)]
    if p.active != p.total:
        rows.append(("active per token (MoE)", p.active))
    if p.meta_total is not None:
        rows.append(("meta-device instantiation", p.meta_total))
    if p.gguf_total is not None:
        rows.append(("GGUF tensors", p.gguf_total))
    for name, n in rows:
        table.add_row(name, f"{n:,}")
    console.print(table)
    console.print(f"[dim]{p.method}, {p.provenance}; config from {p.source}[/]")


def render_comparison(c: TraceComparison, console: Console) -> None:
    t = c.traced
    table = Table(title=f"analytic vs traced ({t.model}, peak during {t.peak_phase}, traced in {t.seconds:g} s)",
                  show_edge=False, pad_edge=False)
    for col in ("category", "analytic GiB", "traced GiB", "difference GiB"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for r in c.rows:
        table.add_row(r.category, _gib(r.analytic_bytes), _gib(r.traced_bytes), f"{r.difference_bytes / GIB:+,.2f}")
    table.add_section()
    table.add_row("[bold]peak (live tensors)[/]", _gib(c.analytic.estimate.allocated_bytes), _gib(t.peak_bytes),
                  f"{c.relative_error:+.1%}")
    table.add_row("allocated (512 B blocks)", "", _gib(t.allocated_bytes), "")
    table.add_row("reserved (allocator model)", "", _gib(t.reserved_bytes), "")
    table.add_row("total with CUDA context", _gib(c.analytic.estimate.total_bytes), _gib(t.total_bytes), "")
    console.print(table)
    if t.top_modules:
        console.print("saved activations by module: " + ", ".join(
            f"{m.module} {m.bytes / GIB:.2f} GiB" for m in t.top_modules[:5]), highlight=False)
    for note in t.analytic_adjustments:
        console.print(f"[dim]traced with an analytic term: {note}[/]")


def render_diagnosis(d, console: Console) -> None:
    """`qkv vram … --why`: the dominant terms, the targeted fixes with their re-estimated savings, the plan."""
    where = f" of {d.usable_gib:g} GiB usable" if d.usable_gib else ""
    verdict = "" if d.fits is None else (" — fits" if d.fits else " — does not fit")
    console.print(f"[bold]why {d.total_gib:g} GiB{where}{verdict}[/]: the largest terms")
    for t in d.ranked[:5]:
        console.print(f"  {t.share:>5.0%}  {t.name} ({t.gib:g} GiB)", highlight=False)
    table = Table(title="targeted fixes (each re-estimated alone)", show_edge=False, pad_edge=False)
    for col in ("attacks", "fix", "saves GiB", "then GiB", "fits", "cost"):
        table.add_column(col, justify="right" if "GiB" in col else "left")
    for f in d.fixes:
        table.add_row(f.term, f.fix, f"{f.saving_gib:g}", f"{f.total_gib:g}",
                      "" if f.fits is None else ("yes" if f.fits else "no"), f.cost)
    console.print(table)
    if d.plan:
        console.print("[bold]plan[/] (least disruptive first, each step re-estimated):")
        for i, f in enumerate(d.plan, 1):
            console.print(f"  {i}. {f.fix}: −{f.saving_gib:g} GiB → {f.total_gib:g} GiB"
                          + ("" if f.fits is None else (" (fits)" if f.fits else "")), highlight=False)
        end = "fits with the margin" if d.plan_fits else "still does not fit: see the ladder and a bigger GPU"
        host = f"; host RAM {d.host_gib:g} GiB (offloaded activations, paged optimizer state)" if d.host_gib else ""
        console.print(f"  → {end}{host}")
