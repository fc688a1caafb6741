"""Narrative sections: templates filled with computed facts (`--llm none`, deterministic), or the same
facts worded by a language model (`--llm local` with a named model, or a URL). Numbers and decisions never
change: the model only writes prose around the facts it is given (prompts/*.md, named slots), and its prose
stands only when every sentence passes the gate (`vet`); otherwise the template stands.

Which model words what (docs/model-wording.md has the evidence): the bundled SmolLM2-135M-Instruct, the
default of `--llm local`, words no report section — across the worked example and ten scenarios the gate
accepted none of its sections, and the sentences it wrote that read well were copies of the template or
were false. It stays the chat model. A model the user names (`--llm-model`, a .gguf path or the bundled
alias `gemma3-270m`) or an OpenAI-compatible URL rewords whole sections under the same gate."""

from __future__ import annotations

import os
from typing import Any

from qkv.agent.graph.schemas import DesignReport
from qkv.agent.graph.wording_gate import vet

SECTIONS = ("objective", "architecture", "efficiency", "tokenization", "inference")


def with_article(word: str) -> str:
    """The word with its indefinite article ('an encoder-only', 'a decoder-only')."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def facts(report: DesignReport) -> dict[str, dict[str, Any]]:
    """The named slots each section's prompt/template is filled with (phrases, so templates need no logic)."""
    o, a, e, t, i = report.objective, report.architecture, report.efficiency, report.tokenization, report.inference
    task_line = f"The task is {o.task}" + ("" if o.task == o.kind else f", {with_article(o.kind)} problem")
    decode_line = ("An encoder-only model answers in one forward pass; there is no decode loop to bound."
                   if o.architecture == "encoder-only" else
                   f"Decode speed is bounded above by {i.decode_tok_s_upper} tokens/s (memory-bandwidth roofline)."
                   if i.decode_tok_s_upper is not None else
                   "No decode-speed bound is given: the device's memory bandwidth is not known.")
    rec = t.recommendation[:1].upper() + t.recommendation[1:]
    return {
        "objective": {"task": o.task, "kind": o.kind, "family": o.architecture, "metrics": ", ".join(o.metrics),
                      "loss": o.loss, "why": o.rationale, "task_line": task_line,
                      "a_family": with_article(o.architecture)},
        "architecture": {"model": a.base_model, "params_b": f"{a.params / 1e9:.2f}", "window": a.context_window,
                         "need": a.required_tokens, "action": a.context_action, "detail": a.context_detail,
                         "why": a.rationale},
        "efficiency": {"method": e.method, "strategy": e.strategy, "peak": e.peak_vram_gib, "gpu": e.gpu,
                       "gpus": e.gpus, "usable": e.usable_gib, "fits": "fits" if e.fits else "does not fit",
                       "tried": len(e.alternatives),
                       "would": "; ".join(e.what_would_fit) or "n/a"},
        "tokenization": {"tokenizer": t.tokenizer, "audited": "audited" if t.audited else "not audited yet",
                         "recommendation": rec.rstrip(".")},
        "inference": {"quant": i.quantization, "weights": i.weights_gib, "kv": i.kv_cache_gib,
                      "peak": i.peak_vram_gib, "kernel": i.attention_kernel, "sampling": i.sampling_policy,
                      "decode": i.decode_tok_s_upper, "decode_line": decode_line},
    }


def load_prompt(name: str) -> str:
    """A prompt template from the `prompts/` package (text with {named} slots, no logic)."""
    from qkv.prompts import load

    return load(name)


def templates(report: DesignReport) -> dict[str, str]:
    """Deterministic prose: each section's template filled with its facts."""
    f = facts(report)
    out = {}
    for section in SECTIONS:
        # Inference-only designs train nothing: their efficiency section has its own template (no peak).
        inference_only = section == "efficiency" and report.efficiency.method == "none"
        name = "efficiency_inference_only" if inference_only else section
        out[section] = load_prompt(f"template_{name}.md").strip().format(**f[section])
    return out


# ---------------------------------------------------------------------------------------------------------

MAX_NEW_TOKENS = 192   # a whole section restated: the longest template of the 11 scenarios is 120 tokens
BUNDLED_SOURCE = "template (the bundled 135M model words the chat only: docs/model-wording.md)"


def wording_model(llm: str, llm_model: str | None) -> str | None:
    """The model that words the report's sections, or None when the templates stand: `--llm none`, and the
    bundled default SmolLM2-135M-Instruct (none of its sections passed the gate, docs/model-wording.md; it
    stays the chat model). Any URL words (its model id, or the endpoint's default: ""); so does any local model
    the user names, by `--llm-model` or QKV_LLM_MODEL, the bundled SmolLM2 included when named."""
    if llm == "none":
        return None
    named = (llm_model or os.environ.get("QKV_LLM_MODEL") or "").strip()
    if llm != "local":
        return named
    return named if named and named.lower() != "default" else None


def narrate(report: DesignReport, llm: str = "none",
            llm_model: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """(prose per section, who worded it). Templates for 'none' and for the bundled default model; a named
    local model (`llm_model`: a .gguf path or bundled alias) or a URL (`llm_model`: the endpoint's model id)
    rewords each section, which stands only when `vet` accepts it."""
    base = templates(report)
    if llm == "none":
        return base, {k: "template" for k in base}
    model = wording_model(llm, llm_model)
    if model is None:
        return base, {k: BUNDLED_SOURCE for k in base}
    from qkv.tools.llm.setting import open_setting
    from qkv.tools.sampling import SamplingPolicy

    backend = open_setting(llm, model=model or None)
    who = f"llm:{llm}" + (f" ({_label(llm, model)})" if model else "")
    persona = load_prompt("persona.md")
    step = load_prompt("narrate_section.md")
    # Greedy, with room for the whole section (every number of the template must be stated again), a
    # repetition penalty (small models loop without one) and one paragraph: a blank line ends the answer.
    policy = SamplingPolicy.greedy(max_new_tokens=MAX_NEW_TOKENS, repetition_penalty=1.3, stop=["\n\n"])
    out: dict[str, str] = {}
    source: dict[str, str] = {}
    try:
        for section, slots in facts(report).items():
            fact_lines = "\n".join(f"- {k}: {v}" for k, v in slots.items())
            prompt = step.format(section=section, facts=fact_lines, template=base[section])
            msgs = [{"role": "system", "content": persona}, {"role": "user", "content": prompt}]
            gen = backend.chat(msgs, policy)
            text = (gen.text or "").strip()
            why = vet(text, fact_lines + "\n" + base[section], keep=base[section]) or (
                f"cut off at {gen.completion_tokens} tokens" if gen.finish_reason == "length" else None)
            out[section] = base[section] if why else text
            source[section] = (f"template (model output rejected: {why})" if why
                               else "template (the model returned it unchanged)" if _same(text, base[section])
                               else who)
    finally:
        backend.close()
    return out, source


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _label(llm: str, llm_model: str) -> str:
    """How the report names the wording model: a GGUF by its file name (no host paths in reports)."""
    from pathlib import Path

    return Path(llm_model).name if llm == "local" else llm_model
