"""The design reports of a fixed set of requests, byte for byte (issue 19: a refactor that moves arithmetic
into tools or types a section must not change one byte of the JSON).

When a change is MEANT to change a report, rewrite the files and read the diff before committing:
    QKV_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/integration/test_golden_reports.py"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from qkv.agent.graph.api import DesignRequest, design

GOLDEN = Path(__file__).parents[1] / "data" / "golden"
REQUESTS = [
    "Fine-tune a 7B model for legal document summarisation on one consumer GPU with 24 GB of VRAM",
    "Fine-tune llama-2-7b for legal document summarisation on one consumer GPU with 24 GB of VRAM",
    "QLoRA Llama-3.1-8B for customer support chat on an RTX 3060 12GB, conversations up to 8k tokens",
    "Serve Llama-3.1-70B for 50 concurrent users with 8k context on 4 H100s, p50 under 50 ms per token",
    "fine-tune bert-base for toxicity classification of 100k labelled comments on a T4",
    "a multilingual customer-support chatbot for English, Hindi and Arabic on 4 A100s, 200k dialogues",
    "Pretrain a 1B code model; 64 H100s for 2 weeks",
    "full fine-tune llama-3.1-8b on 2 A100s for question answering over manuals, temperature 0.2",
]


def _name(task: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", task.lower()).strip("-")[:60] + ".json"


@pytest.mark.parametrize("task", REQUESTS, ids=[_name(t)[:-5] for t in REQUESTS])
def test_report_json_is_byte_identical_to_the_golden_file(task):
    text = design(DesignRequest(task=task, llm="none")).model_dump_json(indent=1) + "\n"
    path = GOLDEN / _name(task)
    if os.environ.get("QKV_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"no golden file {path.name}: run with QKV_UPDATE_GOLDEN=1 and read the diff"
    assert text == path.read_text(encoding="utf-8"), (
        f"{path.name} changed: if the change is meant, rewrite with QKV_UPDATE_GOLDEN=1 and commit the diff")
