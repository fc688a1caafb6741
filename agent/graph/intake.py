"""Intake: free text → `TaskSpec`, by rules first ("7B", "24GB", "RTX 4090", "2x A100", "legal
summarisation", "16k-token contracts"); a language model, when configured, only fills gaps.

Then the defaults: what is still missing is either asked (interactive, `decisive_gaps`) or assumed
and stated (`apply_defaults`), so a report never hides a guess."""

from __future__ import annotations

import re
from typing import Any

from qkv.agent.graph.schemas import Assumption, TaskSpec
from qkv.tools.errors import BadInput

# ---------------------------------------------------------------------------------------------- vocab
OBJECTIVES: list[tuple[str, str]] = [  # (regex, objective label) — first hit wins
    (r"\btranslat|\bmachine translation|\b[a-z]{2}\s*(?:->|→|to)\s*[a-z]{2}\b(?=.*translat)", "translation"),
    (r"summari[sz]|\babstract(?:ive)? summar|\btl;?dr", "summarisation"),
    (r"question[- ]answer|\bqa\b|\bextractive\b|reading comprehension|\bsquad\b", "qa"),
    (r"classif|sentiment|categori[sz]|\bintent\b|\btopic label|spam|toxicity detect", "classification"),
    (r"\bner\b|named[- ]entit|entity (?:recognition|extraction)|token classif", "ner"),
    (r"\bembedding|\bretriev|semantic search|rerank", "retrieval"),
    (r"\bcode (?:generation|completion|assistant)|\bcoding assistant|\bcodegen", "code"),
    (r"\bchat|assistant|dialog|conversation|instruction[- ](?:tun|follow)", "chat"),
    (r"language model|pre-?train|from scratch|next[- ]token", "language-modelling"),
    (r"\bgenerat|\bwrit(?:e|ing)\b|story|\bdraft", "generation"),
]
DOMAINS: list[tuple[str, str]] = [
    (r"\blegal|\blaw\b|\bcontract|\bstatut|\bcourt|\bjudg(?:e|ment)|\bclause", "legal"),
    (r"\bmedical|\bclinical|\bpatient|\bradiolog|\bbiomed|\bhealth", "medical"),
    (r"\bfinanc|\bbank|\btrading|\bearnings", "finance"),
    (r"\bscientific|\bpaper|\barxiv|\bresearch article", "scientific"),
    (r"\bsource code|\bpython\b|\bprogramming|\bcode\b", "code"),
    (r"\bcustomer support|\bsupport ticket|\bhelpdesk", "customer-support"),
]
LANGUAGES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it", "portuguese": "pt",
    "dutch": "nl", "chinese": "zh", "japanese": "ja", "korean": "ko", "russian": "ru", "arabic": "ar",
    "hindi": "hi", "polish": "pl", "turkish": "tr", "swedish": "sv", "czech": "cs", "finnish": "fi",
}
NUMBER_WORDS = {"one": 1, "a": 1, "an": 1, "a single": 1, "single": 1, "two": 2, "three": 3, "four": 4, "six": 6,
                "eight": 8, "sixteen": 16, "dual": 2, "quad": 4}
# Family names without a memory size: the common variant, stated as an assumption when used.
GPU_SHORTHANDS = {"a100": "a100-80gb-sxm", "a6000": "rtx-a6000", "v100": "v100-32gb", "a10g": "a10g"}
SCALE = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}
_NUM = r"(\d+(?:[.,]\d+)*)"


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower())


# ------------------------------------------------------------------------------------------------ GPUs
def _gpu_index() -> list[tuple[str, str]]:
    """(alias phrase, catalog name), longest phrase first, spaces and dashes interchangeable."""
    from qkv.tools.catalog.gpus import list_gpus

    pairs: dict[str, str] = {}
    for g in list_gpus():
        for key in [g.name, g.display_name, *g.aliases]:
            pairs[key.lower()] = g.name
    pairs.update(GPU_SHORTHANDS)
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def _phrase_pattern(phrase: str) -> str:
    parts = [re.escape(p) for p in re.split(r"[\s\-]+", phrase) if p]
    return r"(?<![\w.])" + r"[\s\-]*".join(parts) + r"s?(?![\w])"


