"""Step 4, tokenization: run the tokenizer auditor on the corpus sample when one is given; otherwise
state exactly what to audit (terms of art, fertility, the auditor's decision thresholds)."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.domain_terms import TERMS
from qkv.agent.graph.nodes.common import Calls, task_of, unavailable
from qkv.agent.graph.sections import Tokenization

# Comparison tokenizers qkv ships offline (used when the base model's own tokenizer is not available).
COMPARE = ("gpt2", "qwen2.5-0.5b", "bert-base-uncased")


def tokenization_node(state: dict[str, Any]) -> dict[str, Any]:
    """Audit the corpus sample with the base model's tokenizer and shipped comparisons, or plan the audit."""
    from qkv.tools.tokenizer.load import shipped_names

    task = task_of(state)
    arch = state["architecture"]
    calls = Calls()
    base = arch["base_model"]
    has_base = base in set(shipped_names())
    terms = list(TERMS.get(task.domain or "", ()))
    out = _audited(task, arch, has_base, terms, calls) if task.corpus else _planned(task, state, has_base, terms)
    return {"tokenization": out.model_dump(mode="json"), "unavailable": unavailable(state), "calls": calls.items}


def _audited(task, arch: dict[str, Any], has_base: bool, terms: list[str], calls: Calls) -> Tokenization:
    """The auditor's measurements on the given corpus (the base tokenizer first, then the shipped ones)."""
    import tempfile
    from pathlib import Path

    from qkv.tools.tokenizer.audit import audit as audit_fn
    from qkv.tools.tokenizer.schema import AuditRequest

    base = arch["base_model"]
    toks = ([base] if has_base else []) + [t for t in COMPARE if t != base]
    with tempfile.TemporaryDirectory() as tmp:
        terms_file = None
        if terms:
            terms_file = Path(tmp) / "terms.txt"
            terms_file.write_text("\n".join(terms) + "\n")
        req = AuditRequest(tokenizers=toks, corpus=list(task.corpus), terms=str(terms_file) if terms_file else None,
                           context_window=arch.get("context_window"), extend=False)
        report = calls("tokenizer.audit", audit_fn, req)
    first = report.tokenizers[0]
    plan = [] if has_base else [f"{base}'s own tokenizer is not available offline: audit it with "
                                f"`qkv audit path/to/tokenizer.json --corpus {' '.join(task.corpus)}`"]
    return Tokenization(
        tokenizer=base + ("" if has_base else " (not shipped offline)"), audited=True, corpus=list(task.corpus),
        results={
            "documents": report.corpus.documents, "words": report.corpus.words,
            "ranking": [r.model_dump() for r in report.ranking],
            "fertility": first.fertility, "pcw": first.pcw, "chars_per_token": first.chars_per_token,
            "unk_rate": first.unk_rate, "byte_fallback_rate": first.byte_fallback_rate,
            "terms_pieces_per_term": first.terms.pieces_per_term if first.terms else None,
            "terms_split_3plus": first.terms.share_split_3plus if first.terms else None,
            "fragmented": [f.model_dump() for f in first.fragmented[:10]],
            "docs_over_window": first.context.docs_over,
            "recommendation": report.recommendation.model_dump(),
            "audited_tokenizer": first.name,
        },
        plan=plan, domain_terms=terms,
        recommendation=f"{report.recommendation.action}: {report.recommendation.reason}",
        provenance={"results": "measured: qkv.tools.tokenizer.audit on the given corpus"})


def _planned(task, state: dict[str, Any], has_base: bool, terms: list[str]) -> Tokenization:
    """No corpus: what to audit, the recipe's tokenizer advice and the auditor's decision rule."""
    from qkv.tools.knowledge.recipes import vocabulary_rule
    from qkv.tools.tokenizer.schema import AuditRequest

    arch = state["architecture"]
    base = arch["base_model"]
    fields = AuditRequest.model_fields
    thresholds = {k: fields[k].default for k in ("adapter_fertility", "extend_min_saving", "min_count")}
    provenance: dict[str, str] = {}
    audit_ref = "path/to/your/tokenizer.json" if task.mode == "pre-train" else base
    plan = [
        ("Train the tokenizer first (below), then sample" if task.mode == "pre-train" else "Sample")
        + f" 1-10 MB of in-domain text and run `qkv audit {audit_ref} --corpus SAMPLE"
        + (" --terms TERMS.txt`" if terms else "`"),
        "Measure fertility (tokens per word) and the proportion of continued words (Rust et al. 2021), "
        "chars/token, unknown and byte-fallback rates, and document lengths against the "
        f"{arch.get('context_window') or 'model'}-token window.",
    ]
    if terms:
        plan.append(f"Score the {task.domain} terms of art on their own ({len(terms)} listed below): the share "
                    "split into 3+ pieces shows whether the vocabulary knows the domain.")
    rule = vocabulary_rule((state.get("efficiency") or {}).get("method"), task.mode,
                           thresholds.get("extend_min_saving"))
    recipe_tok = ((state.get("objective") or {}).get("recipe") or {}).get("tokenizer")
    if recipe_tok:
        langs = f" for each of {', '.join(task.languages)}" if len(task.languages) >= 2 else ""
        plan.append(recipe_tok[0].upper() + recipe_tok[1:] + (f"; measure it{langs} on a sample of each" if langs
                                                              else "") + ".")
        provenance["recipe"] = "cited: qkv.tools.knowledge.recipes (Rust et al. 2021; Petrov et al. 2023)"
    plan.append(f"Decision rule: {rule}; recommend a domain adapter when fertility stays "
                f"≥ {thresholds['adapter_fertility']:g} (the auditor's defaults)." if rule else
                f"Decision rule (the auditor's defaults): extend the vocabulary when that shortens the corpus "
                f"by ≥ {thresholds['extend_min_saving']:.0%}; recommend a domain adapter when fertility stays "
                f"≥ {thresholds['adapter_fertility']:g}.")
    provenance["thresholds"] = "rule: qkv.tools.tokenizer.schema.AuditRequest defaults"
    if rule:
        provenance["vocabulary_rule"] = "rule: qkv.tools.knowledge.recipes.vocabulary_rule (method-dependent)"
    return Tokenization(
        tokenizer=base + ("" if has_base else " (not shipped offline)"), audited=False, corpus=list(task.corpus),
        results={"thresholds": thresholds}, plan=plan, domain_terms=terms,
        recommendation=(f"no corpus sample given: {rule}" if rule and task.mode == "pre-train" else
                        "no corpus sample given: audit before training (plan below); keep the base tokenizer "
                        "unless the audit's rule says otherwise"),
        provenance=provenance)
