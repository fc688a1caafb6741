"""The design agent's Python API — what `qkv design`, the TUI and the MCP server call.

    report = design(DesignRequest(task="fine-tune a 7B model for legal summarisation on one 24 GB GPU"))
    for event in stream_design(req, thread_id="t1"):          # StepEvent per step; 'interrupt' asks
        ...
    for event in resume_design("t1", "one RTX 4090"): ...     # answer a question, or resume a crash
    for event in revise("t1", "what if I had two A100s?"): ...  # re-runs only the affected steps

Sessions are checkpointed in SQLite (default `qkv_home()/sessions.sqlite`), so a crashed or
interrupted run resumes where it stopped, from a new process if need be."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from qkv.agent.graph.schemas import DesignReport, StepEvent, ToolCall
from qkv.tools.errors import BadInput
from qkv.tools.knowledge.schema import GPUS_ALIASES, also
from qkv.tools.serve.schema import MAX_GPUS


class DesignRequest(BaseModel):
    """One design request: the task in words, plus options that override what the text says."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(description='the task in words, e.g. "fine-tune a 7B model for legal summarisation on '
                                  'one 24 GB GPU"')
    gpu: str | None = Field(None, description="catalog GPU (`qkv gpus`), or 'gpu-24gib' for any GPU of exactly "
                                              "24 GiB; overrides the text")
    gpus: int | None = Field(None, le=MAX_GPUS, validation_alias=AliasChoices("gpus", *GPUS_ALIASES),
                             json_schema_extra={"minimum": 1},
                             description="number of GPUs; overrides the text" + also(*GPUS_ALIASES))
    model: str | None = Field(None, description="base model: catalog name (`qkv models`), config.json, folder or "
                                                ".gguf; overrides the text")
    corpus: list[str] = Field(default_factory=list, description="corpus sample files for the tokenizer audit")
    llm: str = Field("none", description="who words the prose: 'none' (templates; deterministic, the default), "
                                         "'local' (a local GGUF model) or an OpenAI-compatible URL")
    llm_model: str | None = Field(None, description="with llm 'local': a .gguf path or a bundled alias (smollm2, "
                                                    "gemma3-270m); with a URL: the endpoint's model id; default: "
                                                    "the bundled SmolLM2")
    interactive: bool = Field(False, description="ask for missing decisive facts instead of assuming defaults")

    @field_validator("llm")
    @classmethod
    def _llm(cls, value: str) -> str:
        from qkv.tools.llm.setting import llm_kind

        value = (value or "none").strip()
        llm_kind(value)  # BadInput naming the valid forms
        return value

    @field_validator("llm_model")
    @classmethod
    def _llm_model(cls, value: str | None) -> str | None:
        return (value or "").strip() or None

    @model_validator(mode="after")
    def _llm_model_needs_llm(self) -> DesignRequest:
        if self.llm_model and self.llm == "none":
            raise BadInput(f"--llm-model {self.llm_model!r} is set but --llm is none",
                           expected="--llm local (a .gguf path or bundled alias) or --llm URL (the endpoint's "
                                    "model id) with --llm-model; or no --llm-model")
        return self

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise BadInput(f"--gpus is {value}", expected="a positive integer")
        return value


def default_db_path() -> Path:
    """Where design sessions are checkpointed: QKV_HOME/sessions.sqlite."""
    from qkv.tools.paths import qkv_home

    return qkv_home() / "sessions.sqlite"