def parse_gpu(text: str) -> tuple[str | None, int | None, str]:
    """The catalog GPU named in `text`, its count, and the text with that mention removed."""
    low = _norm(text)
    for phrase, name in _gpu_index():
        m = re.search(_phrase_pattern(phrase), low)
        if not m:
            continue
        count = None
        before = low[: m.start()]
        cm = re.search(r"(\d+|" + "|".join(NUMBER_WORDS) + r")\s*(?:x|×|\*)?\s*(?:nvidia\s+|amd\s+)?$", before)
        if cm:
            word = cm.group(1)
            count = int(word) if word.isdigit() else NUMBER_WORDS[word]
        am = re.match(r"\s*(?:gpus?\s*)?(?:x|×|\*)\s*(\d+)", low[m.end():])
        if am:
            count = int(am.group(1))
        return name, count, low[: m.start()] + " " + low[m.end():]
    return None, None, low


def gpu_for_vram(vram_gib: float, consumer: bool) -> str | None:
    """A catalog GPU with exactly this memory (consumer class when asked), fastest bf16 first."""
    from qkv.tools.catalog.gpus import list_gpus

    pool = [g for g in list_gpus() if abs(g.memory_gib - vram_gib) < 0.5 and not g.unified_memory]
    if consumer:
        pool = [g for g in pool if g.gpu_class == "consumer"] or pool
    pool.sort(key=lambda g: (-(g.bf16_dense_tflops or 0.0), g.name))
    return pool[0].name if pool else None


# ---------------------------------------------------------------------------------------------- models
def _model_index() -> list[tuple[str, str]]:
    from qkv.tools.catalog.models import list_models

    pairs: dict[str, str] = {}
    for m in list_models():
        for key in [m.name, *m.aliases, *([m.hub_id] if m.hub_id else [])]:
            pairs[key.lower()] = m.name
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def parse_model(text: str) -> tuple[str | None, str]:
    """The catalog model named in `text` and the text with that mention removed."""
    low = _norm(text)
    for phrase, name in _model_index():
        if len(phrase) < 4:
            continue
        m = re.search(_phrase_pattern(phrase), low)
        if m:
            return name, low[: m.start()] + " " + low[m.end():]
    return None, low


# ------------------------------------------------------------------------------------------------ parse
def parse_task(text: str, *, gpu: str | None = None, gpus: int | None = None, model: str | None = None,
               corpus: list[str] | None = None) -> TaskSpec:
    """Rule-based intake. Explicit options win over what the text says. BadInput for empty text."""
    if text is None or not str(text).strip():
        raise BadInput("the design request is empty",
                       expected='a task such as "fine-tune a 7B model for legal summarisation on one 24 GB GPU"')
    raw = str(text).strip()
    if len(raw) > 4000:
        raise BadInput(f"the design request is {len(raw):,} characters long", expected="a task of under 4,000")
    spec = parse_fields(raw)
    spec["text"] = raw

    # Explicit options override the text.
    if gpu:
        from qkv.tools.catalog.gpus import get_gpu

        spec["gpu"] = get_gpu(gpu).name
    if gpus is not None:
        if gpus <= 0:
            raise BadInput(f"--gpus is {gpus}", expected="a positive integer")
        spec["gpus"] = gpus
    if model:
        spec["base_model"] = model
    if corpus:
        spec["corpus"] = [str(c) for c in corpus]

    via_vram = spec.pop("_gpu_from_vram", None)
    task = TaskSpec(**spec)
    if via_vram and not task.gpu:
        task = task.model_copy(update={"gpu": via_vram})
        task.constraints.append(f"gpu '{via_vram}' stands for a {task.vram_gib:g} GB GPU")
    if not (task.objective or task.base_model or task.param_budget or task.mode != "fine-tune"):
        raise BadInput(f"no task found in {raw[:80]!r}",
                       expected="a task (summarise, classify, translate, answer questions, chat, pre-train, "
                                "serve ...) or a model ('7B', 'llama-2-7b'); e.g. "
                                '"fine-tune a 7B model for legal summarisation on one 24 GB GPU"')
    return task


