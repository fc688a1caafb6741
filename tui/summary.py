"""Pure helpers the app uses around a report: the chat summary after a design, the tracer request for its
recommended step, the export text, and the atomic file write. No Textual here (unit-testable)."""

from __future__ import annotations

from typing import Any


def summary_text(r: dict) -> str:
    """The reply after a design: the decisions with their numbers, quoted from the report."""
    from qkv.agent.graph.narrate import with_article
    arch, eff, inf = r.get("architecture", {}), r.get("efficiency", {}), r.get("inference", {})
    obj = r.get("objective", {})
    lines = [f"Base model: {arch.get('base_model')} ({arch.get('params', 0) / 1e9:.2f}B parameters, "
             f"context window {arch.get('context_window')}, action: {arch.get('context_action')})."]
    if eff:
        verdict = "fits" if eff.get("fits") else "does NOT fit"
        lines.append(f"Training: {eff.get('strategy')} — peak {eff.get('peak_vram_gib')} GiB per GPU on "
                     f"{eff.get('gpus')}× {eff.get('gpu')} (usable {eff.get('usable_gib')} GiB): {verdict}.")
    if obj:
        lines.append(f"Objective: {obj.get('kind')} with {with_article(str(obj.get('architecture')))} model; metrics: "
                     f"{', '.join(obj.get('metrics') or [])}.")
    if inf:
        kv = inf.get("kv_cache_gib")
        kv_text = f"KV cache {kv} GiB" if kv is not None else "no KV cache (one forward pass)"
        lines.append(f"Inference: {inf.get('quantization')} weights, {kv_text}, "
                     f"{inf.get('attention_kernel')}; sampling: {inf.get('sampling_policy')}.")
    checks = r.get("checks") or []
    if checks:
        lines.append("Checks: " + "; ".join(f"{c.get('rule')}: {c.get('status')}" for c in checks) + ".")
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


def memory_request(r: dict) -> dict:
    """The training step the report recommends, as a MemoryRequest payload for the tracer: one GPU's share.

    The tracer runs one process. Under DDP every GPU holds the same replica and sees its own micro-batch, so
    one GPU's share is exactly the single-GPU step; a sharded plan (FSDP/ZeRO) splits the weights and states
    across GPUs in a way one process cannot reproduce, so it is refused with the reason."""
    arch, eff = r["architecture"], r["efficiency"]
    method = eff.get("method") if eff.get("method") in ("full", "lora", "qlora") else "inference"
    sharding = eff.get("sharding") or "none"
    gpus = eff.get("gpus") or 1
    if gpus > 1 and sharding not in ("none", "ddp"):
        raise NotTraceable(
            f"this plan shards the model over {gpus} GPUs ({sharding}); the tracer runs one process on fake "
            "tensors and cannot split weights across GPUs. The Memory tab (F3) has the analytic per-GPU figure; "
            "ask for a one-GPU plan (e.g. 'use one H100') to trace it")
    req = {"model": arch["base_model"], "method": method, "batch": eff.get("micro_batch") or 1,
           "seq": arch.get("train_seq") or 2048, "grad_checkpointing": bool(eff.get("grad_checkpointing")),
           "gpus": 1, "gpu": eff.get("gpu")}
    hp = eff.get("hyperparameters") or {}
    if method in ("lora", "qlora") and isinstance(hp.get("lora_r"), int):
        req["lora_r"] = hp["lora_r"]
    return req


def export_text(report: Any, fmt: str) -> str:
    if fmt == "md":
        return report.to_markdown()
    if fmt == "html":
        return report.to_html()
    return report.model_dump_json(indent=2) + "\n"
