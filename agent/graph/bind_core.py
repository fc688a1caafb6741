"""The binder's core: the number and unit vocabulary, the vocabularies of objectives, domains and languages,
and the `Binder` that consumes spans of the request (rules in bind_hardware, bind_plan, bind_task; the
entry point and the order of the rules in bind.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

NUM = r"(\d+(?:,\d{3})*(?:\.\d+)?)"
NUMBER_TOKEN = re.compile(r"\d+(?:[.,]\d+)*")
WORD_COUNTS = {
    "one": 1, "a single": 1, "single": 1, "a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "twelve": 12, "sixteen": 16, "thirty-two": 32, "sixty-four": 64,
    "dual": 2, "twin": 2, "quad": 4, "a couple of": 2, "a pair of": 2, "pair of": 2, "couple of": 2, "both": 2,
    "zero": 0, "a couple": 2, "a pair": 2,
}
COUNT = r"(\d+(?:,\d{3})*|" + "|".join(sorted((re.escape(w) for w in WORD_COUNTS), key=len, reverse=True)) + r")"
SCALE = {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "b": 1e9, "billion": 1e9, "t": 1e12,
         "trillion": 1e12}
# Devices that are not GPUs in the catalog but that people run models on: (pattern, cpu RAM GiB or None).
CPU_DEVICES = [(r"raspberry\s*pi(?:\s*\d)?", 8.0)]
UNKNOWN_DEVICES = r"\btpu(?:\s*v\d+\w*)?\b|\bjetson(?:\s+[a-z]\w*){0,2}|\bmi\d{3}\w*\b|\bnpu\b|\biphone\b|" \
                  r"\bandroid phone\b|\bintel arc\b|\bradeon(?:\s+\w+)?|\brx\s*\d{4}\b|\bgaudi\s*\d?\b|" \
                  r"\btrainium\b|\binferentia\b"
LANGUAGES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it", "portuguese": "pt",
    "dutch": "nl", "chinese": "zh", "mandarin": "zh", "japanese": "ja", "korean": "ko", "russian": "ru",
    "arabic": "ar", "hindi": "hi", "polish": "pl", "turkish": "tr", "swedish": "sv", "czech": "cs",
    "finnish": "fi", "vietnamese": "vi", "indonesian": "id", "thai": "th", "hebrew": "he", "greek": "el",
    "ukrainian": "uk", "bengali": "bn", "swahili": "sw", "urdu": "ur", "persian": "fa", "tamil": "ta",
}
WEIGHT_FORMATS = {"q4_0": "Q4_0", "q4_k_m": "Q4_K_M", "q5_k_m": "Q5_K_M", "q6_k": "Q6_K", "q8_0": "Q8_0"}
OBJECTIVES: list[tuple[str, str]] = [  # (regex, objective label) — first hit wins
    (r"\btranslat|\bmachine translation", "translation"),
    (r"summari[sz]|\bsummar(?:y|ies)\b|\btl;?dr", "summarisation"),
    (r"question[- ]answer|\bqa\b|\bq\s*&\s*a\b|answer(?:s|ing)?\s+(?:[\w-]+\s+){0,2}questions|\bextractive\b|"
     r"reading comprehension|\bsquad\b", "qa"),
    (r"\bner\b|named[- ]entit|entity (?:recognition|extraction)|token classif", "ner"),
    (r"classif|sentiment|categori[sz]|\bintents?\b|\btopic label|\bspam\b|toxic|hate[- ]speech|\bmoderat|"
     r"\blabel(?:l)?ing\b|\bdetect(?:s|ing|ion)?\s+(?:[\w-]+\s+){0,2}(?:comments?|posts?|messages?|reviews?|"
     r"tweets?|emails?|fraud|abuse|spam)\b|\bflag(?:s|ging)?\s+(?:[\w-]+\s+){0,1}(?:comments?|posts?|messages?)\b",
     "classification"),
    (r"\bembedding model|\bretriev|semantic search|rerank", "retrieval"),
    (r"\bcode (?:generation|completion|assistant|model|llm)|\bcoding assistant|\bcodegen|\bgenerate code", "code"),
    (r"\bchat|assistant|dialog|dialogue|conversation|instruction[- ](?:tun|follow)|\bsupport bot", "chat"),
    (r"language model|pre-?train|from scratch|next[- ]token", "language-modelling"),
    (r"\bgenerat|\bwrit(?:e|ing)\b|story|\bdraft", "generation"),
]
DOMAINS: list[tuple[str, str]] = [
    (r"\blegal|\blaw\b|\bcontracts?\b|\bstatut|\bcourt|\bjudg(?:e|ment)|\bclause", "legal"),
    (r"\bmedical|\bclinical|\bpatient|\bradiolog|\bbiomed|\bhealth", "medical"),
    (r"\bfinanc|\bbank|\btrading|\bearnings", "finance"),
    (r"\bscientific|\bpapers?\b|\barxiv|\bresearch article", "scientific"),
    (r"\bsource code|\bpython\b|\bprogramming|\bcode\b", "code"),
    (r"\bcustomer[- ]support|\bsupport tickets?|\bhelpdesk|\bcustomer service", "customer-support"),
]


@dataclass
class Stated:
    field: str
    value: Any
    text: str


@dataclass
class Binding:
    """What one request states: fields, where each came from, and what was not understood."""

    fields: dict[str, Any] = field(default_factory=dict)
    stated: list[Stated] = field(default_factory=list)
    not_understood: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def to_number(text: str) -> float:
    return float(text.replace(",", ""))


def count_of(word: str) -> int:
    word = word.lower().strip().replace(",", "")
    return int(word) if word.isdigit() else WORD_COUNTS[re.sub(r"\s+", " ", word)]


def k_tokens(n: float, suffix: str | None) -> int:
    """'4k' tokens is 4,096 (a power-of-two length), '10k' is 10,000; '1m' is 1,048,576 only for 1m."""
    if not suffix:
        return int(n)
    s = suffix.lower()
    if s == "k":
        return int(n * 1024) if n.is_integer() and int(n) & (int(n) - 1) == 0 else int(n * 1000)
    return int(n * SCALE[s])


class Binder:
    """Matches rules against one request, binding fields and consuming the words it used."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.out = Binding()
        self.used: list[tuple[int, int]] = []
        self.spans: dict[str, tuple[int, int]] = {}

    # ------------------------------------------------------------------------------------ primitives
    def free(self, start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in self.used)

    def find(self, pattern: str, *, flags: int = re.I) -> list[re.Match]:
        return [m for m in re.finditer(pattern, self.text, flags) if self.free(m.start(), m.end())]

    def bind(self, name: str, value: Any, span: tuple[int, int], *, consume: bool = True) -> bool:
        """Bind `name` to `value` from the words at `span` (first binding of a field wins)."""
        if name in self.out.fields and self.out.fields[name] is not None:
            if consume:
                self.used.append(span)
            first = self.spans.get(name)
            if first and self.out.fields[name] == value and 0 <= span[0] - first[1] <= 30:
                # A second mention of the same thing close by ('4-bit NF4'): the stated words cover both.
                self.spans[name] = (first[0], span[1])
                for st in self.out.stated:
                    if st.field == name and st.text == self.text[first[0]:first[1]].strip():
                        st.text = self.text[first[0]:span[1]].strip()
            return False
        self.out.fields[name] = value
        self.spans[name] = span
        self.out.stated.append(Stated(name, value, self.text[span[0]:span[1]].strip()))
        if consume:
            self.used.append(span)
        return True

    def consume(self, span: tuple[int, int]) -> None:
        self.used.append(span)

    def flag(self, phrase: str, span: tuple[int, int] | None = None) -> None:
        phrase = phrase.strip()
        if phrase and phrase not in self.out.not_understood:
            self.out.not_understood.append(phrase)
        if span:
            self.used.append(span)


# ------------------------------------------------------------------------------------------- the rules
def phrase_pattern(phrase: str) -> str:
    parts = [re.escape(p) for p in re.split(r"[\s\-]+", phrase) if p]
    return r"(?:(?<=\dx)|(?<![\w.]))" + r"[\s\-]*".join(parts) + r"(?:'?s)?(?![\w])"


def word_span(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """`span` widened to whole words ('summaris' → 'summarisation')."""
    start, end = span
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return start, end


