"""The TUI's one door into the agent (`qkv.agent.graph.api`): start a design, answer its question,
revise it with a follow-up. Each call yields the graph's StepEvents; the agent (LangGraph, langchain)
is imported on first use inside a worker thread, never at app start-up."""

from __future__ import annotations

from collections.abc import Iterator
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


def design_request(task: str, cfg: DriverConfig):
    api = _api()
    fields = {"task": task, "llm": cfg.llm, "interactive": True, "gpu": cfg.gpu, "gpus": cfg.gpus,
              "model": cfg.base_model, "corpus": cfg.corpus or None,
              # the model that words the report's prose is the one the TUI talks with (--model)
              "llm_model": cfg.model if cfg.llm != "none" else None}
    return api.DesignRequest(**{k: v for k, v in fields.items() if v is not None})


def start(task: str, thread_id: str, cfg: DriverConfig) -> Iterator[Any]:
    api = _api()
    req = design_request(task, cfg)
    yield from api.stream_design(req, thread_id=thread_id, db_path=cfg.db_path)


def answer(thread_id: str, text: str | None, cfg: DriverConfig) -> Iterator[Any]:
    api = _api()
    yield from api.resume_design(thread_id, text, db_path=cfg.db_path)


def revise(thread_id: str, change: str, cfg: DriverConfig) -> Iterator[Any]:
    api = _api()
    yield from api.revise(thread_id, change, db_path=cfg.db_path)


def report_from_json(text: str):
    from qkv.agent.graph.schemas import DesignReport

    return DesignReport.model_validate_json(text)
