"""The house rules of docs/contributing.md that a machine can check: small modules and small functions.

A module over MAX_MODULE_LINES must be a data table (listed in DATA_TABLES with why); a function over
MAX_FUNCTION_LINES must say in its docstring why it is kept long."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
DATA_TABLES: dict[str, str] = {}  # path -> why it is one table, not code; none today


def _modules() -> list[Path]:
    return sorted(p for folder in ("agent", "tools", "tui") for p in (ROOT / folder).rglob("*.py")
                  if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_are_small_and_functions_short(path):
    rel = str(path.relative_to(ROOT))
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n") + 1
    assert lines <= MAX_MODULE_LINES or rel in DATA_TABLES, (
        f"{rel} has {lines} lines: split it by responsibility (limit {MAX_MODULE_LINES})")
    long = []
    for node in ast.walk(ast.parse(text, filename=rel)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            reason = "long" in (ast.get_docstring(node) or "").lower()
            if length > MAX_FUNCTION_LINES and not reason:
                long.append(f"{node.name} ({length} lines)")
    assert not long, f"{rel}: split these, or say in the docstring why each is kept long: {', '.join(long)}"
