"""Pure helpers the app uses around a report: the chat summary after a design, the tracer request for its
recommended step, the export text, and the atomic file write. No Textual here (unit-testable)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qkv.agent.graph.schemas import DesignReport


def summary_text(r: DesignReport) -> str:
    """The reply after a design: the decisions with their numbers, quoted from the report."""
    from qkv.agent.graph.narrate import with_article

    arch, eff, inf, obj = r.architecture, r.efficiency, r.inference, r.objective
    verdict = "fits" if eff.fits else "does NOT fit"
    kv_text = (f"KV cache {inf.kv_cache_gib} GiB" if obj.architecture != "encoder-only"
               else "no KV cache (one forward pass)")
    lines = [f"Base model: {arch.base_model} ({arch.params / 1e9:.2f}B parameters, context window "
             f"{arch.context_window}, action: {arch.context_action}).",
             f"Training: {eff.strategy} — peak {eff.peak_vram_gib} GiB per GPU on {eff.gpus}× {eff.gpu} "
             f"(usable {eff.usable_gib} GiB): {verdict}.",
             f"Objective: {obj.kind} with {with_article(obj.architecture)} model; metrics: {', '.join(obj.metrics)}.",
             f"Inference: {inf.quantization} weights, {kv_text}, {inf.attention_kernel}; sampling: "
             f"{inf.sampling_policy}."]
    if r.checks:
        lines.append("Checks: " + "; ".join(f"{c.rule}: {c.status}" for c in r.checks) + ".")
    lines.append("The full report is in the Report tab (F2); ask about any number, or change the task.")
    return "\n".join(lines)


def in_app_words(err: Any) -> str:
    """A QkvError as the chat says it: shell hints (`qkv gpus`, --flags) become choices to type here."""
    import re

    what = str(err.what).rstrip(".")
    expected = re.sub(r"\s*\(`qkv [a-z]+`\)", "", err.expected or "")
    expected = re.sub(r"`qkv [a-z]+`", "the catalog", expected)
    text = what + (f"; expected {expected}" if expected else "") + "."
    if err.choices:
        first = err.choices[0]
        text += f"\nDid you mean: {', '.join(err.choices[:6])}? Say e.g. “use {first}”."
    return text


class NotTraceable(ValueError):
    """The recommended step cannot be traced by the one-process fake-tensor tracer (said in app words)."""


def memory_request(r: DesignReport) -> dict:
    """The training step the report recommends, as a MemoryRequest payload for the tracer: one GPU's share.

    The tracer runs one process. Under DDP every GPU holds the same replica and sees its own micro-batch, so
    one GPU's share is exactly the single-GPU step; a sharded plan (FSDP/ZeRO) splits the weights and states
    across GPUs in a way one process cannot reproduce, so it is refused with the reason."""
    arch, eff = r.architecture, r.efficiency
    method = eff.method if eff.method in ("full", "lora", "qlora") else "inference"
    if eff.gpus > 1 and eff.sharding not in ("none", "ddp"):
        raise NotTraceable(
            f"this plan shards the model over {eff.gpus} GPUs ({eff.sharding}); the tracer runs one process on fake "
            "tensors and cannot split weights across GPUs. The Memory tab (F3) has the analytic per-GPU figure; "
            "ask for a one-GPU plan (e.g. 'use one H100') to trace it")
    req = {"model": arch.base_model, "method": method, "batch": eff.micro_batch, "seq": arch.train_seq,
           "grad_checkpointing": eff.grad_checkpointing, "gpus": 1, "gpu": eff.gpu}
    lora_r = eff.hyperparameters.get("lora_r")
    if method in ("lora", "qlora") and isinstance(lora_r, int):
        req["lora_r"] = lora_r
    return req


def export_text(report: DesignReport, fmt: str) -> str:
    """The report in an export format: md, html, or the JSON contract."""
    if fmt == "md":
        return report.to_markdown()
    if fmt == "html":
        return report.to_html()
    return report.model_dump_json(indent=2) + "\n"
