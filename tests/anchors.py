"""Published reference numbers the tests hold the tools to.

The case files live in the repository (tests/data/anchors/), copied from the project's shared anchors
with each case's source, so a clone with nothing beside it carries its own ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

ANCHORS = Path(__file__).resolve().parent / "data" / "anchors"


def load_anchor(name: str) -> dict:
    """A case file keyed by case id. A missing file fails the test run: the anchors are the ground truth."""
    path = ANCHORS / name
    if not path.is_file():
        raise FileNotFoundError(f"anchor file {path} not found (it ships with the repository under tests/data/anchors)")
    return {case["id"]: case for case in json.loads(path.read_text())["cases"]}
