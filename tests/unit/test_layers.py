"""Dependence points one way, tools <- agent <- tui (docs/contributing.md): every module's imports, read with
`ast` (function-level imports included, since a lazy import is still a dependence)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
TUI_DOORS = {"agent/commands/tui.py", "agent/cli_app.py"}  # the two places that open the app


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _files("tools"), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_tool_imports_neither_the_agent_nor_the_tui(path):
    bad = {m for m in _imports(path) if m.startswith(("qkv.agent", "qkv.tui", "langgraph", "textual"))}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_agent_imports_the_tui_only_at_its_two_doors():
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.startswith("qkv.tui"))
                 for p in _files("agent")}
    offenders = {k: v for k, v in offenders.items() if v and k not in TUI_DOORS}
    assert not offenders