def parse_fields(text: str) -> dict[str, Any]:
    """Every TaskSpec field the rules find in `text` (absent keys or None: not stated)."""
    spec: dict[str, Any] = {}
    raw = text
    low = _norm(raw)

    found_gpu, count, rest = parse_gpu(low)
    spec["gpu"], spec["gpus"] = found_gpu, count
    if found_gpu is None:
        cm = re.search(r"(\d+|" + "|".join(NUMBER_WORDS) + r")\s*(?:x|×)?\s*gpus\b", low)
        if cm:
            word = cm.group(1)
            spec["gpus"] = int(word) if word.isdigit() else NUMBER_WORDS[word]
    vm = re.search(_NUM + r"\s*(?:gb|gib|g)\b(?:\s*(?:of\s+)?(?:vram|memory|gpu|card|consumer))?", rest)
    if (vm and found_gpu is None) or (vm and found_gpu is not None and re.search(r"vram|memory", rest)):
        spec["vram_gib"] = _num(vm.group(1))
    if found_gpu is None and spec.get("vram_gib"):
        guess = gpu_for_vram(spec["vram_gib"], consumer="consumer" in low or "gaming" in low)
        spec["_gpu_from_vram"] = guess

    spec["base_model"], rest = parse_model(rest)
    _parse_sizes(rest, spec)
    _parse_objective(low, spec)
    _parse_method(low, spec)
    _parse_languages(low, spec)
    _parse_serving(low, spec)
    spec["sampling"] = parse_sampling(low)
    if re.search(r"\bconstraint|must|cannot|no more than|budget", low):
        spec["constraints"] = [s.strip() for s in re.split(r"[.;]", raw) if re.search(
            r"constraint|must|cannot|no more than|budget", s, re.I)]

    return spec


def _parse_sizes(low: str, spec: dict[str, Any]) -> None:
    """Parameter budget, data tokens, document lengths, example counts, compute budget."""
    for m in re.finditer(_NUM + r"\s*([kmbt])(?:illion)?\b[\s-]*(tokens?)?", low):
        value = _num(m.group(1)) * SCALE[m.group(2)]
        if m.group(3):
            if m.group(2) in "bt":
                spec["data_tokens"] = value
            continue
        tail = low[m.end(): m.end() + 20]
        if re.match(r"[\s-]*(?:examples|samples|documents|docs|pairs|rows|sentences)", tail):
            spec["data_examples"] = int(value)
            continue
        if m.group(2) in "mb" and "param_budget" not in spec and not re.match(r"[\s-]*(?:words|chars)", tail):
            spec["param_budget"] = value
    for m in re.finditer(r"(\d+(?:\.\d+)?)\s*(?:x\s*10\^?|e)\s*\+?(\d+)\s*flops", low):
        spec["compute_flops"] = float(m.group(1)) * 10 ** int(m.group(2))
    for m in re.finditer(_NUM + r"\s*(k)?[\s-]*tokens?\b(?:[\s-]*(?:long|each|per))?", low):
        # '16k tokens' in a context-length sense is 16,384 when the count is a power of two (4k, 8k, 32k).
        n = _num(m.group(1))
        kilo = 1024 if m.group(2) and n.is_integer() and int(n) & (int(n) - 1) == 0 else 1000
        value = int(n * (kilo if m.group(2) else 1))
        before = low[max(0, m.start() - 25): m.start()]
        after = low[m.end(): m.end() + 30]
        if value >= 1_000_000:
            continue  # a data size, handled above
        if re.search(r"up to|max(?:imum)?|as long as|at most|longest", before):
            spec["max_doc_tokens"] = value
        elif re.search(r"context|window", before + after):
            spec["max_doc_tokens"] = max(value, spec.get("max_doc_tokens") or 0)
        else:
            spec["doc_tokens"] = value
            spec.setdefault("max_doc_tokens", value)
    m = re.search(_NUM + r"\s*(k)?\s*(?:training\s+)?(?:examples|samples|documents|docs|pairs)\b", low)
    if m and "data_examples" not in spec:
        spec["data_examples"] = int(_num(m.group(1)) * (1000 if m.group(2) else 1))


def _parse_method(low: str, spec: dict[str, Any]) -> None:
    if re.search(r"\bq-?lora\b", low):
        spec["method"] = "qlora"
    elif re.search(r"\blora\b|\bpeft\b|\badapters?\b", low):
        spec["method"] = "lora"
    elif re.search(r"\bfull(?:y)?[\s-]+(?:parameter\s+)?fine-?tun|\bfull fine-?tun|\bfull-parameter", low):
        spec["method"] = "full"


def _parse_objective(low: str, spec: dict[str, Any]) -> None:
    for pattern, label in OBJECTIVES:
        if re.search(pattern, low):
            spec["objective"] = label
            break
    for pattern, label in DOMAINS:
        if re.search(pattern, low):
            spec["domain"] = label
            break
    if re.search(r"pre-?train|from scratch|train (?:a|an) (?:new )?(?:\d+\w* )?(?:model|llm|transformer) from", low):
        spec["mode"] = "pre-train"
        spec.setdefault("objective", "language-modelling")
    elif (re.search(r"\bserv(?:e|ing)\b|\bdeploy|\binference\b|\bhost(?:ing)?\b|\brun (?:it )?locally", low)
          and not re.search(r"fine-?tun|\btrain|adapt|lora", low)):
        spec["mode"] = "inference"


