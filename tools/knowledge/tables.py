"""The published tables the knowledge tools reason from, loaded once from `data/*.json`."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any


@cache
def load_table(name: str) -> dict[str, Any]:
    """A data file of this package by stem (e.g. 'chinchilla_table3')."""
    return json.loads(files("qkv.tools.knowledge").joinpath("data", f"{name}.json").read_text())


def chinchilla_table3() -> list[dict[str, float]]:
    """Hoffmann et al. 2022 Table 3 rows: params, flops, flops_gopher, tokens."""
    return load_table("chinchilla_table3")["rows"]


def gpt3_table21() -> list[dict[str, Any]]:
    """Brown et al. 2020 Table 2.1 rows: params, n_layers, d_model, n_heads, d_head, batch_tokens, lr."""
    return load_table("gpt3_table21")["rows"]
