"""The design report as Markdown: every section, every number with its provenance."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.schemas import DesignReport
from qkv.tools.knowledge.scaling import DEFAULT_MFU

STATUS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "n/a": "N/A"}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e5 else f"{v:.3g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    return "—" if v is None else str(v)


def _said(r: DesignReport, section: str) -> str:
    """A section's prose, with who worded it when a model did or was refused; a note shared by every section
    (the bundled model words no report) is printed once, under the task, not five times."""
    text = r.narrative.get(section, "")
    source = r.narrative_source.get(section, "template")
    shared = len(set(r.narrative_source.values())) == 1
    return text + (f"\n\n<sub>worded by {source}</sub>" if source != "template" and not shared else "")


def _wording_note(r: DesignReport) -> list[str]:
    sources = set(r.narrative_source.values())
    if len(sources) == 1 and (only := sources.pop()) != "template":
        return ["", f"<sub>Prose of every section: {only}</sub>"]
    return []


def _prov(lines: list[str], provenance: dict[str, str]) -> None:
    if provenance:
        lines.append("")
        lines.append("<sub>Provenance: " + "; ".join(f"`{k}` — {v}" for k, v in sorted(provenance.items()))
                     + "</sub>")


def _serving_lines(sv: dict[str, Any] | None) -> list[str]:
    """The inference section's serving plan (qkv.tools.serve): layout, one GPU's memory, bounds, targets."""
    if not sv:
        return []
    par = f"TP {sv['tensor_parallel']}" + (f" × PP {sv['pipeline_parallel']}" if sv["pipeline_parallel"] > 1 else "")
    out = [f"- serving plan ({sv['engine']} profile): {par}, {sv['replicas']} replica(s) on {sv['gpus_used']} GPU(s); "
           f"{sv['weights']} weights, "
           + ("no KV cache" if sv["kv_dtype"] == "none" else f"{sv['kv_dtype']} KV")
           + f"; ≤ {_fmt(sv['prefill_tokens_per_step'])} prefill tokens "
           "per step — " + ("fits" if sv["fits"] else "**does not fit**"),
           "  - per GPU: " + " · ".join(f"{m['name']} {_fmt(m['gib'])} GiB ({m['provenance']})"
                                        for m in sv["per_gpu"])]
    kv = sv.get("kv")
    if kv:
        pool = (f"{_fmt(kv['blocks'])} blocks × {kv['block_size']} = " if kv["blocks"] else "") + _fmt(kv["tokens"])
        out.append(f"  - KV pool: {pool} tokens ({_fmt(kv['bytes_per_token'])} B/token/GPU); the load holds "
                   f"{_fmt(kv['tokens_needed'])}; largest concurrency at this context {_fmt(kv['max_concurrency'])}, "
                   f"longest context at this concurrency {_fmt(kv['max_context'])}")
    lat = sv.get("latency")
    if lat:
        out.append(f"  - bounds (roofline): time per output token ≥ {_fmt(lat['tpot_ms'])} ms, TTFT ≥ "
                   f"{_fmt(lat['ttft_ms'])} ms (attention {lat['attention_flop_share']:.0%} of prefill FLOPs), "
                   f"≤ {_fmt(lat['tokens_per_s'])} tokens/s")
    for t in sv.get("targets") or []:
        out.append(f"  - target {t['name']} {_fmt(t['target'])}: bound {_fmt(t['bound'])} — "
                   + ("met" if t["met"] else "**missed**; levers: " + "; ".join(t["levers"])))
    rows = sv.get("throughput") or []
    if rows:
        out.append("  - throughput vs concurrency: " + ", ".join(
            f"{r['concurrency']} → {_fmt(r['tpot_ms'])} ms/token, {_fmt(r['tokens_per_s'])} tok/s"
            + ("" if r["fits"] else " (does not fit)") for r in rows))
    out.append(f"  - decoding: {sv['decoding']}")
    out += [f"  - {n}" for n in sv.get("notes") or []]
    return out


def _summary(r: DesignReport) -> list[str]:
    t, o, a, e, i = r.task, r.objective, r.architecture, r.efficiency, r.inference
    L: list[str] = [f"# Design report: {t.text}", "", "## Summary", ""]
    method = e.method + (f" ({e.quantization}{' + double quantisation' if e.double_quant else ''})"
                         if e.quantization else "")
    L += [f"- **{o.architecture}** for {o.task} ({o.kind}); base model **{a.base_model}**, "
          f"{a.params / 1e9:.2f}B parameters; context: {a.context_action}",
          f"- training: **{method}**, {e.strategy}; peak **{_fmt(e.peak_vram_gib)} GiB**/GPU on {e.gpus} × {e.gpu} "
          f"— {'fits' if e.fits else 'does not fit'}" if e.method != "none" else "- training: none (inference only)",
          f"- serving: {i.quantization} weights, KV cache {_fmt(i.kv_cache_gib)} GiB, peak {_fmt(i.peak_vram_gib)} GiB "
          f"— {'fits' if i.fits else 'does not fit'}; {i.attention_kernel}; {i.sampling_policy}",
          "- checks: " + ", ".join(f"{c.rule} {STATUS[c.status]}" for c in r.checks), ""]
    return L


def _task(r: DesignReport) -> list[str]:
    t = r.task
    L: list[str] = []
    L += ["## Task and assumptions", "",
          f"- objective: **{t.objective}**" + (f", domain **{t.domain}**" if t.domain else "") + f", mode {t.mode}",
          f"- hardware: {t.gpus} × {t.gpu}",
          f"- document length: {_fmt(t.max_doc_tokens)} tokens (max)"]
    L += ["", "**Stated** (what the request says, bound to the field the tools evaluate):", ""]
    L += [f"- `{s.field}` = {_fmt(s.value)} ← “{s.text}”" for s in t.stated] or ["- nothing bound"]
    L += ["", "**Assumed** (where the request was silent):", ""]
    L += [f"- `{s.field}` = {_fmt(s.value)} — {s.reason}" for s in r.assumptions] or ["- nothing assumed"]
    L += ["", "**Not understood** (looked like a constraint; not bound — restate it if it matters):", ""]
    L += [f"- “{n}”" for n in t.not_understood] or ["- nothing"]
    for c in t.constraints:
        L.append(f"- note: {c}")
    L += _wording_note(r)
    return L


def _checks(r: DesignReport) -> list[str]:
    L: list[str] = []
    L += ["", "## Checks (the three hard rules, and the stated constraints)", "", "| rule | status | detail |",
          "|---|---|---|"]
    for c in r.checks:
        L.append(f"| {c.rule} | **{STATUS[c.status]}** | {c.detail} |")
    return L


def _objective(r: DesignReport) -> list[str]:
    o = r.objective
    L: list[str] = []
    L += ["", "## 1. Objective", "", _said(r, "objective"), "",
          f"- kind: **{o.kind}** → **{o.architecture}**", f"- loss: {o.loss}",
          f"- metrics: {', '.join(o.metrics)}"]
    for m in o.metrics_plan:
        L.append(f"  - {m.get('name')}: {m.get('why', '')} ({m.get('library', '')}; {m.get('source', '')})")
    _prov(L, o.provenance)
    return L


def _architecture(r: DesignReport) -> list[str]:
    a = r.architecture
    L: list[str] = []
    L += ["", "## 2. Architecture", "", _said(r, "architecture"), "",
          f"- base model: **{a.base_model}** ({a.model_source})",
          f"- parameters: {_fmt(a.params)} (active per token {_fmt(a.active_params)})",
          f"- context window: {_fmt(a.context_window)} tokens; required: {_fmt(a.required_tokens)}; "
          f"training/serving length: {_fmt(a.train_seq)}",
          f"- context action: **{a.context_action}** — {a.context_detail}"]
    if a.rope_scaling:
        L.append(f"- rope_scaling: `{a.rope_scaling}`")
    L += [f"- context caveat: {c}" for c in a.context_caveats]
    if a.capabilities:
        cap = a.capabilities
        L.append(f"- capabilities: languages {', '.join(cap.languages)} ({cap.languages_source}); "
                 f"{cap.variant} model; licence {cap.licence}; effective context "
                 f"{_fmt(cap.effective_context)} ({cap.effective_context_source or 'none published'})")
    L += [f"- note: {n}" for n in a.choice_notes]
    if a.candidates:
        L += ["", "| candidate | params | window (effective) | languages | variant | verdict |",
              "|---|---|---|---|---|---|"]
        for c in a.candidates:
            verdict = "**chosen**" if c.get("verdict") == "chosen" else (c.get("lost_because") or "lost")
            L.append(f"| {c['model']} | {c['params'] / 1e9:.2f}B | {_fmt(c['context_window'])} "
                     f"({_fmt(c.get('effective_context'))}) | {', '.join(c.get('languages') or []) or '—'} | "
                     f"{c.get('variant', '—')} | {verdict} |")
    _prov(L, a.provenance)
    lp = r.layer_profile
    L += ["", "### Layer profile", "",
          f"- {lp.layers} layers, hidden {lp.hidden}, {lp.heads} heads / {lp.kv_heads} KV heads "
          f"({lp.attention_type}, ×{lp.query_heads_per_kv_head} query heads per KV head), head dim {lp.head_dim}",
          f"- MLP {lp.mlp} ({lp.intermediate}), norm {lp.norm}, positions {lp.position}, vocab {_fmt(lp.vocab)}",
          f"- sparsity: {lp.sparsity}"]
    if lp.pattern:
        L.append(f"- pattern: {lp.pattern}")
    if lp.attention_share_of_flops is not None:
        L.append(f"- attention score FLOPs at {_fmt(lp.at_seq)} tokens: {lp.attention_share_of_flops:.1%} of layer "
                 f"FLOPs; parameter shares: attention {_fmt(lp.share_attention)}, MLP {_fmt(lp.share_mlp)}, "
                 f"embeddings {_fmt(lp.share_embeddings)}")
    extra = "; " + lp.profile_provenance if lp.profile_provenance else ""
    L.append(f"<sub>{lp.provenance}{extra}</sub>")
    return L


def _efficiency(r: DesignReport) -> list[str]:
    o, e = r.objective, r.efficiency
    L: list[str] = []
    L += ["", "## 3. Efficiency", "", _said(r, "efficiency"), "",
          f"- method: **{e.method}**" + (f" (weights {e.quantization}, double quantisation "
                                         f"{'yes' if e.double_quant else 'no'})" if e.quantization else ""),
          f"- strategy: {e.strategy}; sharding {e.sharding}; gradient checkpointing {e.grad_checkpointing}; "
          f"micro-batch {e.micro_batch} × accumulation {e.grad_accum}",
          f"- peak training VRAM: **{_fmt(e.peak_vram_gib)} GiB** per GPU of {_fmt(e.usable_gib)} GiB usable — "
          + ("fits" if e.fits else "**does not fit**")]
    if e.breakdown:
        L += ["", "| component | GiB | formula |", "|---|---:|---|"]
        for b in e.breakdown:
            L.append(f"| {b.name} | {b.gib:.3f} | {b.formula} |")
    if e.alternatives:
        L += ["", "Alternatives considered (in cost order):", "", "| strategy | GiB/GPU | fits |",
              "|---|---:|---|"]
        for alt in e.alternatives:
            verdict = "tight" if alt.tight else ("yes" if alt.fits else "no")
            L.append(f"| {alt.name} | {alt.total_gib:.3f} | {verdict} |")
    for w in e.what_would_fit:
        L.append(f"- what would fit: {w}")
    if e.diagnosis:
        d = e.diagnosis
        top = ", ".join(f"{t.name} {t.share:.0%}" for t in d.ranked[:3])
        L += ["", f"Where the memory goes: {top}."]
        for f in d.fixes[:4]:
            L.append(f"- targeted fix for {f.term}: {f.fix} saves {f.saving_gib:g} GiB "
                     f"(→ {f.total_gib:g} GiB; cost: {f.cost})")
    if e.tradeoffs:
        L += ["", "Method weighed against the next cheaper one:", "",
              "| option | GiB/GPU | longest sequence | step time | quality risk |", "|---|---:|---:|---|---|"]
        for o in e.tradeoffs["options"]:
            L.append(f"| {o['name']} | {o['total_gib']:.3f} | {o['max_seq']:,} | {o['step_time']} | "
                     f"{o['quality_risk']} |")
        L += ["", e.tradeoffs["summary"], f"<sub>rule: {e.tradeoffs['rule']}</sub>"]
    if e.hyperparameters:
        skip = ("provenance", "notes", "peft_defaults", "units")
        units = e.hyperparameters.get("units", {})
        hp = {k2: v for k2, v in e.hyperparameters.items() if k2 not in skip}
        L += ["", "Hyperparameters (scaled to this model and method):", ""]
        L += [f"- {k2}: {_fmt(v)}" + (f" {units[k2]}" if k2 in units else "") for k2, v in hp.items()]
    if e.pretraining:
        p = e.pretraining
        label = "planned at the fixed size" if p.get("used_share") is not None else "compute-optimal"
        L += ["", "Pre-training budget:", "",
              f"- {label}: {p['params']:.3g} params × {p['tokens']:.3g} tokens = {p['flops']:.3g} FLOPs "
              f"({p['tokens_per_param']:.1f} tokens/param); predicted loss {p['loss']:.3f} (MassiveText fit)"]
        if p.get("used_share") is not None:
            L.append(f"- stated budget {p['budget_flops']:.3g} FLOPs ({p['budget_provenance']['flops']}); "
                     "the plan uses "
                     f"{p['used_share']:.0%}: {p['budget_reason']}")
            L += [f"- {n}" for n in p.get("notes", [])[1:]]
        if p.get("steps"):
            L.append(f"- {p['steps']:,} optimizer steps ({p['steps_formula']}), warm-up {p['warmup_steps']:,} steps")
        if p.get("training_days"):
            L.append(f"- {p['training_days']:.1f} days ({p['gpu_hours']:,.0f} GPU-hours) at MFU {p['mfu']:.0%}")
    for w in e.warnings:
        L.append(f"- warning: {w}")
    _prov(L, e.provenance)
    return L


def _tokenization(r: DesignReport) -> list[str]:
    k = r.tokenization
    L: list[str] = []
    L += ["", "## 4. Tokenization", "", _said(r, "tokenization"), "", f"- tokenizer: {k.tokenizer}"]
    if k.audited:
        res = k.results
        L += [f"- audited ({res.get('audited_tokenizer')}): fertility {_fmt(res.get('fertility'))}, PCW "
              f"{_fmt(res.get('pcw'))}, chars/token {_fmt(res.get('chars_per_token'))}",
              f"- terms of art: {_fmt(res.get('terms_pieces_per_term'))} pieces/term, "
              f"{_fmt(res.get('terms_split_3plus'))} split into 3+"]
    L += [f"- {p}" for p in k.plan]
    if k.domain_terms:
        L.append(f"- terms to score: {', '.join(k.domain_terms)}")
    L.append(f"- recommendation: {k.recommendation}")
    _prov(L, k.provenance)
    return L


def _inference(r: DesignReport) -> list[str]:
    i = r.inference
    L: list[str] = []
    L += ["", "## 5. Inference", "", _said(r, "inference"), "",
          f"- weights: **{i.quantization}** ({_fmt(i.weights_gib)} GiB) on {i.gpus} GPU(s); KV cache "
          f"**{_fmt(i.kv_cache_gib)} GiB** ({i.kv_dtype}, {_fmt(i.context_tokens)} tokens × {i.concurrency} "
          f"sequences); peak **{_fmt(i.peak_vram_gib)} GiB** — " + ("fits" if i.fits else "**does not fit**"),
          f"- attention kernel: {i.attention_kernel}",
          f"- sampling: {i.sampling_policy}",
          f"- decode ≤ {_fmt(i.decode_tok_s_upper)} tokens/s (roofline); prefill ≥ {_fmt(i.prefill_s_lower)} s"]
    for alt in i.alternatives:
        L.append(f"  - tried {alt.name}: {alt.total_gib:.3f} GiB, "
                 f"{'tight' if alt.tight else ('fits' if alt.fits else 'does not fit')}")
    L += [f"- what would fit: {w}" for w in i.what_would_fit]
    L += _serving_lines(i.serving)
    L += [f"- {x}" for x in i.notes]
    for s in i.sampling_issues:
        L.append(f"- sampling issue ({s['level']}): {s['message']}")
    _prov(L, i.provenance)
    return L


def _ethics(r: DesignReport) -> list[str]:
    L: list[str] = []
    eth = r.ethics
    L += ["", "## Ethical evaluation", ""]
    L += [f"- hallucination: {h}" for h in eth.hallucination]
    L += [f"  - proxy `{p['name']}`: {p['measures']}" for p in eth.proxies]
    L += [f"- biased token distributions: {b}" for b in eth.biased_token_distributions]
    L += [f"- mitigation: {m}" for m in eth.mitigations]
    L += [f"- data: {d}" for d in eth.data]
    L += [f"- baseline: {b}" for b in eth.baselines]
    rec = r.objective.recipe
    if rec:
        L += ["", f"Task recipe (**{rec['family']}**): {rec['objective']}; loss: {rec['loss']} "
              f"({', '.join(rec['loss_sources'])})", ""]
        L += [f"- metric: {m['name']} — {m['why']} ({', '.join(m['sources'])})" for m in rec.get("metrics", [])]
        L += [f"- decoding: {d}" for d in rec.get("decoding_notes", [])]
    return L


def _budget(r: DesignReport) -> list[str]:
    L: list[str] = []
    rb = r.resource_budget
    L += ["", "## Resource budget", "",
          f"- parameters: {_fmt(rb.params)}",
          f"- training peak: {_fmt(rb.train_peak_vram_gib)} GiB/GPU; inference peak: "
          f"{_fmt(rb.inference_peak_vram_gib)} GiB"]
    pr = rb.precision
    if pr:
        L.append(f"- training precision: **{pr.dtype}** ({pr.mode}) — {pr.reason} ({', '.join(pr.sources)})")
    db = rb.data_budget
    if db:
        L += [f"- data: {db.examples:,} examples × {db.tokens_per_example:,} tokens ({db.length_basis}) = "
              f"{db.tokens_per_epoch:,.0f} tokens/epoch",
              f"- batch: {db.global_batch} sequences = micro {db.micro_batch} × accumulation {db.grad_accum} "
              f"× {db.dp_gpus} GPU(s) (recipe {db.recipe_batch})",
              f"- {db.epochs} epochs ({db.epochs_source}"
              f"{': ' + db.epochs_note if db.epochs_note else ''}) → {db.steps_per_epoch:,} steps/epoch, "
              f"**{db.steps:,} steps**, warm-up {db.warmup_steps:,} steps",
              f"- compute: {db.train_flops:.3g} FLOPs"
              + (f"; ≥ {db.hours:.2f} h on the stated GPUs (roofline bound at {DEFAULT_MFU:.0%} MFU)"
                 if db.hours else ""),
              f"- fit: {db.fit_note}"]
        L += [f"- note: {n}" for n in db.notes]
    return L


def _config(r: DesignReport) -> list[str]:
    L: list[str] = []
    tc = r.training_config
    L += ["", "## Training config", ""]
    if tc.available:
        L += ["```yaml", (tc.yaml or "").rstrip(), "```"]
        L += [f"- {k2}: {v}" for k2, v in (tc.derived or {}).items()]
    else:
        L.append(f"_{tc.reason or 'not available'}_")
        if tc.hf_trainer_arguments:
            L += ["", "transformers `TrainingArguments` for the task head (the report's batch, steps and precision):",
                  ""] + [f"- `{k2}`: {_fmt(v)}" for k2, v in tc.hf_trainer_arguments.items()]
    if r.unavailable:
        L += ["", "## Tools not available in this run", ""] + [f"- {u}" for u in r.unavailable]
    return L


SECTIONS_MD = (_summary, _task, _checks, _objective, _architecture, _efficiency, _tokenization, _inference,
               _ethics, _budget, _config)  # the report's order


def render_markdown(r: DesignReport) -> str:
    """The report as Markdown: one function per section, in the report's order."""
    L: list[str] = []
    for section in SECTIONS_MD:
        L += section(r)
    return "\n".join(L).rstrip() + "\n"
