"""The TUI's one door into the agent (`qkv.agent.graph.api`): start a design, answer its question,
revise it with a follow-up. Each call yields the graph's StepEvents; the agent (LangGraph, langchain)
is imported on first use inside a worker thread, never at app start-up."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel


class DriverConfig(BaseModel):
    llm: str = "none"
    model: str | None = None
    db_path: Path | None = None
    gpu: str | None = None
    gpus: int | None = None
    base_model: str | None = None
    corpus: list[str] = []


def _api():
    from qkv.agent.graph import api

    return api


def _events(result: Any) -> Iterator[Any]:
    """Normalise what an API call returned: an iterator of StepEvents, or a finished report."""
    from qkv.agent.graph.schemas import DesignReport, StepEvent

    if isinstance(result, DesignReport):
        yield StepEvent(step="report", status="done", report=result)
        return
    if isinstance(result, StepEvent):
        yield result
        return
    if isinstance(result, Iterable):
        yield from result
        return
    raise TypeError(f"unexpected result from the agent API: {type(result).__name__}")


def _kwargs(fn, **candidates: Any) -> dict[str, Any]:
    """Pass only the keyword arguments the installed API function accepts."""
    import inspect

    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return candidates
    return {k: v for k, v in candidates.items() if k in params}


def design_request(task: str, cfg: DriverConfig):
    api = _api()
    fields = {"task": task, "llm": cfg.llm, "interactive": True, "gpu": cfg.gpu, "gpus": cfg.gpus,
              "model": cfg.base_model, "corpus": cfg.corpus or None,
              # the model that words the report's prose is the one the TUI talks with (--model)
              "llm_model": cfg.model if cfg.llm != "none" else None}
    known = api.DesignRequest.model_fields
    return api.DesignRequest(**{k: v for k, v in fields.items() if k in known and v is not None})


def start(task: str, thread_id: str, cfg: DriverConfig) -> Iterator[Any]:
    api = _api()
    req = design_request(task, cfg)
    yield from _events(api.stream_design(req, **_kwargs(api.stream_design, thread_id=thread_id,
                                                         db_path=cfg.db_path)))


def answer(thread_id: str, text: str | None, cfg: DriverConfig) -> Iterator[Any]:
    api = _api()
    yield from _events(api.resume_design(thread_id, text, **_kwargs(api.resume_design, db_path=cfg.db_path)))


def revise(thread_id: str, change: str, cfg: DriverConfig) -> Iterator[Any]:
    api = _api()
    yield from _events(api.revise(thread_id, change, **_kwargs(api.revise, db_path=cfg.db_path)))


def report_from_json(text: str):
    from qkv.agent.graph.schemas import DesignReport

    return DesignReport.model_validate_json(text)
