"""Follow-ups ("what if I had two A100s?"): which TaskSpec fields a change sets, merged onto the old task."""

from __future__ import annotations

import math
import re
from typing import Any

from qkv.agent.graph.intake import parse_gpu
from qkv.agent.graph.schemas import TaskSpec
from qkv.tools.errors import UnknownName

# Fields a follow-up can change (the text, corpus and constraints stay with the original request).
REVISABLE = ("objective", "domain", "method", "base_model", "param_budget", "data_tokens", "compute_flops",
             "data_examples", "doc_tokens", "max_doc_tokens", "gpu", "gpus", "vram_gib", "latency_ms",
             "throughput_tok_s", "concurrency", "source_lang", "target_lang", "sampling", "deploy", "corpus",
             "cpu_only", "ram_gib", "sharding", "precision", "weights", "micro_batch", "grad_accum", "epochs",
             "learning_rate", "lora_r", "lora_alpha", "lora_targets", "grad_checkpointing", "gpu_hours",
             "wall_hours", "ttft_ms", "context_extension")


# What `revise` understands, for the error when a follow-up names none of it.
UNDERSTOOD = ('a model ("use Mistral instead", "switch to Qwen 2.5 7B", "try llama-3.1-8b") or size ("a 13B '
              'model"), a GPU or GPU count ("what if I had two A100s?"), a document length ("my documents are '
              '16k tokens"), a method ("with LoRA"), a task ("for classification"), a serving target ("50 ms '
              'per token", "8 concurrent users") or sampling ("temperature 0.7")')

# Words that ask for a different model: the word after one is read as a model name, fuzzily.
_MODEL_VERBS = re.compile(r"\b(?:use|using|switch(?:ing)?\s+to|swap\s+(?:in|to)|try|what\s+about|how\s+about|"
                          r"go\s+with|change\s+(?:the\s+)?(?:base\s+)?model\s+to)\s+(?:an?\s+|the\s+)?"
                          r"([a-z][a-z0-9.\-]*)")
_NOT_MODELS = {"one", "two", "three", "four", "eight", "single", "dual", "quad", "more", "less", "fewer", "bigger",
               "smaller", "larger", "model", "gpu", "gpus", "card", "cards", "lora", "qlora", "peft", "full",
               "documents", "docs", "context", "temperature", "sampling", "top", "greedy", "instead", "it",
               "that", "this", "another", "different", "other", "same", "longer", "shorter"}
# After 'what about' a word is as often a question topic as a model ("what about the latency?"): not an error.
_VAGUE = {"latency", "throughput", "cost", "memory", "vram", "speed", "quality", "accuracy", "metrics",
          "tokenizer", "tokenization", "inference", "training", "quantization", "quantisation", "batch", "kv",
          "cache", "data", "dataset", "evaluation", "ethics", "checks", "report", "efficiency", "architecture"}


def _family(name: str) -> str:
    """A catalog name's family word: its leading letters ('qwen2.5-7b' → 'qwen'), with the digit when the
    letters alone are too short to be a name ('t5-base' → 't5')."""
    m = re.match(r"[a-z]+", name)
    word = m.group(0) if m else name
    if len(word) < 3:
        word = re.match(r"[a-z]+\d*", name).group(0)
    return word


_NUMBER = re.compile(r"[\s\-]*(\d+(?:\.\d+)?)(?:\s*([bm])(?![a-z0-9])|x|(?![a-z0-9.]))")


def _numbers(tail: str) -> tuple[str | None, float | None]:
    """(version, size in parameters) written right after a family word: '2.5-7b' → ('2.5', 7e9)."""
    version, size, pos = None, None, 0
    while (m := _NUMBER.match(tail, pos)) and m.end() > pos:
        if m.group(2):
            size = float(m.group(1)) * (1e9 if m.group(2) == "b" else 1e6)
        elif version is None and size is None:
            version = m.group(1)
        pos = m.end()
    return version, size


