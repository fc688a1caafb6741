"""Sampling rules (hard rule 3): a recommended decoding policy per task, each setting with its
source, and a checker that flags a policy without a bound (`SamplingPolicy.issues()`) or one that
does not suit its task (sampling for a task scored by exact match, for instance)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from qkv.tools.errors import UnknownName, closest
from qkv.tools.knowledge.schema import Figure, analytic, cited
from qkv.tools.knowledge.tables import load_table
from qkv.tools.sampling import SamplingIssue, SamplingPolicy

# Tasks scored against one reference answer: sampling adds variance, not quality.
DETERMINISTIC_TASKS = ("qa", "classification", "extraction", "translation", "summarisation")
POLICY_FIELDS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "max_new_tokens", "stop",
                 "num_beams", "length_penalty")


class SamplingRecommendation(BaseModel):
    """The decoding policy for a task, why, and the source of each setting."""

    task: str
    policy: SamplingPolicy
    description: str = Field(description="the policy in one line")
    settings: dict[str, Figure] = Field(description="each policy field with its provenance")
    rationale: str
    notes: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


class SamplingCheck(BaseModel):
    """Verdict on a decoding policy: fail breaks hard rule 3, warn is a known quality risk."""

    status: Literal["pass", "warn", "fail"]
    bounded: bool
    description: str
    task: str | None = None
    issues: list[SamplingIssue] = Field(default_factory=list)
    recommended: SamplingPolicy | None = Field(None, description="the task's recommended policy, when a task is given")
    sources: list[str] = Field(default_factory=list)


def _presets() -> dict[str, dict]:
    return load_table("sampling_presets")["tasks"]


def _task_names(schema: dict[str, Any]) -> None:
    """The valid task names as a JSON Schema enum (read from the presets when a schema is built)."""
    names = [n for name, p in _presets().items() for n in (name, *p["aliases"])]
    target = next((s for s in schema.get("anyOf", []) if s.get("type") == "string"), schema)
    target["enum"] = names


TaskName = Annotated[str, Field(
    description="the task: summarisation, chat, code, qa, translation, classification, extraction or creative "
                "(aliases such as 'summarization' or 'question-answering' too; case-insensitive)",
    json_schema_extra=_task_names)]
OptionalTaskName = Annotated[str | None, Field(
    description="the task the policy is for (checks it against that task's preset): summarisation, chat, code, "
                "qa, translation, classification, extraction or creative", json_schema_extra=_task_names)]


def tasks() -> list[str]:
    """The task names with a decoding preset."""
    return list(_presets())


def canonical_task(task: str) -> str:
    """The preset name for a task or alias (case-insensitive); UnknownName with choices otherwise."""
    key = task.strip().lower().replace("_", "-")
    presets = _presets()
    if key in presets:
        return key
    for name, preset in presets.items():
        if key in preset["aliases"]:
            return name
    names = list(presets) + [a for p in presets.values() for a in p["aliases"]]
    raise UnknownName(f"no decoding preset for task '{task}'", expected="a task name",
                      choices=closest(task, names) or list(presets))


def recommend_sampling(task: TaskName) -> SamplingRecommendation:
    """The decoding policy for a task (summarisation, chat, code, qa, translation, classification,
    extraction, creative), with top-p/top-k/temperature/repetition penalty and their sources."""
    name = canonical_task(task)
    preset = _presets()[name]
    policy = SamplingPolicy(**preset["policy"])
    field_sources: dict[str, list[str]] = preset["field_sources"]
    settings: dict[str, Figure] = {}
    for field in POLICY_FIELDS:
        value = getattr(policy, field)
        if field in field_sources:
            settings[field] = cited(value, *field_sources[field])
        elif field in preset["policy"]:
            settings[field] = analytic(value, f"qkv's {name} preset (task-length budget or neutral value)")
        else:
            settings[field] = analytic(value, "SamplingPolicy default (qkv.tools.sampling)")
    sources = sorted({s for ids in field_sources.values() for s in ids})
    return SamplingRecommendation(task=name, policy=policy, description=policy.describe(), settings=settings,
                                  rationale=preset["rationale"], notes=preset["notes"], sources=sources)


def check_sampling(policy: SamplingPolicy, task: OptionalTaskName = None) -> SamplingCheck:
    """Flag a policy without a bound (fail), or risky for its task (warn), against hard rule 3."""
    issues = list(policy.issues())
    name = canonical_task(task) if task else None
    recommended = recommend_sampling(name).policy if name else None
    if name in DETERMINISTIC_TASKS and policy.mode == "sample" and policy.temperature > 0.5:
        issues.append(SamplingIssue(
            level="warn", field="temperature",
            message=f"{name} is scored against a reference: sampling at temperature {policy.temperature:g} adds "
                    f"variance; the preset decodes {recommended.mode if recommended else 'greedily'}"))
    if name == "code" and policy.mode == "sample" and policy.temperature > 0.4 and policy.top_p >= 1.0:
        issues.append(SamplingIssue(level="warn", field="top_p",
                                    message="code sampling without nucleus truncation (Codex used top-p 0.95)"))
    if name == "chat" and policy.mode != "sample":
        issues.append(SamplingIssue(level="warn", field="temperature",
                                    message="deterministic decoding in chat tends to repeat itself; sample with "
                                            "top-p (the preset uses temperature 0.6, top-p 0.9)"))
    levels = {i.level for i in issues}
    status: Literal["pass", "warn", "fail"] = "fail" if "fail" in levels else ("warn" if levels else "pass")
    sources = ["holtzman2020", "fan2018"] + (recommend_sampling(name).sources if name else [])
    return SamplingCheck(status=status, bounded=policy.bounded, description=policy.describe(), task=name,
                         issues=issues, recommended=recommended, sources=sorted(set(sources)))