@contextmanager
def _graph(db_path: Path | None, interactive: bool = False):
    """A compiled graph bound to a SQLite checkpointer (the connection is closed on exit)."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    from qkv.agent.graph.build import build_graph

    path = Path(db_path) if db_path else default_db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        yield build_graph(SqliteSaver(conn))
    finally:
        conn.close()


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 60}


def _validate_request(req: DesignRequest) -> None:
    """Fail fast, before any checkpoint is written: empty or garbage text, unknown GPU or model."""
    from qkv.agent.graph.intake import parse_task

    parse_task(req.task, gpu=req.gpu, gpus=req.gpus, model=req.model, corpus=req.corpus)
    if req.model:
        from qkv.tools.modelref import resolve_model

        resolve_model(req.model)
    for path in req.corpus:
        if not Path(path).is_file():
            raise BadInput(f"corpus file {path} does not exist", expected="a UTF-8 text or jsonl sample file")
    if req.llm == "local" and req.llm_model:
        from qkv.tools.llm.local import GEMMA_ALIASES, SMOLLM2_ALIASES, resolve_gguf

        if req.llm_model.lower() not in SMOLLM2_ALIASES + GEMMA_ALIASES:
            resolve_gguf(req.llm_model)  # a missing or non-GGUF file fails now, not after five steps


def _next_step(node: str, state: dict[str, Any]) -> str | None:
    """The step that runs after `node`, by the graph's own edges and routing functions."""
    from qkv.agent.graph.build import next_node

    return next_node(node, state)


def _events(graph, payload: Any, config: dict[str, Any]) -> Iterator[StepEvent]:
    """Turn LangGraph's update stream into StepEvents: done (or looped when a step runs again), then
    running for the step that comes next; interrupt when the graph asks a question."""
    state: dict[str, Any] = dict(graph.get_state(config).values or {})
    seen: set[str] = set()
    # durability="sync": each step's checkpoint is on disk before the next step starts, so a crash loses at
    # most the step that was running. The default ("async") saves in the background and, under load, was
    # seen to lose two finished steps; a design step costs milliseconds against one SQLite write.
    for chunk in graph.stream(payload, config, stream_mode="updates", durability="sync"):
        for node, update in chunk.items():
            if node == "__metadata__":  # {"cached": True}: a step's saved writes replayed on resume
                continue
            if node == "__interrupt__":
                for intr in update:
                    value = intr.value if isinstance(intr.value, dict) else {"question": str(intr.value)}
                    yield StepEvent(step="intake", status="interrupt", question=value.get("question"),
                                    field=value.get("field"))
                continue
            update = update or {}
            state.update({k: v for k, v in update.items() if k != "calls"})
            calls = [ToolCall(**c) for c in update.get("calls", [])]
            status = "looped" if node in seen else "done"
            seen.add(node)
            written = {k: v for k, v in update.items() if k != "calls"}
            report = DesignReport.model_validate(update["report"]) if node == "report" else None
            yield StepEvent(step=node, status=status, tool_calls=calls, state=written, report=report)
            nxt = _next_step(node, state)
            if nxt is not None and nxt != node:
                yield StepEvent(step=nxt, status="running")


def stream_design(req: DesignRequest, *, thread_id: str, db_path: Path | None = None) -> Iterator[StepEvent]:
    """Run a design step by step, yielding a StepEvent per update; checkpointed under `thread_id`.

    An 'interrupt' event carries a question (interactive mode): answer it with resume_design()."""
    _validate_request(req)
    with _graph(db_path) as graph:
        yield StepEvent(step="intake", status="running")
        yield from _events(graph, {"request": req.model_dump()}, _config(thread_id))


def resume_design(thread_id: str, answer: str | None = None, *,
                  db_path: Path | None = None) -> Iterator[StepEvent]:
    """Continue a session: answer the pending question, or resume a run that crashed mid-way."""
    from langgraph.types import Command

    with _graph(db_path) as graph:
        config = _config(thread_id)
        snapshot = graph.get_state(config)
        if not snapshot.values:
            raise BadInput(f"no design session '{thread_id}'", expected="a thread id used with stream_design")
        pending = [i for t in snapshot.tasks for i in t.interrupts]
        if pending:
            # Check the answer before LangGraph sees it: a delivered resume value is stored with the paused
            # step and replayed on the next resume, so a failing one would block the session for good.
            # Raising here leaves the question pending; the next resume_design() answers it afresh.
            from qkv.agent.graph.intake import check_answer

            value = pending[0].value if isinstance(pending[0].value, dict) else {}
            if value.get("field"):
                check_answer(str(value["field"]), answer)
            yield from _events(graph, Command(resume=answer or ""), config)
        elif snapshot.next or snapshot.tasks:
            # A crash can land after a step's writes were saved but before the checkpoint that follows them:
            # `next` is then empty while `tasks` still holds the finished step; streaming from None applies its
            # saved writes and goes on without re-running it.
            yield from _events(graph, None, config)
        # else: finished — nothing to resume.


