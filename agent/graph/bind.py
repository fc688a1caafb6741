"""Binding: a free-text request → the constraints it states, each with the words it came from.

Every rule matches on the request itself (case-insensitive, offsets into the user's text), binds one
field and consumes its span. Afterwards, whatever still looks like a constraint — a number, a device
the catalog does not know — and lies outside every consumed span is listed as not understood: nothing
the user wrote disappears silently. First binding of a field wins (the earliest, most specific rule).

The grammar is documented in docs/agent.md ("What qkv understands")."""

from __future__ import annotations

import re

from qkv.agent.graph.bind_core import NUMBER_TOKEN, Binder, Binding, Stated
from qkv.agent.graph.bind_hardware import _cpu, _gpu_count, _gpu_time, _gpus, _memory, _unknown_devices
from qkv.agent.graph.bind_plan import (
    _batch,
    _compute,
    _data_tokens,
    _learning,
    _method,
    _models,
    _precision,
    _sequence,
    _sharding,
    _sizes,
)
from qkv.agent.graph.bind_task import _context_extension, _corpus, _languages, _objective, _sampling, _serving


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
