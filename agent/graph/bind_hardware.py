"""Binding rules for the hardware a request names: catalog GPUs and their count, memory-only devices,
CPUs, devices the catalog does not know, and GPU time."""

from __future__ import annotations

import re

from qkv.agent.graph.bind_core import (
    COUNT,
    CPU_DEVICES,
    NUM,
    UNKNOWN_DEVICES,
    Binder,
    Stated,
    count_of,
    phrase_pattern,
    to_number,
)
from qkv.tools.errors import BadInput


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


