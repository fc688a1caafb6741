"""Binding: a free-text request → the constraints it states, each with the words it came from.

Every rule matches on the request itself (case-insensitive, offsets into the user's text), binds one
field and consumes its span. Afterwards, whatever still looks like a constraint — a number, a device
the catalog does not know — and lies outside every consumed span is listed as not understood: nothing
the user wrote disappears silently. First binding of a field wins (the earliest, most specific rule).

The grammar is documented in docs/agent.md ("What qkv understands")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from qkv.tools.errors import BadInput

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
def _catalog_gpus() -> list[tuple[str, str]]:
    from qkv.tools.catalog.gpus import list_gpus

    pairs: dict[str, str] = {}
    for g in list_gpus():
        for key in [g.name, g.display_name, *g.aliases]:
            pairs[key.lower()] = g.name
    # Family names without a memory size: the common variant (stated as an assumption when used).
    pairs.update({"a100": "a100-80gb-sxm", "a6000": "rtx-a6000", "v100": "v100-32gb", "a10g": "a10g",
                  "h100s": "h100-sxm"})
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def phrase_pattern(phrase: str) -> str:
    parts = [re.escape(p) for p in re.split(r"[\s\-]+", phrase) if p]
    return r"(?:(?<=\dx)|(?<![\w.]))" + r"[\s\-]*".join(parts) + r"(?:'?s)?(?![\w])"


def _gpus(b: Binder) -> None:
    """A catalog GPU with its count: '2x A100 80GB', 'two RTX 4090s', 'H100 x8', 'a couple of 4090s'."""
    for phrase, name in _catalog_gpus():
        for m in b.find(phrase_pattern(phrase)):
            start, end = m.start(), m.end()
            before = b.text[:start]
            cm = re.search(COUNT + r"\s*(?:x|×|\*)?\s*(?:nvidia\s+|amd\s+|geforce\s+)*$", before, re.I)
            count = None
            if cm and not re.match(r"-", before[cm.start() - 1:cm.start()] if cm.start() else ""):
                count = count_of(cm.group(1))
                start = cm.start()
            elif re.search(r"-\s*\d+\s*(?:x|×)?\s*$", before):
                raise BadInput(f"a negative GPU count in {b.text[max(0, start - 8):end]!r}",
                               expected="a positive number of GPUs, e.g. '2x A100'")
            am = re.match(r"\s*(?:gpus?\s*)?\(?(?:x|×|\*)\s*(\d+)\b\)?", b.text[end:], re.I)
            if am:
                count = int(am.group(1))
                end += am.end()
            if count == 0:
                raise BadInput(f"zero GPUs in {b.text[start:end]!r}", expected="a positive number of GPUs")
            if b.bind("gpu", name, (start, end)) and count is not None:
                b.out.stated.append(Stated("gpus", count, b.text[start:end].strip()))
                b.out.fields.setdefault("gpus", count)
            return


def _gpu_count(b: Binder) -> None:
    """'8 GPUs', 'two 48GB cards', 'a single 80 GB GPU', '16 GPUs of 40GB'. The words between the count and
    the noun may already be bound (a memory size); the count itself must not be."""
    pattern = (r"(?<![\w.])(-?)" + COUNT + r"\s*(?:x|×)?\s+(?:(?!per\b|of\b|with\b|for\b|on\b)[\w.-]+\s+){0,3}?"
               r"(?:gpus|cards|graphics cards|accelerators|gpu|card)\b")
    for m in re.finditer(pattern, b.text, re.I):
        if not b.free(m.start(2), m.end(2)):
            continue
        word = m.group(2)
        if m.group(1):
            raise BadInput(f"a negative GPU count: {m.group(0)!r}", expected="a positive number of GPUs")
        n = count_of(word)
        if n == 0:
            raise BadInput(f"zero GPUs: {m.group(0)!r}", expected="a positive number of GPUs")
        if word.lower() in ("a", "an") and re.search(r"gpus|cards", m.group(0), re.I):
            continue  # 'a few GPUs' is no count
        b.bind("gpus", n, m.span(), consume=False)  # the words say it; only the count is consumed
        b.consume(m.span(2))
        return


def _memory(b: Binder) -> None:
    """'8GB', '24 gigs of VRAM', '16GiB card', '32GB RAM' (host), '36GB unified memory'."""
    unit = r"\s*(?:gb|gib|gigs?|gigabytes?|g)\b"
    for m in b.find(r"(-?)" + NUM + unit + r"(?:\s*(?:of\s+)?(?:system\s+|host\s+|cpu\s+)?(ram|vram|gpu memory|"
                    r"memory|unified memory|video memory|hbm))?(\s*each)?"):
        if m.group(1):
            raise BadInput(f"a negative memory size: {m.group(0).strip()!r}",
                           expected="a positive size such as '8GB' or '24 GiB'")
        value = to_number(m.group(2))
        if value <= 0:
            raise BadInput(f"a zero memory size: {m.group(0).strip()!r}", expected="a positive size such as '8GB'")
        kind = (m.group(3) or "").lower()
        after = b.text[m.end():m.end() + 30].lower()
        before = b.text[max(0, m.start() - 25):m.start()].lower()
        if kind == "ram" or re.match(r"\s*(?:of\s+)?(?:system\s+)?ram\b", after) or re.search(r"\bram\b|laptop with",
                                                                                              before):
            b.bind("ram_gib", value, m.span())
        else:
            b.bind("vram_gib", value, m.span())


def _cpu(b: Binder) -> None:
    for pattern, ram in CPU_DEVICES:
        for m in b.find(pattern):
            b.bind("cpu_only", True, m.span())
            b.out.notes.append(f"'{m.group(0)}' is planned as a CPU-only device with {ram:g} GiB of RAM")
            if not re.search(r"\d\s*(?:gb|gib|gigs?)\s*(?:of\s+)?(?:system\s+)?ram\b", b.text, re.I):
                b.bind("ram_gib", ram, m.span())
            return
    for m in b.find(r"\bcpu[- ]only\b|\bno gpus?\b|\bwithout (?:a |any )?gpus?\b|"
                    r"\bon (?:my |a |the )?(?:laptop(?:'s)? )?cpus?\b|\b(?:just|only) (?:a |the |my )?cpus?\b|"
                    r"\bcpu inference\b|\bno cuda\b|\bcpu servers?\b"):
        b.bind("cpu_only", True, m.span())
        return
    # 'On my laptop (CPU, 16GB RAM)': a CPU named with no GPU anywhere in the request.
    m = re.search(r"\bcpus?\b(?!\s*(?:offload|ram|memory|cores?\s+for\s+data))", b.text, re.I)
    if m and not re.search(r"\bgpus?\b|\bvram\b|\bcuda\b", b.text, re.I) and b.free(*m.span()):
        b.bind("cpu_only", True, m.span())


def _unknown_devices(b: Binder) -> None:
    for m in b.find(UNKNOWN_DEVICES):
        b.flag(f"{m.group(0)} (not a GPU in the catalog; `qkv gpus` lists them)", m.span())


def _gpu_time(b: Binder) -> None:
    """'for 10 days', 'for two weeks', '1,000 GPU-hours': a time budget on the stated GPUs."""
    hours_per = {"hour": 1, "hr": 1, "h": 1, "day": 24, "week": 168, "month": 730}
    for m in b.find(NUM + r"\s*(?:gpu|accelerator)[- ]?(hours?|hrs?|days?)\b"):
        value = to_number(m.group(1)) * hours_per[re.sub(r"s$", "", m.group(2).lower())]
        b.bind("gpu_hours", value, m.span())
        return
    words = r"(?:a|one|two|three|four|six|ten|" + NUM + r")"
    for m in b.find(r"\bfor\s+(" + words + r")\s*(hours?|hrs?|days?|weeks?|months?)\b|"
                    r"(?<![\w.])(" + words + r")\s*(hours?|hrs?|days?|weeks?|months?)\s+(?=on\b|of\b|with\b|using\b)"):
        if m.group(1) is None:  # the second form: '3 days on 8x L40S'
            n_text, unit = m.group(4), m.group(6)
        else:
            n_text, unit = m.group(1), m.group(3)
        n = to_number(n_text) if n_text[0].isdigit() else float(count_of(n_text))
        hours = n * hours_per[re.sub(r"s$", "", unit.lower())]
        b.bind("wall_hours", hours, m.span())
        return


def _models(b: Binder) -> None:
    from qkv.tools.catalog.models import list_models

    pairs: dict[str, str] = {}
    for mdl in list_models():
        for key in [mdl.name, *mdl.aliases, *([mdl.hub_id] if mdl.hub_id else [])]:
            if len(key) >= 4:
                pairs[key.lower()] = mdl.name
    for phrase, name in sorted(pairs.items(), key=lambda kv: -len(kv[0])):
        for m in b.find(phrase_pattern(phrase)):
            b.bind("base_model", name, m.span())
            return
    # A family named without the catalog's spelling: 'Mistral', 'Qwen 2.5 7B' (the follow-up rule, shared).
    from qkv.agent.graph.revise import family_span, model_mention
    from qkv.tools.errors import UnknownName

    span = family_span(b.text)
    if span is None or not b.free(*span):
        return
    if re.search(r"pre-?train|from scratch", b.text, re.I) and not re.search(r"\d", b.text[span[0]:span[1]]):
        return  # 'pre-train a small GPT from scratch': a kind of model, not a checkpoint to start from
    try:
        name = model_mention(b.text, None)
    except UnknownName as exc:
        b.flag(f"{b.text[span[0]:span[1]]} ({exc})", span)
        return
    if name:
        b.bind("base_model", name, span)


def _sizes(b: Binder) -> None:
    """Parameter budgets ('7B', '1.1 billion parameters', '300M'), data ('300B tokens', '200k dialogues')."""
    scale = r"\s*(k|m|b|t|thousand|million|billion|trillion)\b"
    data_nouns = (r"(?:labell?ed\s+|training\s+|annotated\s+|customer\s+|support\s+|legal\s+|medical\s+|"
                  r"example\s+|english\s+|parallel\s+|in-domain\s+){0,2}(?:examples|samples|dialogues|dialogs|"
                  r"conversations|chats|documents|docs|pairs|rows|sentences|sentence pairs|comments|tickets|reviews|"
                  r"articles|records|questions|contracts|emails|transcripts|instructions|prompts|summaries|papers|"
                  r"files|texts|items|utterances)\b")
    for m in b.find(NUM + r"(?:" + scale + r")?\s+(?:[\w&'-]+\s+)?" + data_nouns):
        value = to_number(m.group(1)) * (SCALE[m.group(2).lower()] if m.group(2) else 1)
        b.bind("data_examples", int(value), m.span())
        break
    for m in b.find(r"(?<![\w.])(-?)" + NUM + r"\s*(m|b|t|million|billion|trillion)\b(?:[\s-]*(?:param(?:eter)?s?|"
                    r"parameters?))?(?:[\s-]*(?:model|llm|transformer|decoder|encoder))?"):
        if m.group(1):
            raise BadInput(f"a negative model size: {m.group(0)!r}", expected="a positive size such as '7B'")
        value = to_number(m.group(2)) * SCALE[m.group(3).lower()]
        b.bind("param_budget", value, m.span())
        break


def _data_tokens(b: Binder) -> None:
    """'300B tokens', '500M tokens of medical text', '40,000,000,000 tokens': data, not a length (a million
    tokens or more, not said to be a context or window)."""
    not_length = r"(?![\s-]*(?:of\s+)?(?:context|window|long|sequences?|per|inputs?|prompts?|documents?|docs|each))"
    for m in b.find(r"(-?)" + NUM + r"(?:\s*(k|m|b|t|thousand|million|billion|trillion)\b)?[\s-]*(?:training\s+)?"
                    r"tokens?\b" + not_length):
        value = to_number(m.group(2)) * (SCALE[m.group(3).lower()] if m.group(3) else 1)
        if value < 1e6:
            continue
        if m.group(1):
            raise BadInput(f"a negative token count: {m.group(0)!r}", expected="a positive number of tokens")
        b.bind("data_tokens", value, m.span())
        return


def _compute(b: Binder) -> None:
    for m in b.find(r"(?:(\d+(?:\.\d+)?)\s*(?:x|×|\*)?\s*(?:10\s*\^\s*|e\+?)|\b10\s*\^\s*)(\d+)\s*"
                    r"(?:training\s+)?flops?\b(?:\s+(?:of\s+compute|budget))?"):
        b.bind("compute_flops", float(m.group(1) or 1) * 10 ** int(m.group(2)), m.span())
        return


def _method(b: Binder) -> None:
    rules = [
        (r"\bq-?lora\b|\b4[- ]?bit\s+lora\b|\blora\s+(?:on|over)\s+(?:a\s+)?4[- ]?bit", "qlora"),
        (r"\blora(?:\b|(?=_))|\bpeft\b|\badapters?\b", "lora"),
        (r"\bfull(?:y)?[\s-]+(?:parameter\s+)?fine[\s-]?tun\w*|\bfull[\s-]+(?:parameter\s+)?(?:ft|training|"
         r"finetun\w*)|\bfull-parameter\b|\bfine[\s-]?tune all (?:the )?(?:parameters|weights)|\bfull ft\b", "full"),
        (r"\ball (?:the )?(?:model(?:'s)? )?(?:parameters|weights)\b", "full"),
    ]
    for pattern, method in rules:
        for m in re.finditer(pattern, b.text, re.I):
            if re.search(r"\b(?:no|not|without|instead of|rather than)\s+(?:a\s+|any\s+)?$", b.text[:m.start()], re.I):
                b.consume(m.span())  # 'no LoRA please': understood, and not the method
                continue
            b.bind("method", method, m.span(), consume=b.free(*m.span()))
            return


def _sharding(b: Binder) -> None:
    rules = [
        (r"\b(?:no|without)\s+sharding\b|\bunsharded\b", "none"),
        (r"\b(?:deepspeed\s+)?zero[\s-]*(?:stage[\s-]*)?([123])\b|\bzero[\s-]*stage[\s-]*([123])", None),
        (r"\bfsdp2?\b|\bfully[\s-]sharded(?:\s+data[\s-]parallel)?", "fsdp"),
        (r"\bddp\b|\bdistributed data[\s-]parallel\b|\bdata[\s-]parallel(?:ism)?\b", "ddp"),
    ]
    for pattern, name in rules:
        for m in b.find(pattern):
            stage = next((g for g in m.groups() if g), None) if name is None else None
            b.bind("sharding", name or f"zero{stage}", m.span())
            return


def _precision(b: Binder, inference: bool) -> None:
    """Training precision ('in bf16', 'fp16 mixed precision') or, when serving, the weight format."""
    for m in b.find(r"\b(q[4-8]_(?:k_m|k|0))\b|\b(q[4-8])[\s-]?(k[\s-]?m|0)\b"):
        key = (m.group(1) or f"{m.group(2)}_{m.group(3)}").lower().replace("-", "_").replace(" ", "_")
        key = key.replace("km", "k_m").replace("k_m_", "k_m")
        fmt = WEIGHT_FORMATS.get(key)
        if fmt:
            b.bind("weights", fmt, m.span())
    for m in b.find(r"\bnf4\b|\b(?:int|8[\s-]?bit)8?\s+(?:weights|quantization|quantisation)\b|\bint8\b|"
                    r"\bint4\b|\b4[\s-]?bit\b|\b8[\s-]?bit\b"):
        word = m.group(0).lower()
        if "nf4" in word:
            fmt = "nf4"
        elif "8" in word:
            fmt = "int8"
        else:
            fmt = "nf4"
        if inference or re.search(r"weights|serv|deploy|quantiz|quantis", b.text[max(0, m.start() - 30):m.end() + 30],
                                  re.I):
            if "8" in word and re.search(r"optim|adam", b.text[m.end():m.end() + 20], re.I):
                continue
            b.bind("weights", fmt, m.span())
    names = {"bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16", "half precision": "fp16",
             "fp32": "fp32", "float32": "fp32", "full precision": "fp32", "single precision": "fp32"}
    for m in b.find(r"\b(bf16|bfloat16|fp16|float16|half precision|fp32|float32|full precision|single precision)"
                    r"(?:\s+mixed(?:\s+precision)?)?\b"):
        value = names[m.group(1).lower()]
        serving = inference or re.search(r"\bserv|\bdeploy|\binference\b|\bweights\b",
                                         b.text[max(0, m.start() - 40):m.end() + 15], re.I)
        b.bind("weights" if serving else "precision", value, m.span())
    for m in b.find(r"\bfp8\b(?:\s+(?:weights|kv(?:\s+cache)?))?"):
        b.flag(f"{m.group(0)} (FP8 formats are not modelled yet: planned in bf16/int8/4-bit)", m.span())


def _batch(b: Binder) -> None:
    for m in b.find(r"(?:micro[\s-]?batch(?:[\s-]?size)?|per[\s-](?:device|gpu)(?:\s+train(?:ing)?)?\s+batch"
                    r"(?:\s+size)?|batch[\s-]?size|batch\s+of|mbs|bs)\s*(?:of|=|:|is)?\s*(-?\d+)\b"):
        n = int(m.group(1))
        if n <= 0:
            raise BadInput(f"micro-batch {n}: {m.group(0)!r}", expected="a positive number of sequences")
        b.bind("micro_batch", n, m.span())
        break
    for m in b.find(r"(?:gradient|grad)[\s_-]?accum(?:ulation)?(?:[\s_-]?steps?)?\s*(?:of|=|:)?\s*(\d+)\b|"
                    r"(\d+)\s*(?:gradient\s+|grad\s+)?accumulation\s+steps|"
                    r"accumulat\w*\s+(?:the\s+)?(?:gradients?\s+)?(?:over|across|for)\s+(\d+)\s+(?:steps|micro-?batches)"):
        n = int(m.group(1) or m.group(2) or m.group(3))
        if n <= 0:
            raise BadInput(f"gradient accumulation {n}", expected="a positive number of steps")
        b.bind("grad_accum", n, m.span())
        break
    for m in b.find(r"(\d+)\s*epochs?\b|\bepochs?\s*(?:=|:|of)?\s*(\d+)\b"):
        if int(m.group(1) or m.group(2)) <= 0:
            raise BadInput(f"{m.group(0)!r}", expected="a positive number of epochs")
        b.bind("epochs", int(m.group(1) or m.group(2)), m.span())
        break


def _sequence(b: Binder) -> None:
    """Sequence lengths: 'seq len 4096', '4k context', '16,000-token documents', 'up to 12k tokens'."""
    k = r"\s*(k|m)?\b"
    typical = r"(?:average|averaging|typical(?:ly)?|mean|median|around|about|roughly|~)\s*(?:of\s+)?$"
    key = r"(?:seq(?:uence)?[\s_-]*len(?:gth)?|max(?:imum)?[\s_-]*(?:input[\s_-]*|seq(?:uence)?[\s_-]*)?length|" \
          r"context(?:\s+(?:length|window|size|of))?|ctx|window(?:\s+of)?|max_seq_length|max_length)"
    for m in b.find(key + r"\s*(?:of|=|:|is|up to)?\s*(-?)" + NUM + k + r"(?:[\s-]*tokens?)?"):
        n = k_tokens(to_number(m.group(2)), m.group(3))
        if m.group(1) or n <= 0:
            raise BadInput(f"a length of {'-' if m.group(1) else ''}{n} tokens: {m.group(0)!r}",
                           expected="a positive number of tokens")
        b.bind("max_doc_tokens", n, m.span())
    for m in b.find(NUM + k + r"[\s-]*(?:tokens?|tok)\b(?:[\s-]*(?:of\s+)?(?:context(?:\s+(?:length|window))?|window|"
                    r"long|each|per\s+\w+|sequences?|inputs?|prompts?|documents?|docs|conversations?|contracts?|"
                    r"transcripts?|texts?|records?|examples?))?"):
        n = k_tokens(to_number(m.group(1)), m.group(2))
        if n <= 0:
            raise BadInput(f"a length of {n} tokens", expected="a positive number of tokens")
        before = b.text[max(0, m.start() - 30):m.start()]
        if re.search(r"(?:new|output|generat\w*)\s*$", before, re.I):
            continue
        if re.search(typical, before, re.I):
            b.bind("doc_tokens", n, m.span())
        elif b.bind("max_doc_tokens", n, m.span()) and not re.search(r"up to|max|at most|longest|context|window",
                                                                      b.text[max(0, m.start() - 25):m.end() + 12],
                                                                      re.I):
            b.out.fields.setdefault("doc_tokens", n)  # a plain length is also the typical one
    for m in b.find(NUM + r"(k)\s+(?:context|window|sequences?|inputs?|prompts?)\b"):
        b.bind("max_doc_tokens", k_tokens(to_number(m.group(1)), m.group(2)), m.span())
    # 'the longest is 9,000' (after a typical length in tokens): the maximum in the same unit.
    if "doc_tokens" in b.out.fields:
        for m in b.find(r"\b(?:the\s+)?(?:longest|maximum|max)(?:\s+(?:one|document|doc|input))?\s+(?:is|at|of)\s+"
                        + NUM + k + r"(?:\s*tokens?)?"):
            b.bind("max_doc_tokens", k_tokens(to_number(m.group(1)), m.group(2)), m.span())


def _learning(b: Binder) -> None:
    lr = r"([-−]?\d+(?:\.\d+)?(?:\s*(?:e|x\s*10\^?|×\s*10\^?)\s*[-−]\s*\d+)?)"
    for m in b.find(r"(?:learning[\s_-]rate|\blr)\s*(?:of|=|:|is|at)?\s*" + lr):
        text = re.sub(r"\s+", "", m.group(1)).replace("−", "-")
        if text.startswith("-") or float(re.sub(r"(?:x|×)10\^?", "e", text)) <= 0:
            raise BadInput(f"learning rate {text}", expected="a positive learning rate such as 2e-4")
        text = re.sub(r"(?:x|×)10\^?", "e", text)
        b.bind("learning_rate", float(text), m.span())
        break
    for m in b.find(r"(?:lora\s+)?(?:rank|\br)[\s-]*(?:of|=|:)?\s*(\d+)\b"):
        if int(m.group(1)) <= 0:
            raise BadInput(f"LoRA rank {m.group(1)}", expected="a positive rank such as 8, 16 or 64")
        b.bind("lora_r", int(m.group(1)), m.span())
        break
    for m in b.find(r"(?:lora[\s_]+)?alpha\s*(?:of|=|:)?\s*(\d+)\b"):
        b.bind("lora_alpha", int(m.group(1)), m.span())
        break
    mod = r"(?:[a-z_]+_proj|c_attn|c_proj|c_fc|query|key|value|dense|wi|wo|q|k|v|o)"
    sep = r"\s*(?:,|and|&|\+|/)\s*"
    for m in b.find(r"\btarget(?:ing|s)?\s*:?\s+(?:modules?\s*:?\s+)?(?:the\s+)?(" + mod + r"(?:" + sep + mod
                    + r")*)(?:\s+(?:modules|projections|layers))?"):
        names = [n for n in re.split(r"\s*(?:,|and|&|\+|/)\s*", m.group(1).lower()) if n]
        b.bind("lora_targets", names, m.span())
        break
    for m in b.find(r"\ball[\s-]linear(?:\s+(?:layers|modules|projections))?\b|\bevery linear layer\b"):
        b.bind("lora_targets", ["all-linear"], m.span())
        break
    for m in b.find(r"\b(?:no|without|disable[d]?)\s+(?:gradient|activation)\s+checkpointing\b"):
        b.bind("grad_checkpointing", False, m.span())
    for m in b.find(r"\b(?:gradient|activation)[\s-]checkpointing\b|\bgrad(?:ient)?[\s-]ckpt\b"):
        b.bind("grad_checkpointing", True, m.span())


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


def word_span(text: str, span: tuple[int, int]) -> tuple[int, int]:
    """`span` widened to whole words ('summaris' → 'summarisation')."""
    start, end = span
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    return start, end


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
def bind_request(text: str) -> Binding:
    """Every constraint `text` states, with its words; the rest that looks like a constraint, flagged."""
    b = Binder(text)
    inference_only = bool(re.search(r"\bserv(?:e|ing)\b|\bdeploy|\binference\b|\bhost(?:ing)?\b", text, re.I)) and \
        not re.search(r"fine-?tun|\btrain|\badapt|\blora\b", text, re.I)
    _corpus(b)
    _compute(b)
    _data_tokens(b)
    _gpus(b)
    _gpu_time(b)
    _cpu(b)
    _memory(b)
    _gpu_count(b)
    _unknown_devices(b)
    _models(b)
    _sampling(b)
    _serving(b)
    _sequence(b)
    _sizes(b)
    _batch(b)
    _learning(b)
    _method(b)
    _sharding(b)
    _precision(b, inference_only)
    _context_extension(b)
    _languages(b)
    _objective(b)
    if b.out.fields.get("gpu_hours") is None and b.out.fields.get("wall_hours") is not None:
        gpus = b.out.fields.get("gpus") or 1
        wall = next(x for x in b.out.stated if x.field == "wall_hours")
        b.out.fields["gpu_hours"] = b.out.fields["wall_hours"] * gpus
        b.out.stated.append(Stated("gpu_hours", b.out.fields["gpu_hours"], wall.text))
    _leftovers(b)
    return b.out


def _leftovers(b: Binder) -> None:
    """Numbers outside every bound span: listed as not understood with the words around them."""
    for m in NUMBER_TOKEN.finditer(b.text):
        if not b.free(m.start(), m.end()):
            continue
        start = m.start()
        while start > 0 and not b.text[start - 1].isspace() and b.text[start - 1] not in "(\"'":
            start -= 1  # the whole word the number is part of: 'M2', 'v5e', 'gpt-4'
        tail = re.match(r"\d+(?:[.,]\d+)*[^\s,;]*(?:\s+[A-Za-z%][\w%/-]*){0,3}", b.text[m.start():])
        phrase = b.text[start:m.start()] + (tail.group(0) if tail else m.group(0))
        b.flag(phrase.strip(" ,;.:"), (start, m.start() + len(tail.group(0) if tail else m.group(0))))
