"""Binding rules for the task and its serving: serving load and targets, sampling, languages, corpus
files, context extension, and the objective and domain."""

from __future__ import annotations

import re
from typing import Any

from qkv.agent.graph.bind_core import (
    DOMAINS,
    LANGUAGES,
    NUM,
    OBJECTIVES,
    Binder,
    Stated,
    to_number,
    word_span,
)
from qkv.tools.errors import BadInput


def _serving(b: Binder) -> None:
    for m in b.find(r"(?:time to first token|ttft)\s*(?:of\s+|under\s+|below\s+|<\s*|≤\s*)?" + NUM + r"\s*ms\b|"
                    + NUM + r"\s*ms\s+(?:time to first token|ttft)"):
        b.bind("ttft_ms", to_number(m.group(1) or m.group(2)), m.span())
    for m in b.find(r"(?:\bp(?:50|90|95|99)\s*(?:latency\s*)?(?:under|below|of|<|≤|at most)?\s*)?" + NUM
                    + r"\s*(?:ms|milliseconds?)\b(?:\s*(?:per|/|a)\s*(?:output\s+|generated\s+)?token)?"):
        b.bind("latency_ms", to_number(m.group(1)), m.span())
    for m in b.find(NUM + r"\s*(?:tokens?|tok)\s*/\s*s(?:ec(?:ond)?)?\b|" + NUM + r"\s*tokens?\s+(?:per|a)\s+second"):
        b.bind("throughput_tok_s", to_number(m.group(1) or m.group(2)), m.span())
    for m in b.find(NUM + r"\s*(k)?\s*(?:concurrent|simultaneous|parallel)\s*(?:users|requests|sequences|streams|"
                    r"sessions|conversations|chats)?|(?:concurrency|batch of users)\s*(?:of|=|:)?\s*" + NUM
                    + r"|\bfor\s+" + NUM + r"\s+(?:concurrent\s+)?users\b|" + NUM + r"\s+users\s+at\s+once"):
        raw = next(g for g in (m.group(1), m.group(3), m.group(4), m.group(5)) if g)
        n = int(to_number(raw) * (1000 if m.group(2) else 1))
        if n <= 0:
            raise BadInput(f"{m.group(0).strip()!r}", expected="at least one concurrent user or sequence")
        b.bind("concurrency", n, m.span())


def _sampling(b: Binder) -> None:
    out: dict[str, Any] = {}
    spans: list[tuple[int, int]] = []

    def take(key: str, value: Any, m: re.Match) -> None:
        if key not in out:
            out[key] = value
            spans.append(m.span())

    for m in b.find(r"\b(?:decode\s+)?greedy(?:\s+decoding|\s+search)?\b|\b(?:decode\s+)?greedily\b|"
                    r"\bdeterministic decoding\b|\bno sampling\b"):
        take("temperature", 0.0, m)
        out.setdefault("top_p", 1.0)
        out.setdefault("top_k", 0)
    for m in b.find(r"temperature\s*(?:=|of|:|at)?\s*(\d+(?:\.\d+)?)|\btemp\s*(?:=|:)?\s*(\d+(?:\.\d+)?)"):
        take("temperature", float(m.group(1) or m.group(2)), m)
    for m in b.find(r"(?:top[-_ ]?p|nucleus(?:\s+sampling)?(?:\s+(?:with\s+)?p)?)\s*(?:=|of|:|at)?\s*(\d+(?:\.\d+)?)"):
        take("top_p", float(m.group(1)), m)
    for m in b.find(r"top[-_ ]?k\s*(?:=|of|:|at)?\s*(\d+)"):
        take("top_k", int(m.group(1)), m)
    for m in b.find(r"(?:beam search\s+(?:with\s+)?(?:a\s+)?(?:beam(?:\s+(?:width|size))?\s*(?:of|=)?\s*)?|"
                    r"num_beams\s*=?\s*)(\d+)(?:\s+beams)?|(\d+)[\s-]beams?(?:\s+search)?|beam\s+(?:width|size)\s*"
                    r"(?:of|=)?\s*(\d+)"):
        take("num_beams", int(m.group(1) or m.group(2) or m.group(3)), m)
    for m in b.find(r"(?:max(?:imum)?[\s_-]*new[\s_-]*tokens|max_tokens|max(?:imum)?[\s_-]*output[\s_-]*"
                    r"(?:tokens|length))\s*(?:=|:|of|is)?\s*(\d+)\b"):
        take("max_new_tokens", int(m.group(1)), m)
    for m in b.find(r"(?:max(?:imum)?[\s_-]*new[\s_-]*tokens|max[\s_-]*tokens|max(?:imum)?\s+output(?:\s+length)?|"
                    r"outputs?\s+of\s+(?:up\s+to\s+|at\s+most\s+)?|generat\w*\s+(?:up\s+to\s+|at\s+most\s+)?|"
                    r"(?:up\s+to|at\s+most|max(?:imum)?(?:\s+of)?)\s+)\s*(?:=|:)?\s*(\d+)\s*(?:new\s+|output\s+|"
                    r"generated\s+)?tokens?(?!\s*(?:context|window|long|documents?|inputs?|prompts?|of context))"):
        before = b.text[max(0, m.start() - 25):m.end()]
        if re.search(r"new|output|generat|respon|answer|repl|summar", before, re.I):
            take("max_new_tokens", int(m.group(1)), m)
    for m in b.find(r"(\d+)\s*(?:new|output|generated)\s+tokens\b"):
        take("max_new_tokens", int(m.group(1)), m)
    if out:  # '300 tokens max' beside other decoding settings is the output cap, not a document length
        for m in b.find(r"(\d+)\s*tokens?\s+max\b"):
            take("max_new_tokens", int(m.group(1)), m)
    for m in b.find(r"repetition[\s_]penalty\s*(?:=|of|:)?\s*(\d+(?:\.\d+)?)"):
        take("repetition_penalty", float(m.group(1)), m)
    for m in b.find(r"(?:no|without)\s+(?:any\s+)?(?:top[-_ ]?p|nucleus|truncation|sampling (?:bounds|limits))"
                    r"(?:\s*(?:or|and|/)\s*top[-_ ]?k)?"):
        out.setdefault("top_p", 1.0)
        out.setdefault("top_k", 0)
        spans.append(m.span())
    for m in b.find(r"(?:no|without)\s+(?:a\s+)?top[-_ ]?k"):
        out.setdefault("top_k", 0)
        out.setdefault("top_p", 1.0)
        spans.append(m.span())
    for m in b.find(r"no (?:max(?:imum)?\s+)?(?:length\s+)?(?:limit|cap|bound)|unlimited (?:length|tokens)|unbounded"):
        out["max_new_tokens"] = None
        spans.append(m.span())
    if out:
        # The stated words are the stretch of the request from the first decoding setting to the last.
        start, end = min(s for s, _ in spans), max(e for _, e in spans)
        b.out.fields["sampling"] = out
        b.out.stated.append(Stated("sampling", out, b.text[start:end].strip()))
        b.used.extend(spans)