def revise(thread_id: str, change_text: str, *, db_path: Path | None = None) -> Iterator[StepEvent]:
    """A follow-up ('what if I had two A100s?'): re-run only the steps the changed facts affect."""
    from qkv.agent.graph.revise import merge_change
    from qkv.agent.graph.routing import first_affected_step, predecessor

    if not change_text or not change_text.strip():
        raise BadInput("the change is empty", expected='a follow-up such as "what if I had two A100s?"')
    with _graph(db_path) as graph:
        config = _config(thread_id)
        snapshot = graph.get_state(config)
        values = snapshot.values
        if not values or "task" not in values:
            raise BadInput(f"no finished design session '{thread_id}'", expected="a thread id used with "
                                                                                 "stream_design")
        params = (values.get("architecture") or {}).get("params")
        new_task, changed, assumptions = merge_change(values["task"], values.get("assumptions", []),
                                                      change_text, size_hint=params)
        if not changed:
            from qkv.agent.graph.intake import unknown_gpu_mention
            from qkv.agent.graph.revise import UNDERSTOOD, unknown_model_word
            from qkv.tools.errors import UnknownName, closest

            gpu = unknown_gpu_mention(change_text)
            if gpu:
                raise UnknownName(f"no change found in {change_text!r}: '{gpu[0]}' is not a GPU in the catalog",
                                  expected="a catalog GPU (e.g. 'use an rtx-4090', 'two A100s')", choices=gpu[1])
            word = unknown_model_word(change_text)
            if word:
                from qkv.tools.catalog.models import list_models

                raise UnknownName(f"no change found in {change_text!r}: '{word}' is not a model in the catalog",
                                  expected=f"a catalog model (`qkv models`) or another change: {UNDERSTOOD}",
                                  choices=closest(word, [m.name for m in list_models()]))
            raise BadInput(f"no change found in {change_text!r}", expected=UNDERSTOOD)
        step = first_affected_step(changed)
        graph.update_state(config, {"task": new_task, "assumptions": assumptions, "rung": 0,
                                    "changed": sorted(changed)}, as_node=predecessor(step))
        yield StepEvent(step=step, status="running", state={"changed": sorted(changed)})
        yield from _events(graph, None, config)


def get_report(thread_id: str, *, db_path: Path | None = None) -> DesignReport | None:
    """The last finished report of a session, or None."""
    with _graph(db_path) as graph:
        values = graph.get_state(_config(thread_id)).values
    return DesignReport.model_validate(values["report"]) if values.get("report") else None


def design(req: DesignRequest, *, db_path: Path | None = None, thread_id: str | None = None) -> DesignReport:
    """The whole run: request in, design report out (non-interactive: defaults are stated as assumptions).

    With `db_path` the run is checkpointed in that SQLite file under `thread_id` (LangGraph); without,
    the same nodes and routing run in-process with no checkpoint (the fast one-shot path)."""
    if req.interactive:
        req = req.model_copy(update={"interactive": False})
    if db_path is None:
        from qkv.agent.graph.build import run_plain

        _validate_request(req)
        state = run_plain({"request": req.model_dump()})
        return DesignReport.model_validate(state["report"])
    report = None
    tid = thread_id or f"design-{uuid.uuid4().hex}"
    for event in stream_design(req, thread_id=tid, db_path=db_path):
        if event.report is not None:
            report = event.report
    if report is None:  # pragma: no cover - the graph always ends in the report node
        raise BadInput("the design did not finish", expected="a complete run")
    return report
