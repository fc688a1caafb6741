"""The design honours what the user stated: for every corpus entry with `decide`, the full design
(`--llm none`) takes those decisions (tests/data/requests/corpus.yaml; format in its README.md).

A decision is a dotted path into the report's JSON (`efficiency.method`, `inference.sampling.top_p`) or a
check row (`check.stated`, `check.context`, `check.hparams`, `check.sampling`); `any_of` holds when at least
one of its decisions does (a stated plan that does not fit: it is shown not to fit, or the smallest change
is recommended with `check.stated` warn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).resolve().parents[1] / "data" / "requests" / "corpus.yaml"
ENTRIES = [e for e in yaml.safe_load(CORPUS.read_text(encoding="utf-8")) if e.get("decide")]
CHECKS = {"stated": "stated constraints honoured", "context": "context window respected",
          "hparams": "no default hyperparameters across scales",
          "sampling": "no deployment without a sampling strategy"}
UNORDERED = {"lora_targets"}
MISSING = object()


@pytest.fixture(scope="module")
def design_of(tmp_path_factory):
    """design() of a request, once per request, on a module-local SQLite file."""
    from qkv.agent.graph.api import DesignRequest, design

    db = tmp_path_factory.mktemp("listening") / "sessions.sqlite"
    cache: dict[str, Any] = {}

    def _run(text: str) -> dict[str, Any]:
        if text not in cache:
            try:
                cache[text] = design(DesignRequest(task=text, llm="none"), db_path=db).model_dump(mode="json")
            except Exception as exc:  # reported by the test that asked
                cache[text] = exc
        if isinstance(cache[text], Exception):
            pytest.fail(f"design raised {type(cache[text]).__name__}: {cache[text]}")
        return cache[text]

    return _run


def lookup(report: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or a check row's status for `check.<name>`."""
    head, _, rest = path.partition(".")
    if head == "check":
        rule = CHECKS.get(rest, rest)
        row = next((c for c in report["checks"] if c["rule"].startswith(rule)), None)
        return row["status"] if row else MISSING
    node: Any = report
    for key in path.split("."):
        if isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return MISSING
    return node


def holds(report: dict[str, Any], path: str, expected: Any) -> bool:
    actual = lookup(report, path)
    if actual is MISSING:
        return False
    if isinstance(expected, bool) or expected is None:
        return actual is expected
    if isinstance(expected, (int, float)):
        return isinstance(actual, (int, float)) and not isinstance(actual, bool) and \
            actual == pytest.approx(expected, rel=1e-6)
    if isinstance(expected, list) and isinstance(actual, list):
        return set(actual) == set(expected) if path.rsplit(".", 1)[-1] in UNORDERED else actual == expected
    return actual == expected


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_design_takes_the_stated_decisions(entry, design_of):
    report = design_of(entry["request"])
    wrong = []
    for path, expected in entry["decide"].items():
        if path == "any_of":
            if not any(holds(report, p, v) for p, v in expected.items()):
                got = {p: lookup(report, p) for p in expected}
                wrong.append(f"none of {expected} holds (got {got})")
        elif not holds(report, path, expected):
            got = lookup(report, path)
            wrong.append(f"{path}: expected {expected!r}, got {'<missing>' if got is MISSING else repr(got)}")
    assert not wrong, "\n".join(wrong)
