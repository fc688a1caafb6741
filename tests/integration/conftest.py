"""What the design tests share: `run(task, **request fields)`, the real design graph with a module-local
SQLite file and `--llm none`, each report computed once per module."""

from __future__ import annotations

import pytest

from qkv.agent.graph.api import DesignRequest, design
from qkv.agent.graph.schemas import DesignReport


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    db = tmp_path_factory.mktemp("design") / "sessions.sqlite"
    cache: dict[str, DesignReport] = {}

    def _run(task: str, **kw) -> DesignReport:
        key = task + repr(sorted(kw.items()))
        if key not in cache:
            cache[key] = design(DesignRequest(task=task, **{"llm": "none", **kw}), db_path=db)
        return cache[key]

    return _run