def _parse_languages(low: str, spec: dict[str, Any]) -> None:
    names = "|".join(LANGUAGES)
    m = re.search(rf"(?:from\s+)?({names})\s*(?:to|into|->|→)\s*({names})", low)
    if m:
        spec["source_lang"], spec["target_lang"] = LANGUAGES[m.group(1)], LANGUAGES[m.group(2)]
        spec.setdefault("objective", "translation")
    spec["languages"] = sorted({LANGUAGES[w] for w in re.findall(rf"\b({names})\b", low)})


def _parse_serving(low: str, spec: dict[str, Any]) -> None:
    if re.search(r"\bdeploy|\bserv(?:e|ing)\b|\bproduction\b|\bendpoint\b|\busers\b", low):
        spec["deploy"] = True
    m = re.search(_NUM + r"\s*ms\b", low)
    if m:
        spec["latency_ms"] = _num(m.group(1))
    m = re.search(_NUM + r"\s*(?:tokens?|tok)\s*/\s*s|" + _NUM + r"\s*tokens? per second", low)
    if m:
        spec["throughput_tok_s"] = _num(m.group(1) or m.group(2))
    m = re.search(_NUM + r"\s*(?:concurrent|simultaneous|parallel)\s*(?:users|requests|sequences|streams)?", low)
    if m:
        spec["concurrency"] = int(_num(m.group(1)))


def parse_sampling(low: str) -> dict[str, Any] | None:
    """Decoding settings stated in the request ('temperature 1.0', 'top-p 1', 'no top-k')."""
    out: dict[str, Any] = {}
    m = re.search(r"temperature\s*(?:=|of|:)?\s*(\d+(?:\.\d+)?)", low)
    if m:
        out["temperature"] = float(m.group(1))
    m = re.search(r"top[-_ ]?p\s*(?:=|of|:)?\s*(\d+(?:\.\d+)?)", low)
    if m:
        out["top_p"] = float(m.group(1))
    m = re.search(r"top[-_ ]?k\s*(?:=|of|:)?\s*(\d+)", low)
    if m:
        out["top_k"] = int(m.group(1))
    if re.search(r"(?:no|without)\s+(?:any\s+)?(?:top[-_ ]?p|nucleus|truncation|sampling (?:bounds|limits))", low):
        out.setdefault("top_p", 1.0)
        out.setdefault("top_k", 0)
    if re.search(r"(?:no|without)\s+(?:a\s+)?(?:top[-_ ]?k|top[-_ ]?p/top[-_ ]?k)", low):
        out.setdefault("top_k", 0)
        out.setdefault("top_p", 1.0)
    if re.search(r"no (?:max(?:imum)?|length) (?:limit|cap|bound)|unlimited (?:length|tokens)|unbounded", low):
        out["max_new_tokens"] = None
    return out or None


# ------------------------------------------------------------------------------------------ the defaults
DEFAULT_GPU = "rtx-4090"
DEFAULT_MODELS = {"understanding": "bert-base-uncased", "translation": "t5-base", "generation": "llama-2-7b"}
UNDERSTANDING = {"classification", "qa", "ner", "retrieval"}


def objective_kind(objective: str | None) -> str:
    if objective == "translation":
        return "translation"
    return "understanding" if objective in UNDERSTANDING else "generation"


def decisive_gaps(task: TaskSpec) -> list[tuple[str, str]]:
    """Facts without which the design would be a guess: (field, question), most decisive first."""
    gaps = []
    if not task.gpu and not task.vram_gib:
        gaps.append(("gpu", "Which GPU(s) will this run on, and how many? (e.g. 'one RTX 4090', '2x A100 80GB')"))
    if not task.base_model and not task.param_budget and task.mode != "pre-train":
        gaps.append(("model", "Which base model, or what parameter budget? (e.g. 'llama-2-7b', '7B', '1B')"))
    if task.mode == "pre-train" and not (task.param_budget or task.compute_flops or task.data_tokens):
        gaps.append(("model", "What budget: a model size, a compute budget or a token count? (e.g. '1B', "
                              "'1e21 FLOPs', '300B tokens')"))
    return gaps


