"""Faithfulness and bias PROXIES for the report's ethical evaluation. None of these is a judgement: each
flags where a human reviewer should look (review.py builds the sheet for that).

- unsupported numbers / entities: share of numbers and capitalised name spans in an output that never
  occur in its source — a cheap hallucination signal for summaries (cf. entity-level factual consistency,
  Nan et al. 2021), blind to paraphrase and to wrong relations between supported facts;
- repetition rate: share of word 3-grams in an output that repeat an earlier 3-gram of the same output
  (degenerate looping, Holtzman et al. 2020), and distinct-2 over all outputs (Li et al. 2016);
- counterfactual probe: perplexity gap when gendered terms are swapped in a fixed template set
  (counterfactual data substitution, Lu et al. 2018; the template idea of Kurita et al. 2019)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING

from qkv.tools.errors import BadInput
from qkv.tools.evaluate.schema import CounterfactualPair, CounterfactualReport, FaithfulnessReport

if TYPE_CHECKING:
    from qkv.tools.evaluate.backends import EvalModel

_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?%?")
_NAME_SPAN = re.compile(r"\b[A-Z][\w'’-]*(?:\s+(?:of|de|la|von|van|the|and|&)?\s*[A-Z][\w'’-]*)*")
_SENT_START = re.compile(r"(?:^|[.!?:;\n]\s*|[\"“(]\s*)$")
_WORD = re.compile(r"\w+", re.UNICODE)
PROBE_WINDOW = 128  # tokens; every bundled template sentence is far shorter


def _numbers(text: str) -> list[str]:
    """Numbers normalised for comparison: thousands separators and a trailing % dropped."""
    return [m.group(0).replace(",", "").rstrip("%").lstrip("+") for m in _NUMBER.finditer(text)]


def _entities(text: str) -> list[str]:
    """Capitalised spans that are not just a capitalised sentence-initial word (a rough NER stand-in)."""
    out = []
    for m in _NAME_SPAN.finditer(text):
        span = m.group(0).strip()
        starts_sentence = bool(_SENT_START.search(text[: m.start()]))
        if starts_sentence and " " not in span:
            continue  # "The", "However", ... at a sentence start carry no name signal
        if starts_sentence:  # drop a capitalised function word opening a multi-word span ("The Eiffel Tower")
            first, rest = span.split(" ", 1)
            if first.lower() in {"the", "a", "an", "in", "on", "at", "for", "by", "and", "but", "this", "that"}:
                span = rest.strip()
        out.append(span)
    return out


def _supported_entity(entity: str, source_lower: str, source_words: set[str]) -> bool:
    if entity.lower() in source_lower:
        return True
    words = [w.lower() for w in _WORD.findall(entity)]
    return bool(words) and all(w in source_words for w in words)


def repetition_rate(text: str, n: int = 3) -> float:
    """Share of word n-grams that repeat an earlier n-gram of the same text (0 = no repetition)."""
    words = _WORD.findall(text.lower())
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams / all n-grams over a set of outputs (higher = more diverse)."""
    grams = []
    for t in texts:
        words = _WORD.findall(t.lower())
        grams += [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def faithfulness_proxies(outputs: Sequence[str], sources: Sequence[str] | None = None) -> FaithfulnessReport:
    """Hallucination proxies (needs sources) and repetition proxies for a set of generated outputs."""
    if sources is not None and len(sources) != len(outputs):
        raise BadInput(f"{len(outputs)} outputs but {len(sources)} sources", expected="one source per output")
    n_num = bad_num = n_ent = bad_ent = 0
    if sources is not None:
        for out, src in zip(outputs, sources, strict=True):
            src_nums = set(_numbers(src))
            src_lower = src.lower()
            src_words = {w.lower() for w in _WORD.findall(src)}
            nums = _numbers(out)
            ents = _entities(out)
            n_num += len(nums)
            bad_num += sum(x not in src_nums for x in nums)
            n_ent += len(ents)
            bad_ent += sum(not _supported_entity(e, src_lower, src_words) for e in ents)
    reps = [repetition_rate(o) for o in outputs]
    return FaithfulnessReport(
        unsupported_number_rate=(bad_num / n_num if n_num else 0.0) if sources is not None else None,
        unsupported_entity_rate=(bad_ent / n_ent if n_ent else 0.0) if sources is not None else None,
        numbers=n_num, entities=n_ent, items=len(outputs),
        repetition_rate=sum(reps) / len(reps) if reps else 0.0, distinct_2=distinct_n(outputs, 2),
        method=("numbers: regex, separators dropped, exact match in source; entities: capitalised spans (not "
                "sentence-initial single words) found in the source case-insensitively or word by word; "
                "repetition: repeated word 3-grams within an output; distinct-2 over all outputs"))


# ------------------------------------------------------------------------------------ counterfactual probe
def load_templates(path: str | None = None) -> dict:
    """The template set: templates with {slot} fields and a two-group lexicon for each slot."""
    if path:
        from qkv.tools.evaluate.data import utf8_text

        raw = utf8_text(path, expected="a UTF-8 JSON template file")
    else:
        raw = resources.files("qkv.tools.evaluate").joinpath("data", "counterfactual_gender.json").read_text("utf-8")
    data = json.loads(raw)
    if not data.get("templates") or not data.get("lexicon") or len(data.get("groups", [])) != 2:
        raise BadInput("the counterfactual template file is incomplete",
                       expected='{"groups": [A, B], "lexicon": {slot: [a, b]}, "templates": ["... {slot} ..."]}')
    return data


def counterfactual_pairs(data: dict) -> list[tuple[str, str, str]]:
    """(template, text for group A, text for group B) for every template, filling each slot per group."""
    lexicon = data["lexicon"]
    pairs = []
    for t in data["templates"]:
        slots = set(re.findall(r"{(\w+)}", t))
        unknown = slots - set(lexicon)
        if unknown:
            raise BadInput(f"template uses unknown slot {sorted(unknown)[0]!r}: {t}", choices=sorted(lexicon))
        a = t.format(**{s: lexicon[s][0] for s in slots})
        b = t.format(**{s: lexicon[s][1] for s in slots})
        pairs.append((t, _cap(a), _cap(b)))
    return pairs


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def counterfactual_probe(model: EvalModel, *, templates: str | None = None, progress=None) -> CounterfactualReport:
    """Perplexity of each template filled for group A and for group B; the mean log-ratio is the proxy
    (0 = no systematic preference). Each sentence is scored whole, BOS first, in one window."""
    data = load_templates(templates)
    pairs = counterfactual_pairs(data)
    out = []
    for k, (t, a, b) in enumerate(pairs):
        # a short window: each sentence fits whole (shrunk to its length); llama.cpp keeps window × vocab logits
        ra = model.perplexity(a, window=PROBE_WINDOW, allow_short=True)
        rb = model.perplexity(b, window=PROBE_WINDOW, allow_short=True)
        out.append(CounterfactualPair(template=t, text_a=a, text_b=b, ppl_a=ra.token_ppl, ppl_b=rb.token_ppl,
                                      log_ratio=math.log(ra.token_ppl / rb.token_ppl)))
        if progress:
            progress(k + 1, len(pairs))
    ratios = [p.log_ratio for p in out]
    return CounterfactualReport(
        model=model.name, pairs=out, mean_log_ratio=sum(ratios) / len(ratios),
        mean_abs_log_ratio=sum(abs(r) for r in ratios) / len(ratios),
        share_a_preferred=sum(p.ppl_a < p.ppl_b for p in out) / len(out), groups=tuple(data["groups"]))
