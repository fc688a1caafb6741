"""What every node shares: timed tool calls (durations go to the event stream, never the report) and
optional tools (modules other engineers are still landing: missing → stated, never invented)."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

from qkv.agent.graph.schemas import TaskSpec


class Calls:
    """Records each tool call of one node: name, seconds, one-line summary."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def __call__(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.items.append({"tool": name, "seconds": round(time.perf_counter() - start, 4)})


def optional(module: str, attr: str) -> Callable[..., Any] | None:
    """`module.attr` when that tool is installed and importable, else None."""
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def task_of(state: dict[str, Any]) -> TaskSpec:
    return TaskSpec.model_validate(state["task"])


def unavailable(state: dict[str, Any], *names: str) -> list[str]:
    """The state's list of unavailable tools plus `names` (sorted, unique: the report stays stable)."""
    return sorted(set(state.get("unavailable") or []) | set(names))


def gib(nbytes: float) -> float:
    return round(nbytes / 1024**3, 3)
