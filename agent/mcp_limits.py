"""Bounds on what one MCP call may send and make qkv read back: the size and shape of the argument object,
terms files whose lines come back in a result word for word, and the errors for both. Plain policy, no SDK
import, so the worker process can import it without paying for the SDK."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qkv.tools.errors import BadInput

MIB = 1024**2
GIB = 1024**3


class PathRefused(BadInput):
    """A path outside the allowed roots, a symlink escape, a device file, or an oversized file."""


class InputTooLarge(BadInput):
    """An argument longer, deeper or bigger than the server's limits."""


class BroadRoot(BadInput):
    """`/`, the home folder or a folder above it as an allowed root, without --allow-broad-root."""


@dataclass(frozen=True)
class Limits:
    """Ceilings on what one call may send and make qkv read."""

    max_string: int = 8192  # characters in any one string argument
    max_list: int = 256  # items in any one list argument; also files one glob, or one file list, expands to
    max_depth: int = 8  # nesting of objects and lists
    max_args_bytes: int = 256 * 1024  # the whole argument object, as JSON
    max_int: int = 10**12  # |integer| (sequence lengths, batch sizes, token counts)
    max_dir_entries: int = 4096  # entries of a folder argument that are checked (and may be read)
    max_glob_scan: int = 20_000  # directory entries one glob may look at before it is refused
    max_terms: int = 4096  # lines of a terms file (each comes back in the result)
    file_bytes: Mapping[str, int] = field(default_factory=lambda: {
        "config": 4 * MIB,  # config.json, generation_config.json
        "tokenizer": 256 * MIB,  # tokenizer.json of a 262k vocabulary is ~33 MB
        "text": 64 * MIB,  # corpora, prediction / reference files
        "model": 64 * GIB,  # GGUF / model folders: only metadata is read, the file is memory-mapped
    })


# ------------------------------------------------------------------------------------------ arguments
def check_arguments(args: Mapping[str, Any], limits: Limits, *, allow_online: bool = False,
                    caps: Mapping[str, int] | None = None) -> None:
    """Bound the size and shape of a raw argument object before pydantic sees it."""
    import json

    try:
        size = len(json.dumps(args, ensure_ascii=False).encode())
    except (TypeError, ValueError, RecursionError):
        raise InputTooLarge("arguments are not a JSON object", expected="plain JSON values") from None
    if size > limits.max_args_bytes:
        raise InputTooLarge(f"arguments are {size:,} bytes",
                            expected=f"at most {limits.max_args_bytes:,} bytes of JSON")
    _walk(args, "arguments", 0, limits, allow_online)
    for name, cap in (caps or {}).items():
        value = args.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            raise InputTooLarge(f"{name} is {value:,}", expected=f"at most {cap:,} for this tool")
    if args.get("trust_remote_code"):
        raise BadInput("trust_remote_code is never enabled by the qkv MCP server",
                       expected="local configs and GGUF files, or catalog names")
    if args.get("online") and not allow_online:
        raise BadInput("online lookups are off on this server",
                       expected="online: false (start `qkv mcp --online` to allow fetching hub configs)")


def _walk(value: Any, where: str, depth: int, lim: Limits, allow_online: bool) -> None:
    if depth > lim.max_depth:
        raise InputTooLarge(f"{where} is nested {depth} levels deep", expected=f"at most {lim.max_depth}")
    if isinstance(value, str):
        if len(value) > lim.max_string:
            raise InputTooLarge(f"{where} is a string of {len(value):,} characters",
                                expected=f"at most {lim.max_string:,}")
        if value.lstrip().lower().startswith(("http://", "https://")) and not allow_online:
            raise BadInput(f"{where} is a URL; this server makes no network calls",
                           expected="local files and catalog names (start `qkv mcp --online` to allow URLs)")
        if "\x00" in value:
            raise BadInput(f"{where} contains a NUL character", expected="text without NUL bytes")
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if abs(value) > lim.max_int:
            raise InputTooLarge(f"{where} is {value}", expected=f"an integer of magnitude at most {lim.max_int:,}")
    elif isinstance(value, list | tuple):
        if len(value) > lim.max_list:
            raise InputTooLarge(f"{where} has {len(value):,} items", expected=f"at most {lim.max_list}")
        for i, item in enumerate(value):
            _walk(item, f"{where}[{i}]", depth + 1, lim, allow_online)
    elif isinstance(value, Mapping):
        if len(value) > lim.max_list:
            raise InputTooLarge(f"{where} has {len(value):,} keys", expected=f"at most {lim.max_list}")
        for k, v in value.items():
            if len(str(k)) > 128:
                raise InputTooLarge(f"{where} has a key of {len(str(k)):,} characters", expected="at most 128")
            _walk(v, f"{where}.{k}" if where != "arguments" else str(k), depth + 1, lim, allow_online)


# ---------------------------------------------------------------------------- files read back verbatim
def check_terms_file(path: str, limits: Limits, name: str = "terms") -> None:
    """A file whose lines come back in the result word for word (the audit's `terms`) must hold only
    terms: every non-comment line has to pass `looks_like_term`, else the call is refused without
    quoting any line. Without this, `terms: ".env"` would return every secret in it."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise PathRefused(f"{name}: the file is not UTF-8 text", expected=TERMS_EXPECTED) from None
    except OSError as exc:
        raise PathRefused(f"{name}: the file cannot be read ({exc.strerror})", expected=TERMS_EXPECTED) from None
    count = 0
    for number, line in enumerate(text.splitlines(), 1):
        term = line.strip()
        if not term or term.startswith("#"):
            continue
        count += 1
        if count > limits.max_terms:
            raise InputTooLarge(f"{name}: the file lists more than {limits.max_terms:,} terms",
                                expected=f"at most {limits.max_terms:,} terms of art")
        if not looks_like_term(term):
            raise PathRefused(f"{name}: line {number} does not look like a term of art, and the terms come "
                              "back in the result, so the file is refused (no line is shown)",
                              expected=TERMS_EXPECTED)


TERMS_EXPECTED = ("one term of art per line ('#' starts a comment): at most 40 characters and 5 words, none of "
                  "= : ; @ $ ` \" < > { } [ ] | \\, and no key-like string (24+ characters unbroken, or 16+ mixing "
                  "3+ digits and 3+ letters)")
_TERM_FORBIDDEN = re.compile(r"[=:;@$`\"<>{}\[\]|\\]")


def looks_like_term(line: str) -> bool:
    """A term of art ('force majeure', 'GQA', '5-fluorouracil'), not a secret or a config line: short, few
    words, no assignment or markup characters, and no word shaped like a key, token or hash."""
    words = line.split()
    return (len(line) <= 40 and len(words) <= 5 and not _TERM_FORBIDDEN.search(line)
            and not any(_key_like(w) for w in words))


def _key_like(word: str) -> bool:
    digits = sum(c.isdigit() for c in word)
    letters = sum(c.isalpha() for c in word)
    return len(word) >= 24 or (len(word) >= 16 and digits >= 3 and letters >= 3)

