"""Step 0, intake: the request → a TaskSpec. Interactive runs ask for missing decisive facts
(LangGraph `interrupt`); command-line runs take stated defaults, listed as assumptions."""

from __future__ import annotations

from typing import Any

from qkv.agent.graph.intake import apply_answer, apply_defaults, decisive_gaps, parse_task
from qkv.agent.graph.nodes.common import Calls


def intake_node(state: dict[str, Any]) -> dict[str, Any]:
    req = state["request"]
    calls = Calls()
    task = calls("intake.parse_task", parse_task, req["task"], gpu=req.get("gpu"), gpus=req.get("gpus"),
                 model=req.get("model"), corpus=req.get("corpus") or None)
    missing: list[str] = []
    if req.get("llm", "none") != "none" and decisive_gaps(task):
        task = _llm_fill(task, req["llm"], calls, missing, req.get("llm_model"))
    if req.get("interactive"):
        from langgraph.types import interrupt

        from qkv.tools.errors import QkvError

        for field, question in decisive_gaps(task):
            ask = question
            while True:  # resume_design() checks answers first; this only guards other callers of the graph
                answer = interrupt({"question": ask, "field": field})  # resumes with the user's answer
                try:
                    task = apply_answer(task, field, str(answer or ""))
                    break
                except QkvError as exc:
                    # Failing here would leave the bad answer stored with this step and replayed on every
                    # resume; asking again (a new interrupt) lets the next answer through.
                    ask = f"That answer did not work: {exc} {question}"
    filled = [f for f in ("gpu", "gpus", "base_model", "param_budget")
              if getattr(task, f) is not None and not any(x.field == f for x in task.stated)]
    task, assumptions = apply_defaults(task)
    from qkv.agent.graph.schemas import Assumption

    # The language model only fills what the rules left empty; what it filled is an assumption, never 'stated'.
    assumptions = [Assumption(field=f, value=getattr(task, f), reason="read by the language model from the request")
                   for f in filled if any("filled by the language model" in c for c in task.constraints)] + assumptions
    return {"task": task.model_dump(), "assumptions": [a.model_dump() for a in assumptions],
            "unavailable": sorted(set(missing)), "rung": 0, "calls": calls.items}


def _llm_fill(task, llm: str, calls: Calls, missing: list[str], llm_model: str | None = None):
    """Ask a language model for the missing fields only (schema-constrained JSON), then validate them
    with the same rules; anything the rules reject is dropped."""
    from pydantic import BaseModel, Field

    from qkv.agent.graph.intake import parse_fields
    from qkv.tools.llm.extract import extract

    class Gaps(BaseModel):
        gpu: str = Field("", max_length=40, description="the GPU named in the text, copied from it, or empty")
        model: str = Field("", max_length=40, description="the model name or size named in the text, copied "
                                                          "from it, or empty")

    def rules(text: str) -> dict[str, Any]:
        found = parse_fields(text)
        model = found.get("base_model") or (f"{found['param_budget'] / 1e9:g}B" if found.get("param_budget") else None)
        return {"gpu": found.get("gpu"), "model": model}

    try:
        from qkv.tools.llm.setting import open_setting

        backend = open_setting(llm, model=llm_model)
        try:
            got = calls("llm.extract", extract, backend, task.text, Gaps, rules)
        finally:
            backend.close()
    except Exception as exc:  # a model is only a helper here: the rules' result stands
        missing.append(f"llm gap-filling ({type(exc).__name__})")
        return task
    update: dict[str, Any] = {}
    # A proposal counts only if it is grounded in the text (small models copy examples and invent), and
    # it is re-read by the same rules: a name the catalog does not know is dropped.
    proposals = [v for v in (got.gpu, got.model) if v and grounded(v, task.text)]
    rejected = [v for v in (got.gpu, got.model) if v and v not in proposals]
    found = parse_fields(" ".join(proposals))
    if not task.gpu and found.get("gpu"):
        update["gpu"], update["gpus"] = found["gpu"], task.gpus or found.get("gpus")
    if not task.base_model and not task.param_budget:
        if found.get("base_model"):
            update["base_model"] = found["base_model"]
        elif found.get("param_budget"):
            update["param_budget"] = found["param_budget"]
    notes = list(task.constraints)
    if update:
        notes.append("filled by the language model: " + ", ".join(sorted(update)))
    if rejected:
        notes.append("ignored language-model proposals not found in the text: " + ", ".join(rejected))
    return task.model_copy(update={**update, "constraints": notes})


def grounded(value: str, text: str) -> bool:
    """Every word of `value` (letters/digits, 2+ characters) occurs in `text`, ignoring case and separators."""
    import re

    flat = re.sub(r"[\s\-_]+", "", text.lower())
    words = [w for w in re.findall(r"[a-z0-9.]+", value.lower()) if len(w) >= 2]
    return bool(words) and all(w in flat for w in words)
