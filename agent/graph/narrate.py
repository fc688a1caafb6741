"""Narrative sections: templates filled with computed facts (`--llm none`, deterministic), or the same
facts worded by a language model (`--llm local` or a URL). Numbers and decisions never change: the
model only writes prose around the facts it is given (prompts/*.md, named slots)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from qkv.agent.graph.schemas import DesignReport

SECTIONS = ("objective", "architecture", "efficiency", "tokenization", "inference")


def facts(report: DesignReport) -> dict[str, dict[str, Any]]:
    """The named slots each section's prompt/template is filled with."""
    o, a, e, t, i = report.objective, report.architecture, report.efficiency, report.tokenization, report.inference
    return {
        "objective": {"task": o.task, "kind": o.kind, "family": o.architecture, "metrics": ", ".join(o.metrics),
                      "loss": o.loss, "why": o.rationale},
        "architecture": {"model": a.base_model, "params_b": f"{a.params / 1e9:.2f}", "window": a.context_window,
                         "need": a.required_tokens, "action": a.context_action, "detail": a.context_detail,
                         "why": a.rationale},
        "efficiency": {"method": e.method, "strategy": e.strategy, "peak": e.peak_vram_gib, "gpu": e.gpu,
                       "gpus": e.gpus, "usable": e.usable_gib, "fits": "fits" if e.fits else "does not fit",
                       "tried": len(e.alternatives),
                       "would": "; ".join(e.what_would_fit) or "n/a"},
        "tokenization": {"tokenizer": t.tokenizer, "audited": "audited" if t.audited else "not audited yet",
                         "recommendation": t.recommendation},
        "inference": {"quant": i.quantization, "weights": i.weights_gib, "kv": i.kv_cache_gib,
                      "peak": i.peak_vram_gib, "kernel": i.attention_kernel, "sampling": i.sampling_policy,
                      "decode": i.decode_tok_s_upper},
    }


def load_prompt(name: str) -> str:
    """A prompt template from the `prompts/` package (text with {named} slots, no logic)."""
    from importlib.resources import files

    return files("qkv.prompts").joinpath(name).read_text(encoding="utf-8")


def templates(report: DesignReport) -> dict[str, str]:
    """Deterministic prose: each section's template filled with its facts."""
    f = facts(report)
    out = {}
    for section in SECTIONS:
        out[section] = load_prompt(f"template_{section}.md").strip().format(**f[section])
    return out


NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "").rstrip(".") for n in NUMBER.findall(text)}


def vet(text: str, allowed_text: str) -> str | None:
    """Why a model-worded section is rejected (None: accepted). Numbers are the tools' alone: a number
    the facts do not contain is an invention; loops and echoed instructions are not prose."""
    text = text.strip()
    if not text:
        return "empty output"
    invented = sorted(_numbers(text) - _numbers(allowed_text))
    if invented:
        return "number not in the facts: " + ", ".join(invented[:3])
    words = text.lower().split()
    grams = Counter(zip(words, words[1:], words[2:], strict=False))
    if grams and max(grams.values()) >= 3:
        return "repetitive output"
    if re.search(r"rewrite|facts computed|section of the design report|\bdraft\b|every number|plain technical",
                 text, re.I):
        return "echoed the instructions"
    if "?" in text:
        return "asked a question instead of stating the plan"
    return None


def narrate(report: DesignReport, llm: str = "none",
            llm_model: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """(prose per section, who worded it). Templates for 'none'; a local or remote model otherwise (`llm_model`:
    a .gguf path or bundled alias for 'local', the endpoint's model id for a URL), each section vetted (no new
    numbers, no loops) and replaced by its template when it fails."""
    base = templates(report)
    if llm == "none":
        return base, {k: "template" for k in base}
    from qkv.tools.llm.base import open_backend
    from qkv.tools.sampling import SamplingPolicy

    kind, url = ("local", None) if llm == "local" else ("openai", llm)
    backend = open_backend(kind, model=llm_model, url=url)
    who = f"llm:{llm}" + (f" ({_label(llm, llm_model)})" if llm_model else "")
    persona = load_prompt("persona.md")
    step = load_prompt("narrate_section.md")
    # Greedy and short (a paragraph), with a repetition penalty: small models loop without one.
    policy = SamplingPolicy.greedy(max_new_tokens=64, repetition_penalty=1.3)
    out: dict[str, str] = {}
    source: dict[str, str] = {}
    try:
        for section, slots in facts(report).items():
            fact_lines = "\n".join(f"- {k}: {v}" for k, v in slots.items())
            prompt = step.format(section=section, facts=fact_lines, template=base[section])
            msgs = [{"role": "system", "content": persona}, {"role": "user", "content": prompt}]
            text = (backend.chat(msgs, policy).text or "").strip()
            why = vet(text, fact_lines + "\n" + base[section])
            out[section] = base[section] if why else text
            source[section] = f"template (model output rejected: {why})" if why else who
    finally:
        backend.close()
    return out, source


def _label(llm: str, llm_model: str) -> str:
    """How the report names the wording model: a GGUF by its file name (no host paths in reports)."""
    from pathlib import Path

    return Path(llm_model).name if llm == "local" else llm_model
