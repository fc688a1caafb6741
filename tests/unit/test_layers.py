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


def _arithmetic(path: Path) -> list[str]:
    """Arithmetic a graph step does itself: * / // ** % and - on values. Allowed: display formatting inside an
    f-string ({params / 1e9:.2f}B), an index next to len(...), and joining paths (Path(tmp) / name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def formatted(node: ast.AST) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.FormattedValue):
                return True
        return False

    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.BinOp) or not isinstance(node.op, (ast.Mult, ast.Div, ast.FloorDiv, ast.Pow,
                                                                        ast.Mod, ast.Sub)):
            continue
        left = node.left
        if isinstance(left, ast.Constant) and isinstance(left.value, str):
            continue  # "%s" % x
        if isinstance(left, ast.Call) and getattr(left.func, "id", "") in ("len", "Path"):
            continue
        if not formatted(node):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_graph_steps_compose_tools_and_do_no_arithmetic_of_their_own():
    """Every number a report states is computed under tools/ (docs/contributing.md, 'Where numbers live'):
    the graph's steps call tools and pass their figures on. Only the tool-call timer in common.py (not a
    report figure) subtracts."""
    steps = [p for p in _files("agent/graph/nodes") if p.name != "common.py"]
    found = [line for p in steps for line in _arithmetic(p)]
    assert not found, "move this arithmetic into a tool:\n" + "\n".join(found)