def _languages(b: Binder) -> None:
    names = "|".join(LANGUAGES)
    m = re.search(rf"\b({names})\s*(?:to|into|->|→|-to-)\s*({names})\b", b.text, re.I)
    if m:
        src, tgt = LANGUAGES[m.group(1).lower()], LANGUAGES[m.group(2).lower()]
        b.bind("source_lang", src, m.span(1), consume=False)
        b.bind("target_lang", tgt, m.span(2), consume=False)
    hits = list(re.finditer(rf"\b({names})\b", b.text, re.I))
    if hits:
        found = sorted({LANGUAGES[h.group(1).lower()] for h in hits})
        b.out.fields["languages"] = found
        b.out.stated.append(Stated("languages", found, b.text[hits[0].start():hits[-1].end()]))


def _corpus(b: Binder) -> None:
    """Paths written in the request: '/data/contracts.txt', './docs/handbook.md', 'C:\\data\\x.csv'."""
    rules = (r"(?<![\w/])((?:~|\.{1,2})?/[\w.\-~/]+\w)", r"(?<![\w\\])([A-Za-z]:\\[^\s'\";,]+)",
             r"(?<![\w/.\\])([\w\-]+(?:/[\w.\-]+)*\.(?:txt|jsonl|json|md|csv|tsv|parquet))\b")
    spans = []
    for rule in rules:
        for m in b.find(rule):
            spans.append(m.span(1))
            b.consume(m.span(1))  # a later rule never re-reads part of a path ('2023.txt')
    if spans:
        spans.sort()
        values = [b.text[s:e] for s, e in spans]
        b.out.fields["corpus"] = values
        b.out.stated.append(Stated("corpus", values, b.text[spans[0][0]:spans[-1][1]]))


def _context_extension(b: Binder) -> None:
    rules = [(r"\byarn\b", "yarn"), (r"\blongrope\b", "longrope"), (r"\bllama[\s-]?3\s+rope\s+scaling\b", "llama3"),
             (r"\blinear\s+(?:rope\s+)?scaling\b|\bposition(?:al)?\s+interpolation\b", "linear"),
             (r"\bdynamic\s+(?:ntk\s+)?(?:rope\s+)?scaling\b|\bntk[\s-]aware\b", "dynamic"),
             (r"\bsliding[\s-]window(?:\s+attention)?\b", "sliding"), (r"\balibi\b", "alibi")]
    for pattern, name in rules:
        for m in b.find(pattern):
            b.bind("context_extension", name, m.span())
            return


def _objective(b: Binder) -> None:
    low = b.text.lower()
    for pattern, label in OBJECTIVES:
        m = re.search(pattern, low)
        if m:
            b.bind("objective", label, word_span(b.text, m.span()), consume=False)
            break
    for pattern, label in DOMAINS:
        m = re.search(pattern, low)
        if m:
            b.bind("domain", label, word_span(b.text, m.span()), consume=False)
            break
    pre = re.search(r"pre-?train|from scratch|train (?:a|an) (?:new )?(?:[\w.]+ )?(?:model|llm|transformer) from", low)
    serve = re.search(r"\bserv(?:e|ed|ing)\b|\bdeploy|\binference\b|\bhost(?:ed|ing)?\b|\brun (?:it |this |the model )?"
                      r"locally|\bfor \w* ?users\b|\bproduction\b|\bendpoint\b", low)
    tune = re.search(r"fine[\s-]?tun\w*|\bfinetun\w*|\b(?:q-?)?lora\b|\badapt\w*|\btrain(?:ing)?\b", low)
    if pre:
        b.bind("mode", "pre-train", pre.span(), consume=False)
    elif tune:
        b.bind("mode", "fine-tune", word_span(b.text, tune.span()), consume=False)
    elif serve and not re.search(r"fine-?tun|\btrain|\badapt|\blora\b|\bqlora\b", low):
        b.bind("mode", "inference", serve.span(), consume=False)
    dm = re.search(r"\bdeploy\w*|\bserv(?:e|ed|ing)\b|\bproduction\b|\bendpoint\b|\busers\b|\bhost(?:ed|ing)?\b", low)
    if dm:
        b.bind("deploy", True, dm.span(), consume=False)


# ---------------------------------------------------------------------------------------- entry point
