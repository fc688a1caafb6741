"""Intake listens: every request of the listening corpus (tests/data/requests/corpus.yaml) binds what
it states, with the user's own words, and accounts for every number it contains.

(a) each `bind` field equals the TaskSpec attribute and is in `task.stated` with words from the request;
(b) every number in the request lies inside some stated `.text` or some `not_understood` phrase;
(c) `error: true` requests raise BadInput;
plus: nothing numeric is bound that the request does not state, and the phrases an entry lists under
`not_understood` are reported as such."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from qkv.tools.errors import BadInput

CORPUS = Path(__file__).resolve().parents[1] / "data" / "requests" / "corpus.yaml"
ENTRIES: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")

CLASSES = {
    "memory-without-name", "gpu-name-and-count", "method", "sharding", "precision-weights",
    "micro-batch-grad-accum", "sequence-length", "learning-rate-lora", "model-name", "model-size", "objective",
    "budget-compute", "budget-data", "decoding", "serving", "cpu-only", "out-of-range", "not-understood", "invalid",
    "corpus-path",
}
# The bind keys and the type of their values (a float field may be written as an int in YAML).
FIELDS: dict[str, tuple[type, ...]] = {
    "objective": (str,), "mode": (str,), "method": (str,), "base_model": (str,), "param_budget": (int, float),
    "gpu": (str,), "gpus": (int,), "vram_gib": (int, float), "cpu_only": (bool,), "ram_gib": (int, float),
    "sharding": (str,), "precision": (str,), "weights": (str,), "micro_batch": (int,), "grad_accum": (int,),
    "max_doc_tokens": (int,), "doc_tokens": (int,), "learning_rate": (int, float), "lora_r": (int,),
    "lora_alpha": (int,), "lora_targets": (list,), "grad_checkpointing": (bool,), "epochs": (int,),
    "data_examples": (int,), "data_tokens": (int, float), "compute_flops": (int, float), "gpu_hours": (int, float),
    "latency_ms": (int, float), "throughput_tok_s": (int, float), "concurrency": (int,), "sampling": (dict,),
    "source_lang": (str,), "target_lang": (str,), "languages": (list,), "corpus": (list,),
    "context_extension": (str,), "deploy": (bool,), "domain": (str,),
}
UNORDERED = {"languages", "lora_targets", "corpus"}
# Fields a binder may state beyond `bind` without being wrong: the qualitative reading of the task
# (a corpus entry binds them only where the words are explicit).
QUALITATIVE = {"objective", "domain", "mode", "deploy", "languages"}

BINDING = [e for e in ENTRIES if not e.get("error")]
ERRORS = [e for e in ENTRIES if e.get("error")]
WITH_NOT_UNDERSTOOD = [e for e in BINDING if e.get("not_understood")]


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in entries]


@pytest.fixture(scope="module")
def parsed() -> dict[str, Any]:
    """parse_task once per request (a BadInput is kept as the result, so each test reports it)."""
    from qkv.agent.graph.intake import parse_task

    out: dict[str, Any] = {}
    for e in BINDING:
        try:
            out[e["id"]] = parse_task(e["request"])
        except Exception as exc:  # reported per entry by `_task`
            out[e["id"]] = exc
    return out


def _task(parsed: dict[str, Any], entry: dict[str, Any]):
    task = parsed[entry["id"]]
    if isinstance(task, Exception):
        pytest.fail(f"parse_task raised {type(task).__name__}: {task}")
    return task


def _stated(task, field: str) -> list[Any]:
    """Stated entries for `field` ('sampling' also matches 'sampling.top_p')."""
    return [s for s in getattr(task, "stated", []) if s.field == field or s.field.startswith(field + ".")]


def _same(expected: Any, actual: Any, field: str) -> bool:
    if isinstance(expected, bool) or expected is None:
        return actual is expected or actual == expected
    if isinstance(expected, float) or (isinstance(expected, int) and isinstance(actual, float)):
        return isinstance(actual, (int, float)) and not isinstance(actual, bool) and \
            actual == pytest.approx(expected, rel=1e-6)
    if isinstance(expected, list):
        if not isinstance(actual, (list, tuple)):
            return False
        return set(actual) == set(expected) if field in UNORDERED else list(actual) == expected
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        extra = {k for k, v in actual.items() if k not in expected and v is not None}
        return not extra and all(k in actual and _same(v, actual[k], k) for k, v in expected.items())
    return actual == expected


# ------------------------------------------------------------------------------------ the corpus itself
def test_corpus_is_well_formed():
    """Unique ids, known classes, ≥10 per class, ≥200 requests, ≥80 with decisions, typed bind values."""
    ids = Counter(e["id"] for e in ENTRIES)
    assert not [i for i, n in ids.items() if n > 1], "duplicate ids"
    per_class = Counter(e["class"] for e in ENTRIES)
    assert set(per_class) == CLASSES
    assert min(per_class.values()) >= 10, per_class
    assert len(ENTRIES) >= 200
    assert sum("decide" in e for e in ENTRIES) >= 80
    for e in ENTRIES:
        assert set(e) <= {"id", "class", "request", "bind", "decide", "error", "not_understood"}, e["id"]
        assert isinstance(e["request"], str), e["id"]
        if e["class"] == "invalid":
            assert e.get("error") is True and "bind" not in e and "decide" not in e, e["id"]
            continue
        assert "error" not in e and isinstance(e.get("bind"), dict) and e["bind"], e["id"]
        for field, value in e["bind"].items():
            assert field in FIELDS, f"{e['id']}: unknown bind field {field}"
            assert isinstance(value, FIELDS[field]), f"{e['id']}: {field}={value!r} is {type(value).__name__}"
            if FIELDS[field] == (int,) or FIELDS[field] == (int, float):
                assert not isinstance(value, bool) and value > 0, f"{e['id']}: {field}={value!r}"
        for fragment in e.get("not_understood", []):
            assert fragment.lower() in e["request"].lower(), f"{e['id']}: {fragment!r} is not in the request"
        for path, value in (e.get("decide") or {}).items():
            if path == "any_of":
                assert isinstance(value, dict) and len(value) >= 2, e["id"]
                continue
            assert path.split(".")[0] in {"efficiency", "architecture", "objective", "inference", "tokenization",
                                          "check", "task"}, f"{e['id']}: {path}"
            assert not isinstance(value, str) or not re.fullmatch(r"[\d.]+e-?\d+", value), \
                f"{e['id']}: {path}={value!r} reads as a string (write 1.0e-4)"


# ------------------------------------------------------------------------------------- (a) the binding
@pytest.mark.parametrize("entry", BINDING, ids=_ids(BINDING))
def test_binds_what_the_request_states(entry, parsed):
    task = _task(parsed, entry)
    request = entry["request"].lower()
    problems = []
    for field, expected in entry["bind"].items():
        if field not in type(task).model_fields:
            problems.append(f"TaskSpec has no field {field!r}")
            continue
        actual = getattr(task, field)
        if not _same(expected, actual, field):
            problems.append(f"{field}: expected {expected!r}, got {actual!r}")
        stated = _stated(task, field)
        if not stated:
            problems.append(f"{field}: not in task.stated")
        for s in stated:
            if not s.text or s.text.lower() not in request:
                problems.append(f"{field}: stated text {s.text!r} is not words of the request")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------- (b) every number accounted for
def _covered(request: str, phrases: list[str]) -> list[tuple[int, int]]:
    """Every span of `request` where one of `phrases` occurs (case-insensitive). A not-understood phrase
    may carry a trailing explanation in parentheses ('TPU v5e (not a GPU in the catalog)'): its words
    before it are what must occur."""
    low = request.lower()
    spans = []
    for phrase in phrases:
        p = (phrase or "").lower()
        if p and p not in low:
            p = re.sub(r"\s*\([^()]*\)\s*$", "", p)
        if not p:
            continue
        start = low.find(p)
        while start != -1:
            spans.append((start, start + len(p)))
            start = low.find(p, start + 1)
    return spans


@pytest.mark.parametrize("entry", BINDING, ids=_ids(BINDING))
def test_every_number_is_bound_or_flagged(entry, parsed):
    task = _task(parsed, entry)
    request = entry["request"]
    phrases = [s.text for s in getattr(task, "stated", [])] + list(getattr(task, "not_understood", []))
    spans = _covered(request, phrases)
    lost = [m.group(0) for m in NUMBER.finditer(request)
            if not any(a <= m.start() and m.end() <= b for a, b in spans)]
    assert not lost, f"numbers neither bound nor flagged: {lost}; stated={phrases}"


# ---------------------------------------------------------------------------- nothing bound beyond that
def _tolerated(field: str, s: Any, task, bind: dict[str, Any]) -> bool:
    """An extra stated field that is not a misreading: the qualitative reading of the task, 'a 4090' as one
    GPU, the memory that is part of a GPU's name ('A100 80GB'), a size read from a model's name
    ('Mistral 7B'), a typical length equal to the longest, a wall-clock budget beside the GPU-hours."""
    if field in QUALITATIVE:
        return True
    if field == "gpus" and s.value == 1:
        return True
    if field == "vram_gib" and task.gpu:
        from qkv.tools.catalog.gpus import get_gpu

        return math.isclose(float(s.value), get_gpu(task.gpu).memory_gib, rel_tol=0.02)
    if field == "param_budget" and "base_model" in bind:
        return any(s.text.lower() in m.text.lower() for m in _stated(task, "base_model"))
    if field in ("doc_tokens", "max_doc_tokens"):
        other = "max_doc_tokens" if field == "doc_tokens" else "doc_tokens"
        return bind.get(other) == s.value
    if field == "wall_hours":
        return "gpu_hours" in bind
    return False


@pytest.mark.parametrize("entry", BINDING, ids=_ids(BINDING))
def test_nothing_bound_beyond_the_request(entry, parsed):
    """`bind` lists every constraint the request states: a field stated beyond it is a misreading
    ('8x7B' read as eight GPUs, 'Q4_K_M' as four, '16GB RAM' as VRAM) unless it is one of the tolerated."""
    task = _task(parsed, entry)
    bind = entry["bind"]
    extra = [f"{s.field}={s.value!r} from {s.text!r}" for s in getattr(task, "stated", [])
             if s.field.split(".")[0] not in bind and not _tolerated(s.field.split(".")[0], s, task, bind)]
    assert not extra, f"bound but not stated by the request: {extra}"


@pytest.mark.parametrize("entry", WITH_NOT_UNDERSTOOD, ids=_ids(WITH_NOT_UNDERSTOOD))
def test_unbound_phrases_are_reported(entry, parsed):
    task = _task(parsed, entry)
    flagged = [p.lower() for p in getattr(task, "not_understood", [])]
    missing = [f for f in entry["not_understood"] if not any(f.lower() in p for p in flagged)]
    assert not missing, f"not reported as not understood: {missing}; not_understood={flagged}"


# ------------------------------------------------------------------------------------------- (c) errors
@pytest.mark.parametrize("entry", ERRORS, ids=_ids(ERRORS))
def test_invalid_requests_raise_bad_input(entry):
    from qkv.agent.graph.intake import parse_task

    with pytest.raises(BadInput):
        parse_task(entry["request"])
