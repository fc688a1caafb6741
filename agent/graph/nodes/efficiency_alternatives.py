"""The efficiency step's answers in words, from the memory tools: the chosen method weighed against the next
cheaper one (memory, longest sequence, step time, quality risk, and the rule that picks), and, when nothing
fits, what would — ranked by how little each changes the plan."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.nodes.common import Calls
from qkv.tools.memory.schema import to_gib

CHEAPER = {"full": "lora", "lora": "qlora"}
RULE = ("the highest-fidelity method that fits with the safety margin at the required length is recommended "
        "(full fine-tuning, then 16-bit LoRA, then QLoRA): 4-bit base weights add quantisation error and "
        "dequantisation time, so they are used only when needed — or when the documents are longer than the "
        "higher-fidelity method allows")


def weigh(task, arch, req, rung, calls: Calls) -> dict[str, Any]:
    """The chosen method against the next cheaper one at the same levers: memory, the longest sequence each
    allows on this GPU, step time and quality risk (qkv.tools.memory.verdict.weigh_methods)."""
    from qkv.tools.memory.verdict import METHOD_LABEL, weigh_methods

    cheaper = CHEAPER[req.method]
    levers = {k: v for k, v in rung["changes"].items() if k != "method"}
    name = rung["name"].replace(METHOD_LABEL[req.method], METHOD_LABEL[cheaper], 1)
    rows = calls("memory.weigh_methods", weigh_methods, req,
                 [(rung["name"], dict(rung["changes"])), (name, {**levers, "method": cheaper})])
    chosen, other = rows
    need = arch["required_tokens"]
    window = arch.get("context_window")
    cap = " (the model's window)" if window and chosen.max_seq >= window else ""
    words = (f"{chosen.name} needs {chosen.total_gib} GiB and allows up to {chosen.max_seq:,} tokens per sequence on "
             f"this GPU{cap}; {other.name} needs {other.total_gib} GiB and allows up to {other.max_seq:,}. ")
    if chosen.max_seq >= need:
        words += (f"At the planned {need:,} tokens the higher-fidelity {METHOD_LABEL[req.method]} fits with the "
                  f"margin, so it is recommended over {METHOD_LABEL[cheaper]}")
        words += (": no 4-bit quantisation error and faster steps. QLoRA is the usual answer on a card this size; it "
                  "is not needed here" if cheaper == "qlora" else "")
        words += (f". Switch to {METHOD_LABEL[cheaper]} if your documents run past {chosen.max_seq:,} tokens."
                  if other.max_seq > chosen.max_seq else ".")
    return {"rule": RULE, "options": [r.model_dump() for r in rows], "summary": words,
            "provenance": "analytic: qkv.tools.memory.verdict.weigh_methods (peaks and longest sequences); "
                          "step time and quality risk cited (Dettmers et al. 2023; Biderman et al. 2024)"}


def what_would_fit(task, arch, req, est, ladder, calls: Calls, diagnosis: dict[str, Any] | None = None) -> list[str]:
    """When nothing fits, ranked by how little each changes the plan: the diagnosis's chain of techniques, the
    longest sequence at this batch, more GPUs (the ladder's sharding rungs), a bigger GPU, a smaller model."""
    from qkv.tools.memory.verdict import fit_report, smallest_gpu_holding

    out: list[str] = []
    if diagnosis and diagnosis.get("plan_fits") and diagnosis.get("plan"):
        steps = " + ".join(f["fix"] for f in diagnosis["plan"])
        out.append(f"{steps}: {diagnosis['plan'][-1]['total_gib']} GiB per GPU (fits)")
    if not arch.get("config"):
        report = calls("memory.fit_report", fit_report, req)
        if report.max_seq and report.max_seq < req.seq:
            out.append(f"sequences up to {report.max_seq:,} tokens (instead of {req.seq:,}) at micro-batch {req.batch}")
    gpus = task.gpus or 1
    for r in ladder:
        if int(r["changes"].get("gpus", gpus)) > gpus and r["fits"] and not r["tight"]:
            out.append(f"{r['name']} × {task.gpu}: {to_gib(r['total_bytes'])} GiB per GPU (fits)")
            break
    need = est.total_bytes
    g = smallest_gpu_holding(need)
    if g is not None:
        out.append(f"one {g.display_name} ({g.memory_gib:g} GB): {req.method} at {to_gib(need)} GiB fits")
    smaller = _largest_fitting_model(task, arch, req, calls)
    if smaller:
        out.append(smaller)
    if not out:
        out.append("no catalog GPU or GPU count up to the ladder's limit holds this job; reduce the model size or "
                   "the sequence length")
    return out


def _largest_fitting_model(task, arch, req, calls: Calls) -> str | None:
    """The largest smaller catalog model of the same kind that fits this GPU with the cheapest method."""
    from qkv.agent.graph.nodes.efficiency import _resolved
    from qkv.tools.arch import spec_from_config
    from qkv.tools.catalog.gpus import get_gpu
    from qkv.tools.catalog.summary import summarize_models
    from qkv.tools.errors import QkvError
    from qkv.tools.memory.estimate import estimate_resolved
    from qkv.tools.memory.verdict import fit_state
    from qkv.tools.modelref import resolve_model

    kind = spec_from_config(_resolved(arch).config).kind
    usable = get_gpu(task.gpu).usable_bytes
    rows = sorted((r for r in calls("catalog.summarize_models", summarize_models)
                   if r.kind == kind and r.params < arch["params"]), key=lambda r: -r.params)
    cheapest = {"method": "qlora" if kind == "decoder" else "lora", "grad_checkpointing": True, "batch": 1,
                "context_extension": None}
    for r in rows:
        resolved = resolve_model(r.name)
        spec = spec_from_config(resolved.config)
        seq = min(req.seq, spec.max_positions or req.seq)
        try:
            total = estimate_resolved(resolved, spec, req.model_copy(update={**cheapest, "seq": seq,
                                                                              "model": r.name})).total_bytes
        except QkvError:
            continue
        fits, tight = fit_state(total, usable)
        if fits and not tight:  # with the safety margin, as every other plan in the report
            return (f"a smaller model: {r.name} ({r.params / 1e9:.2f}B) with {cheapest['method']} + checkpointing "
                    f"at {seq:,} tokens needs {to_gib(total)} GiB on {task.gpu}")
    return None
