"""The wording gate: whether a language model's wording of a report section may stand.

A wording is accepted only when the text as a whole keeps every number, name and decision its template
states and adds no number, and every sentence reads as a report sentence grounded in the section's facts
that contradicts none of them. docs/model-wording.md has the rules and the model outputs that shaped them."""

from __future__ import annotations

import re
from collections import Counter
from itertools import pairwise

# ---------------------------------------------------------------------------------------------------------
# The gate. A model's wording of a section is accepted only when the text as a whole keeps every number the
# template states and adds none, and every sentence reads as a report sentence that is grounded in the
# section's facts and contradicts none of its decisions.

NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
WORD_NUMBERS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
                "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100",
                "thousand": "1000", "million": "1000000", "billion": "1000000000"}
MIN_WORDS, MAX_WORDS = 5, 45
MIN_GROUNDED = 0.8     # share of a sentence's content words found in the facts, the template or the lexicon
MAX_UNGROUNDED = 1     # ... and never more than this many words from nowhere

# Words a faithful report sentence may use beyond those of its facts and template: the trade's vocabulary
# and the plain verbs that join facts ("keeps", "leaves"), nothing that states a fact of its own.
LEXICON = set("""
model models base training train trained trains fine-tune fine-tuning fine-tuned tuning method methods
plan plans design report section task tasks memory gpu gpus vram gib budget peak usable total tokens token
window context length sequence sequences input inputs output outputs weights weight parameters parameter
cache kv attention kernel kernels decoding decode decoder encoder serving serve served inference quantised
quantized quantisation quantization precision loss metric metrics quality score scores tokenizer vocabulary
corpus audit audited speed throughput latency bound bounded upper lower limit limits cap capped capacity
step steps strategy strategies option options choice chosen choose chooses pick picks picked picking
use uses used using keep keeps kept leave leaves left need needs needed require requires required give gives
given make makes made bring brings brought run runs hold holds held stay stays reach reaches cost costs
fit fits fitting fitted cover covers covered sit sits add adds added apply applies applied reuse reuses
report reports reported measure measures measured compute computes computed estimate estimates estimated
generate generates generated read reads produce produces produced predict predicts predicted minimise
minimises minimize minimizes per each every all both only also so then here there which
that this these those its their it is are was were be been being has have had can could would will should
may might must does do did not no enough well within under over above below against across after before
than more less most least same other otherwise instead rather while when where until whole
one single first second new full plus together alone own
""".split())  # noqa: SIM905 — a word list reads better as text
STOP = set("""
a an the and or but nor of to in on at by for with from as into onto about up down out off via per
""".split())  # noqa: SIM905
# Decisions are a closed vocabulary: a sentence may name a method, architecture family, precision, kernel or
# decoding rule only when the section's facts name the same one.
DECISIONS: dict[str, str] = {
    "full fine-tuning": r"\bfull(?:[- ]parameter|[- ]fine[- ]?tun\w*)",
    "LoRA": r"(?<![a-z])lora\b", "QLoRA": r"\bqlora\b", "DoRA": r"\bdora\b", "FSDP": r"\bfsdp\b",
    "DeepSpeed": r"\bdeepspeed\b|\bzero-?[123]\b", "adapters": r"\badapters?\b",
    "encoder-only": r"\bencoder[- ]only\b|\bbert[- ]style\b", "decoder-only": r"\bdecoder[- ]only\b|\bgpt[- ]style\b",
    "encoder-decoder": r"\bencoder[- ]decoder\b|\bt5[- ]style\b|\bseq2seq\b|\bsequence[- ]to[- ]sequence\b",
    "bf16": r"\bbf16\b|\bbfloat16\b", "fp16": r"\bfp16\b|\bfloat16\b|\bhalf[- ]precision\b",
    "fp32": r"\bfp32\b|\bfloat32\b", "int8": r"\bint8\b|\b8[- ]bit\b", "int4": r"\bint4\b|\b4[- ]bit\b",
    "nf4": r"\bnf4\b", "GPTQ": r"\bgptq\b", "AWQ": r"\bawq\b", "GGUF quant": r"\bq\d_\w+\b",
    "FlashAttention": r"\bflash[_ -]?attention\w*", "SDPA": r"\bsdpa\b", "eager attention": r"\beager\b",
    "greedy": r"\bgreedy\b", "beam search": r"\bbeams?\b", "top-p": r"\btop[- _]p\b|\bnucleus\b",
    "top-k": r"\btop[- _]k\b", "temperature": r"\btemperature\b",
    "gradient checkpointing": r"\bcheckpointing\b", "sliding window": r"\bsliding[- ]window\b",
    "RoPE scaling": r"\brope\b|\byarn\b", "chunking": r"\bchunk\w*",
}
# Model families and hardware names: naming one the facts do not name is a falsehood, not a wording.
NAMES = ("llama", "mistral", "mixtral", "gemma", "qwen", "phi", "falcon", "gpt", "bert", "roberta", "t5", "bart",
         "opt", "bloom", "smollm", "deepseek", "nvidia", "amd", "apple", "rtx", "tesla", "cpu", "tpu")
