"""Reading predictions, references, sources and datasets from the files people actually have:

- .txt — one item per line (a single reference per item);
- .jsonl — one JSON object per line; a field may hold a string, a list of strings (several references)
  or a SQuAD-style {"text": [...]} answers object;
- .json — a list of such objects, or a list of strings;
- .csv / .tsv — a header row naming the fields.
Every problem (missing file, empty file, bad line, missing field) is a BadInput naming the file and line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from qkv.tools.errors import BadInput

FORMATS = (".txt", ".jsonl", ".json", ".csv", ".tsv")


def utf8_text(path: str | Path, expected: str = "a UTF-8 text file (" + ", ".join(FORMATS) + ")") -> str:
    """A file's contents as text; BadInput naming the first byte that is not UTF-8 (a binary file, a
    Latin-1 export) or why the file cannot be read."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {p} ({exc.strerror or exc})", expected=expected) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{p} is not UTF-8 text at byte {exc.start:,}", expected=expected) from None


def read_text(path: str | Path) -> str:
    """A whole UTF-8 text file (for perplexity)."""
    p = _existing(path)
    text = utf8_text(p)
    if not text.strip():
        raise BadInput(f"{p} is empty", expected="a UTF-8 text file with content")
    return text


def read_records(path: str | Path) -> list[dict[str, Any]] | list[str]:
    """The items of a file: dicts for structured formats, strings for .txt (one per line)."""
    p = _existing(path)
    suffix = p.suffix.lower()
    raw = utf8_text(p)
    if not raw.strip():
        raise BadInput(f"{p} is empty", expected="at least one item")
    if suffix == ".txt" or suffix not in FORMATS:
        lines = raw.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the file's final newline does not start an item
        return lines
    if suffix == ".jsonl":
        out = []
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise BadInput(f"{p}:{n} is not valid JSON ({exc.msg})", expected="one JSON object per line") from None
        return out
    if suffix == ".json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{p} is not valid JSON ({exc.msg} at line {exc.lineno})",
                           expected="a JSON list of objects or strings") from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise BadInput(f"{p} holds a JSON {type(data).__name__}", expected="a JSON list of objects or strings")
        return data
    delimiter = "\t" if suffix == ".tsv" else ","
    return list(csv.DictReader(raw.splitlines(), delimiter=delimiter))


def read_column(path: str | Path, field: str) -> list[str]:
    """One string per item (predictions, sources)."""
    return [_single(v, path, i) for i, v in enumerate(_values(path, field))]


def read_references(path: str | Path, field: str) -> list[list[str]]:
    """One or more reference strings per item."""
    out = []
    for i, v in enumerate(_values(path, field)):
        refs = _many(v, path, i)
        if not refs:
            raise BadInput(f"{path}: item {i + 1} has no reference", expected="at least one reference per item")
        out.append(refs)
    return out


def read_dataset(path: str | Path, fields: list[str]) -> list[dict[str, Any]]:
    """Items with the named fields present (for model evaluation: source, reference, ...)."""
    records = read_records(path)
    if records and isinstance(records[0], str):
        if len(fields) > 1:
            raise BadInput(f"{path} is plain text (one item per line) but fields {fields} are needed",
                           expected="a .jsonl/.json/.csv file with those fields")
        return [{fields[0]: r} for r in records]
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise BadInput(f"{path}: item {i + 1} is a {type(rec).__name__}", expected="a JSON object per item")
        missing = [f for f in fields if f not in rec]
        if missing:
            raise BadInput(f"{path}: item {i + 1} has no field '{missing[0]}'", expected="the field named by the "
                           "source/reference field settings (--source-field, --reference-field)", choices=sorted(rec))
    return records  # type: ignore[return-value]


def _values(path: str | Path, field: str) -> list[Any]:
    records = read_records(path)
    if records and isinstance(records[0], str):
        return list(records)
    out = []
    for i, rec in enumerate(records):
        if isinstance(rec, str):
            out.append(rec)
            continue
        if not isinstance(rec, dict) or field not in rec:
            keys = sorted(rec) if isinstance(rec, dict) else []
            raise BadInput(f"{path}: item {i + 1} has no field '{field}'",
                           expected="the field named by --prediction-field/--reference-field/--source-field",
                           choices=keys)
        out.append(rec[field])
    return out


def _single(v: Any, path, i: int) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, list) and len(v) == 1 and isinstance(v[0], str):
        return v[0]
    if v is None:
        return ""
    if isinstance(v, int | float | bool):
        return str(v)
    raise BadInput(f"{path}: item {i + 1} is a {type(v).__name__}, not a string", expected="one string per item")


def _many(v: Any, path, i: int) -> list[str]:
    if isinstance(v, dict) and "text" in v:  # SQuAD / HF datasets answers: {"text": [...], "answer_start": [...]}
        v = v["text"]
    if isinstance(v, str):
        return [v]
    if isinstance(v, int | float | bool):
        return [str(v)]
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return list(v)
    raise BadInput(f"{path}: item {i + 1} reference is a {type(v).__name__}",
                   expected="a string or a list of strings")


def _existing(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise BadInput(f"file {p} not found", expected="an existing file (" + ", ".join(FORMATS) + ")")
    return p
