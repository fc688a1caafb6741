"""Published reference numbers (../shared/anchors beside the repository, or $QKV_ANCHORS)."""

from __future__ import annotations

import json
import os
from pathlib import Path

ANCHORS = Path(os.environ.get("QKV_ANCHORS") or Path(__file__).resolve().parents[2] / "shared" / "anchors")


def load_anchor(name: str) -> dict:
    """A case file keyed by case id. Missing anchors fail the test run: they are the ground truth."""
    path = ANCHORS / name
    if not path.is_file():
        raise FileNotFoundError(f"anchor file {path} not found; set QKV_ANCHORS to the shared/anchors folder")
    return {case["id"]: case for case in json.loads(path.read_text())["cases"]}
