"""What every node shares: timed tool calls (durations go to the event stream, never the report), the task,
the list of unavailable tools, and GiB rounding."""

from __future__ import annotations

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
        summary = ""
        try:
            result = fn(*args, **kwargs)
            summary = summarize(result)
            return result
        except Exception as exc:
            summary = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
            raise
        finally:
            self.items.append({"tool": name, "seconds": round(time.perf_counter() - start, 4), "summary": summary})


def summarize(result: Any, width: int = 110) -> str:
    """One line saying what a tool returned (the TUI's tool log): its first few scalar fields."""
    from pydantic import BaseModel

    if isinstance(result, BaseModel):
        result = result.model_dump()
    if isinstance(result, dict):
        parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
                 if (isinstance(v, (str, int, float, bool)) and not isinstance(v, str)) or (isinstance(v, str)
                 and len(v) <= 40)]
        text = ", ".join(parts) if parts else f"{len(result)} fields"
    elif isinstance(result, (list, tuple)):
        text = f"{len(result)} items" + (f": {summarize(result[0], 60)}, …" if result else "")
    elif isinstance(result, float):
        text = f"{result:.4g}"
    else:
        text = str(result)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def task_of(state: dict[str, Any]) -> TaskSpec:
    return TaskSpec.model_validate(state["task"])


def unavailable(state: dict[str, Any], *names: str) -> list[str]:
    """The state's list of unavailable tools plus `names` (sorted, unique: the report stays stable)."""
    return sorted(set(state.get("unavailable") or []) | set(names))