IDENT = re.compile(r"[a-z][\w.+-]*\d[\w.+-]*|\d+[a-z][a-z\w.-]*", re.I)   # mixes letters and digits: names
NAME_IN = re.compile(r"\b[a-z][\w.+-]*\d[\w+-]*", re.I)                 # names a wording must keep
NUM_UNIT = re.compile(r"(?<![\w.-])(\d+(?:[.,]\d+)*)(?:\s*|-)([a-z%]+(?:/s)?)", re.I)
WORD = re.compile(r"[a-z][a-z0-9_@'+-]*", re.I)
ECHO = re.compile(r"rewrite|rephrase|facts computed|section of the design report|\bdraft\b|every number|"
                  r"plain (technical )?english|\bpassage\b|\bsentences?\b|\bsummar(y|ise|ize) (this|the) section\b|"
                  r"\bas an ai\b|\bexample\b", re.I)
PERSON = re.compile(r"(?<![\w.])i(?![\w.])|\b(i'm|i've|i'll|me|my|you|your|you're)\b", re.I)
FRAGMENT = re.compile(r"(^|\s)[-*•]\s|\s-\s|^\d+[.)]\s|\w\s*=\s*\w|\*\*|`|#|\w:\s*\S+$|[;:,]\s*$")
LABEL = re.compile(r"^\W*\w+(?:\s\w+)?:\s")     # "Tokenizer: gpt2, ..." is a form field, not a sentence
# Reasons and praise are claims too: a wording may draw no conclusion the facts do not draw themselves.
INFERENCE = re.compile(r"\b(which means|this means|meaning|therefore|thus|hence|because|since|as a result|"
                       r"ensur\w*|allow\w*|enabl\w*|improv\w*|guarantee\w*|optimal\w*|better|best|"
                       r"efficient\w*|significant\w*|robust\w*|ideal\w*|perfect\w*)\b", re.I)
ABBREV = re.compile(r"\b(?:al|e\.g|i\.e|etc|vs|cf|approx)\.$", re.I)
NEGATED = r"(?:\bnot\b|n't\b|\bnever\b|\bcannot\b|\bno longer\b|\bfails? to\b|\bunable to\b|\btoo (?:large|big)\b)"


def _num(n: str) -> str:
    n = n.replace(",", "").rstrip(".")
    return n.rstrip("0").rstrip(".") if "." in n else n


def numbers_in(text: str) -> set[str]:
    """Every number a text states: digits (thousands separators and trailing zeros dropped) and number words."""
    found = {_num(n) for n in NUMBER.findall(text)}
    return found | {WORD_NUMBERS[w] for w in re.findall(r"[a-z]+", text.lower()) if w in WORD_NUMBERS}


def sentences(text: str) -> list[str]:
    """Sentences of a model's text: split at . ! ? before a space and a capital, digit or bracket, and at
    line breaks (a list line, a heading or a cut-off line is then a sentence of its own and fails)."""
    parts: list[str] = []
    for line in text.strip().splitlines():
        for piece in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])", line.strip()):
            if parts and parts[-1] and ABBREV.search(parts[-1]) and not line.strip().startswith(piece):
                parts[-1] += " " + piece   # "et al. 2017", "e.g. QLoRA": not a sentence end
            elif piece.strip():
                parts.append(piece.strip())
    return parts