def _published(text: str | None) -> float | None:
    """The catalog's published parameter count ('7.24B', '335M') in parameters."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmbt])\s*", (text or "").lower())
    return float(m.group(1)) * {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}[m.group(2)] if m else None


def _catalog() -> list[dict[str, Any]]:
    """Catalog models with their family word, version, size in the name and published size."""
    from qkv.tools.catalog.models import list_models

    out = []
    for m in list_models():
        name = m.name.lower()
        family = _family(name)
        version, size = _numbers(name[len(family):])
        out.append({"name": m.name, "family": family, "version": version, "size": size,
                    "params": _published(m.published_params) or size})
    return out


def _asked_word(low: str) -> tuple[str | None, str]:
    """The word after a verb asking for a model ('use X', 'switch to X'), and the text after it."""
    verb = _MODEL_VERBS.search(low)
    word = verb.group(1).strip(".-") if verb else ""
    if len(word) < 3 or word in _NOT_MODELS or word[0].isdigit():
        return None, low
    return word, low[verb.end():]


def unknown_model_word(text: str) -> str | None:
    """The word a follow-up asks to use that is no catalog model family ("use Falcon instead" → 'falcon'),
    for a clearer error when the follow-up changes nothing else; None otherwise."""
    low = parse_gpu(text)[2]
    word, _ = _asked_word(low)
    if not word or word in _VAGUE:
        return None
    return word if model_mention(text, None) is None else None


def family_span(text: str) -> tuple[int, int] | None:
    """Where `text` names a catalog model family, with the version and size written after it
    ('Qwen 2.5 7B', 'Mistral'); None when it names none."""
    families = sorted({m["family"] for m in _catalog()}, key=len, reverse=True)
    for family in families:
        m = re.search(rf"(?<![a-z]){re.escape(family)}(?![a-z])(?:[\s-]*(?:\d+(?:\.\d+)?[bm]?|instruct)\b)*",
                      text, re.I)
        if m:
            return m.span()
    return None


def model_mention(text: str, size_hint: float | None) -> str | None:
    """The catalog model a follow-up asks for by family ("use Mistral instead", "switch to Qwen 2.5 7B",
    "try mistrall"): the family word, exactly or by fuzzy match after a verb like 'use', narrowed by a
    version and size written after it, then the one nearest `size_hint` (the task's size, parameters).

    None when the text names no model family; UnknownName when it asks for one the catalog lacks."""
    from rapidfuzz import fuzz

    from qkv.tools.errors import closest

    low = parse_gpu(text)[2]  # a GPU name ('A100') is not a model
    models = _catalog()
    families = sorted({m["family"] for m in models})
    hit: tuple[str, str] | None = None  # (family, the text after it)
    for family in sorted(families, key=len, reverse=True):
        m = re.search(rf"(?<![a-z]){re.escape(family)}(?![a-z])", low)
        if m:
            hit = (family, low[m.end():])
            break
    if hit is None:
        word, rest = _asked_word(low)
        if not word:
            return None
        stem = re.match(r"[a-z]+", word).group(0)
        near = [f for f in closest(stem, families, limit=5) if fuzz.ratio(stem, f) >= 75]
        if not near:
            return None  # not a model family: `unknown_model_word` names it if nothing else changed
        best = max(near, key=lambda f: fuzz.ratio(stem, f))
        hit = (best, word[len(stem):] + rest)
    family, tail = hit
    version, size = _numbers(tail)
    pool = [m for m in models if m["family"] == family]
    if version is not None:
        pool = [m for m in pool if m["version"] and (m["version"] == version
                                                     or m["version"].startswith(version + "."))]
    if size is not None:
        pool = [m for m in pool if (m["size"] or m["params"])
                and abs(math.log((m["size"] or m["params"]) / size)) < 0.15]
    if not pool:
        said = " ".join(x for x in (family, version, f"{size / 1e9:g}B" if size else None) if x)
        raise UnknownName(f"no catalog model matches '{said}'", expected="a model in the catalog (`qkv models`)",
                          choices=[m["name"] for m in models if m["family"] == family])
    target = size or size_hint
    if target:
        pool.sort(key=lambda m: (abs(math.log((m["params"] or target) / target)), m["name"]))
    return pool[0]["name"]


def merge_change(task: dict[str, Any], assumptions: list[dict[str, Any]], change_text: str,
                 size_hint: float | None = None) -> tuple[dict[str, Any], set[str], list[dict[str, Any]]]:
    """(new task dict, names of fields that changed, assumptions minus those the change replaced).

    `size_hint` (parameters of the model the design chose) picks the size when a follow-up names a model
    family only ("use Mistral instead"); the task's own size budget wins when it has one."""
    from qkv.agent.graph.bind import bind_request
    from qkv.agent.graph.bind_core import Stated, count_of

    bound = bind_request(change_text)
    found = dict(bound.fields)
    said = next((x.text for x in bound.stated if x.field == "base_model"), "")
    if found.get("base_model") and not re.search(r"\d", said) and said.lower() != str(found["base_model"]).lower():
        found.pop("base_model")  # a family named alone ('switch to qwen'): sized below, from the task's model
    # Counts relative to what was stated: "what if I only had one of them?", "use both", "all of them".
    rel = re.search(r"\b(one|two|three|four|six|eight|\d+)\s+of\s+(?:them|those|these|the gpus|the cards)\b|"
                    r"\b(both|all)(?:\s+of)?\s+(?:them|those|these|gpus|cards)\b|\buse both\b", change_text, re.I)
    if rel and not found.get("gpus"):
        have = int(task.get("gpus") or 1)
        found["gpus"] = count_of(rel.group(1)) if rel.group(1) else have
        bound.stated.append(Stated("gpus", found["gpus"], rel.group(0)))
    if not found.get("base_model"):
        hint = task.get("param_budget") or size_hint
        named = model_mention(change_text, hint)
        if named:
            # 'Qwen 2.5 7B' also reads as a '7B' budget; the model it names is what was meant.
            found["base_model"], found["param_budget"] = named, None
    via_vram = found.pop("_gpu_from_vram", None)
    if via_vram and not found.get("gpu"):
        found["gpu"] = via_vram
    if found.get("mode") == "fine-tune":
        found.pop("mode")  # the default, not a statement
    if found.get("gpu") and not found.get("gpus"):
        found["gpus"] = task.get("gpus") or 1
    if found.get("doc_tokens") and not found.get("max_doc_tokens"):
        found["max_doc_tokens"] = found["doc_tokens"]
    update = {k: v for k, v in found.items() if k in REVISABLE and v is not None}
    if update.get("base_model"):
        update["param_budget"] = None  # a named model replaces a size budget
    elif update.get("param_budget"):
        update["base_model"] = None  # a new size replaces the model chosen for the old one
    if found.get("mode") == "pre-train":
        update["mode"] = "pre-train"  # serving words in a follow-up ("deploy it with ...") keep the mode
    changed = {k for k, v in update.items() if task.get(k) != v}
    # Defaults were taken for what the first request left out; a change may make other defaults right
    # (a translation task assumes 512-token inputs, not 2,048), so assumed fields are re-derived.
    from qkv.agent.graph.intake import apply_defaults

    keep_gpu = any(str(c).startswith("gpu '") for c in task.get("constraints", []))
    reset = {a["field"]: None for a in assumptions
             if a.get("field") not in update and not (a.get("field") == "gpu" and keep_gpu)}
    if "max_doc_tokens" in reset:
        reset["doc_tokens"] = None
    # The change's own words join the stated list (replacing what it restates); what it did not bind is listed.
    words = {x.field: x.text for x in bound.stated}
    stated = [x for x in task.get("stated", []) if x["field"] not in update]
    stated += [{"field": k, "value": v, "text": words.get(k, change_text)} for k, v in update.items() if v is not None]
    not_understood = [*task.get("not_understood", []), *(n for n in bound.not_understood
                                                         if n not in task.get("not_understood", []))]
    merged = TaskSpec.model_validate({**task, **reset, **update, "stated": stated, "not_understood": not_understood})
    new_task, assumed = apply_defaults(merged)
    changed |= {k for k in reset if getattr(new_task, k) != task.get(k)}
    return new_task.model_dump(), changed, [a.model_dump() for a in assumed]