def apply_answer(task: TaskSpec, field: str, answer: str) -> TaskSpec:
    """Merge a user's answer to one intake question into the task (parsed by the same rules)."""
    answer = (answer or "").strip()
    if not answer:
        return task
    update: dict[str, Any] = {}
    if field == "gpu":
        name, count, rest = parse_gpu(answer)
        if name is None:
            m = re.search(_NUM + r"\s*(?:gb|gib|g)\b", rest)
            name = gpu_for_vram(_num(m.group(1)), consumer="consumer" in rest) if m else None
        if name is None:
            from qkv.tools.catalog.gpus import get_gpu

            name = get_gpu(answer).name  # UnknownName with the closest catalog names
        update = {"gpu": name, "gpus": count or task.gpus}
    elif field == "model":
        scratch: dict[str, Any] = {}
        model, _ = parse_model(answer)
        _parse_sizes(_norm(answer), scratch)
        if model:
            update["base_model"] = model
        elif scratch.get("param_budget") or scratch.get("compute_flops") or scratch.get("data_tokens"):
            update.update({k: scratch[k] for k in ("param_budget", "compute_flops", "data_tokens") if k in scratch})
        else:
            from qkv.tools.modelref import resolve_model

            resolve_model(answer)  # a file or catalog name; UnknownName with the closest names otherwise
            update["base_model"] = answer
    return task.model_copy(update=update)


def check_answer(field: str, answer: str | None) -> None:
    """Raise the error `apply_answer` would raise for this answer, without touching any session.

    Called before an answer is handed to the graph: LangGraph keeps a delivered resume value with the
    paused step, so an answer that failed inside the graph would be replayed on every later resume."""
    apply_answer(TaskSpec(text=f"check the answer to the {field} question"), field, answer or "")


def apply_defaults(task: TaskSpec) -> tuple[TaskSpec, list[Assumption]]:
    """Fill what is still missing with stated defaults (command-line mode, or after the questions)."""
    out: list[Assumption] = []
    update: dict[str, Any] = {}
    if not task.objective:
        update["objective"] = "generation" if task.mode != "pre-train" else "language-modelling"
        out.append(Assumption(field="objective", value=update["objective"],
                              reason="no task verb found; a decoder-only generator is the general case"))
    kind = objective_kind(update.get("objective", task.objective))
    if not task.gpu:
        out.append(Assumption(field="gpu", value=DEFAULT_GPU,
                              reason="no GPU named; one 24 GB consumer card is the common single-GPU setup"))
        update["gpu"] = DEFAULT_GPU
    elif any(c.startswith(f"gpu '{task.gpu}' stands for") for c in task.constraints):
        out.append(Assumption(field="gpu", value=task.gpu,
                              reason=f"only the memory ({task.vram_gib:g} GB) was given; the catalog GPU with "
                                     "that memory and the highest bf16 throughput stands for it"))
    elif re.search(r"(?<![\w-])a100s?(?![\w-])", _norm(task.text)) and task.gpu == GPU_SHORTHANDS["a100"]:
        out.append(Assumption(field="gpu", value=task.gpu, reason="'A100' without a size: the 80 GB SXM4 variant"))
    if not task.gpus:
        update["gpus"] = 1
        out.append(Assumption(field="gpus", value=1, reason="no GPU count given"))
    if not task.base_model and not task.param_budget and task.mode != "pre-train":
        update["base_model"] = DEFAULT_MODELS[kind]
        out.append(Assumption(field="base_model", value=update["base_model"],
                              reason=f"no model or size named; the catalog's reference {kind} model"))
    if task.mode == "pre-train" and not (task.param_budget or task.compute_flops or task.data_tokens):
        update["param_budget"] = 1e9
        out.append(Assumption(field="param_budget", value=1e9,
                              reason="pre-training with no size, compute or token budget stated; 1B parameters"))
    if not task.doc_tokens and not task.max_doc_tokens:
        length = 2048 if kind == "generation" else 512
        update["doc_tokens"] = update["max_doc_tokens"] = length
        out.append(Assumption(field="max_doc_tokens", value=length,
                              reason="document length not stated; a typical "
                                     f"{'training sequence' if length == 2048 else 'sentence-to-paragraph input'}"))
    if task.deploy and not task.concurrency:
        update["concurrency"] = 1
        out.append(Assumption(field="concurrency", value=1, reason="serving load not stated; one stream"))
    return task.model_copy(update=update), out