def _flat(text: str) -> str:
    return re.sub(r"[\s_-]", "", text.lower())


def _stem(word: str) -> str:
    """A crude stem, enough to match "fits"/"fit", "languages"/"language", "quantized"/"quantised"."""
    w = word.lower().strip("'-").replace("z", "s")
    if w.endswith("'s"):
        w = w[:-2]
    if w.endswith(("ies", "ied")) and len(w) > 4:
        return w[:-3] + "y"
    for suffix in ("ations", "ation", "ings", "ing", "ers", "er", "ed", "ly"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            break
    else:
        if w.endswith(("sses", "xes", "ches", "shes")):
            w = w[:-2]
        elif w.endswith("s") and not w.endswith("ss") and len(w) > 3:
            w = w[:-1]
    return w[:-1] if w.endswith("e") and len(w) > 3 else w


def _vocab(text: str) -> set[str]:
    words = {w.lower() for w in WORD.findall(text)}
    return {_stem(p) for w in words for p in (w, *re.split(r"[-_/]", w)) if p}


def _excerpt(s: str, n: int = 8) -> str:
    words = s.split()
    return " ".join(words[:n]) + ("…" if len(words) > n else "")


def _polarity(text: str, stem: str) -> set[str]:
    """'+' / '-' for each mention of `stem` (fit, audit) in `text`: '-' when a negation precedes it closely."""
    out = set()
    for m in re.finditer(rf"\b{stem}\w*", text, re.I):
        before = text[max(0, m.start() - 30): m.start()]
        conditional = re.search(r"\b(would|could|might)\b\s*$", before, re.I)
        out.add("?" if conditional else "-" if re.search(NEGATED + r"[\w\s]{0,12}$", before, re.I) else "+")
    return out


def _near_repeats(text: str) -> set[str]:
    """Stems said twice in a row but for small words ("outputs it as output"), and pairs said twice in one
    text: a stutter, unless the facts do it too ("token by token")."""
    skip = STOP | {"it", "its", "is", "are", "be", "was", "were", "this", "that", "which"}
    words = [w.strip(".,;:()\"'") for w in text.split()]
    stems = [_stem(w) for w in words if w[:1].isalpha() and w.lower() not in skip]
    pairs = list(pairwise(stems))
    return ({a for a, b in pairs if a == b and len(a) >= 3}
            | {f"{a} {b}" for (a, b), n in Counter(pairs).items() if n > 1})


def _units(text: str) -> set[tuple[str, str]]:
    """(number, unit) pairs: "9.492 GiB", "8 new", "69.3 tokens/s", "4,096-token", "6.74B"."""
    def unit(u: str) -> str:
        u = u.lower()
        return u if "/" in u or not u.endswith("s") or len(u) <= 3 else u[:-1]
    return {(_num(n), unit(u)) for n, u in NUM_UNIT.findall(text)}


def _negated(text: str) -> set[str]:
    """Stems of the words a text negates: "not audited", "needs no decoder", "does not fit"."""
    out = set()
    for m in re.finditer(r"(?:\b(?:no|not|never|without|cannot)|n't)\s+((?:(?:a|an|the|be|been|yet|any)\s+)*)(\w+)",
                         text, re.I):
        out.add(_stem(m.group(2)))
    return out


def _slots(allowed: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip().lower() for m in re.finditer(r"^- (\w+): (.+)$", allowed, re.M)}


def _claims(s: str, allowed: str) -> list[str]:
    """Statements of a decision ("the task is …", "the base model is …", "a decoder …") that the facts
    contradict."""
    slots, low = _slots(allowed), s.lower()
    out = []
    if "task" in slots:
        for m in re.finditer(r"\btask is (?:an? |the )?([\w-]+)(?: (\w+))?", low):
            said, then = m.group(1), m.group(2) or ""
            if said != slots["task"] and not (said == slots.get("kind") and then in ("problem", "task")):
                out.append(f"says the task is {said}; the facts say {slots['task']}")
    for m in re.finditer(r"\b(?:base )?model is (?:an? |the )?([\w.-]*\d[\w.-]*)", low):
        if "model" in slots and m.group(1).rstrip(".") != slots["model"]:
            out.append(f"says the model is {m.group(1)}; the facts say {slots['model']}")
    family = slots.get("family", "")
    for own, other in (("encoder-only", "decoder"), ("decoder-only", "encoder")):
        if family == own:
            for m in re.finditer(rf"\b{other}s?\b(?!-only)", low):
                before = low[max(0, m.start() - 12): m.start()]
                if not re.search(r"\bno\s*$|\bwithout\s*$|-\s*$", before) and not low[m.end():].startswith("-"):
                    out.append(f"gives the {own} design a {other}")
                    break
    return out


def _sentence_problem(s: str, allowed: str, vocab: set[str]) -> str | None:
    """Why one sentence is not a report sentence grounded in the facts (None: it is)."""
    fact_words = {w.lower() for w in WORD.findall(allowed)}
    words = s.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return f"{len(words)} words (a sentence has {MIN_WORDS}–{MAX_WORDS})"
    bare = re.sub(r"'[^']*'|\"[^\"]*\"", lambda q: "Q" if q.group(0) in allowed else q.group(0), s)  # quoted facts
    if m := (FRAGMENT.search(bare[:-1]) or LABEL.search(bare)):
        return f"list fragment, not prose ('{m.group(0).strip()}')"
    first = words[0].strip("\"'(")
    if not (first[:1].isupper() or first[:1].isdigit()
            or (IDENT.fullmatch(first.rstrip(",;:")) and first.rstrip(",;:").lower() in allowed.lower())):
        return "does not start with a capital letter"
    if not re.search(r"[.!]['\")]?$", s):
        return "does not end with a full stop"
    for a, b in ("()", "[]", "{}"):
        if s.count(a) != s.count(b):
            return "unbalanced brackets"
    if s.count('"') % 2:
        return "unbalanced quotes"
    low, allowed_low = s.lower(), allowed.lower()
    for ident in IDENT.findall(s):
        key = ident.lower().strip(".-+")
        if key and key not in allowed_low:
            return f"names '{ident}', which the facts do not"
    for name in NAMES:
        if re.search(rf"\b{name}", low) and not re.search(rf"\b{name}", allowed_low):
            return f"names '{name}', which the facts do not"
    for decision, pattern in DECISIONS.items():
        if re.search(pattern, low) and not re.search(pattern, allowed_low):
            return f"says {decision}, which the facts do not"
    for claim in _claims(s, allowed):
        return claim
    units, allowed_units = _units(s), _units(allowed)
    unit_words = {u for _, u in allowed_units}
    for n, u in sorted(units - allowed_units):
        if u in unit_words:   # a number of the facts with another fact's unit: "8 tokens/s" for "max 8 new tokens"
            return f"gives {n} the unit '{u}', which the facts do not"
    prose = re.sub(r"^- \w+: ", "", allowed, flags=re.M)   # the slot names ("- audited: …") are no claims
    for stem, label in (("fit", "fits"), ("audited", "audited")):
        said, known = _polarity(s, stem), _polarity(prose, stem) - {"?"}
        if "-" in said and known == {"+"}:
            return f"says it is not {label}; the facts say it is"
        if "+" in said and known == {"-"}:
            return f"says it is {label}; the facts say it is not"
        if said - {"?"} and not known:
            return f"says whether it is {label}, which the facts do not"
    for st in sorted(_negated(s) - _negated(allowed)):
        return f"negates '{st}', which the facts do not"
    for m in INFERENCE.finditer(s):
        if not re.search(rf"\b{re.escape(m.group(0))}\b", allowed, re.I):
            return f"draws a conclusion the facts do not ('{m.group(0)}')"
    for aside in re.findall(r"\(([^()]*)\)", s):   # an aside in brackets quotes the facts: no lexicon words
        loose = [w for w in WORD.findall(aside) if w.lower() not in STOP and _stem(w) not in vocab]
        if loose:
            return "bracketed aside not in the facts: " + ", ".join(loose[:3])
    own = set().union(*(_near_repeats(line) for line in allowed_low.splitlines()))   # "token by token"
    stutter = sorted(_near_repeats(low) - own)
    if stutter:
        return f"stutters: repeats '{stutter[0]}'"
    content = [w.lower() for w in WORD.findall(s) if w.lower() not in STOP and w.lower() not in LEXICON]
    ungrounded = [w for w in content if _stem(w) not in vocab
                  and not all(_stem(p) in vocab or p in LEXICON for p in re.split(r"[-_/]", w) if p)]
    for w in ungrounded:   # a fact's word misspelt or bent ("generational", "Tokener's") is a garble, not a word
        near = next((v for v in sorted(fact_words) if len(w) > 5 and w[:5] == v[:5] and w != v), None)
        if near:
            return f"garbles '{near}' as '{w}'"
    if content and (len(ungrounded) > MAX_UNGROUNDED or 1 - len(ungrounded) / len(content) < MIN_GROUNDED):
        return "words not grounded in the facts: " + ", ".join(dict.fromkeys(ungrounded))
    counts = Counter(w for w in content if len(w) > 3)
    if counts and max(counts.values()) >= 3:
        return "repeats itself"
    return None


def vet(text: str, allowed_text: str, keep: str = "") -> str | None:
    """Why a model-worded section is rejected (None: accepted). `allowed_text`: the section's facts and
    template (what may be said); `keep`: the template, whose every number the wording must state again.

    Whole text: not empty, no question, no echoed instructions or first/second person, no number the facts
    do not hold, no loop or repeated sentence, and none of the template's numbers, names (llama-2-7b,
    rtx-4090, flash_attention_2, rouge1) or decisions (QLoRA, decoder-only, bf16, beam search) dropped.
    Every sentence: 5–45 words, a capital (or a fact's name) first and a full stop last, balanced brackets
    and quotes, prose rather than list fragments or "Label: value"; no model, hardware, method, family,
    precision, kernel or decoding rule the facts do not state; no "the task is …" / "the model is …", fit,
    audit or encoder/decoder claim the facts contradict; numbers only with the facts' units, negations only
    of what the facts negate, no conclusion or praise of its own ("which means", "optimal"); bracketed
    asides in the facts' words; no stutter or garbled fact word; and at least 80 % of its content words
    (all but one) grounded in the facts, the template or a small domain lexicon."""
    text = text.strip()
    if not text:
        return "empty output"
    if "?" in text:
        return "asked a question instead of stating the plan"
    if m := ECHO.search(text):
        return f"echoed the instructions ('{m.group(0)}')"
    if m := PERSON.search(text):
        return f"speaks in the first or second person ('{m.group(0)}')"
    invented = sorted(numbers_in(text) - numbers_in(allowed_text))
    if invented:
        return "number not in the facts: " + ", ".join(invented[:3])
    words = text.lower().split()
    grams = Counter(zip(words, words[1:], words[2:], strict=False))
    if grams and max(grams.values()) >= 3:
        return "repetitive output"
    said = sentences(text)
    if len({s.lower() for s in said}) < len(said):
        return "repeated a sentence"
    vocab = _vocab(allowed_text)
    for n, s in enumerate(said, 1):
        problem = _sentence_problem(s, allowed_text, vocab)
        if problem:
            return f'sentence {n} ("{_excerpt(s)}"): {problem}'
    return _lost(text, keep)


def _lost(text: str, keep: str) -> str | None:
    """What of the template's facts a wording dropped: a number, a name, a decision (None: nothing)."""
    dropped = sorted(numbers_in(keep) - numbers_in(text), key=lambda n: keep.find(n))
    if dropped:
        return "dropped the template's number(s): " + ", ".join(dropped[:3])
    flat = _flat(text)
    lost = [n for n in dict.fromkeys(NAME_IN.findall(keep)) if _flat(n) not in flat]
    lost += [d for d, pattern in DECISIONS.items()
             if re.search(pattern, keep, re.I) and not re.search(pattern, text, re.I)]
    return "dropped the template's " + ", ".join(lost[:3]) if lost else None


