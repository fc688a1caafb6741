"""Typed contracts of the design agent: the task, the report and its sections, the stream events.

The report's top-level keys are a stable contract (`qkv design --json`, the MCP tool, the TUI):
task, assumptions, objective, architecture, efficiency, tokenization, inference, resource_budget,
layer_profile, ethics, checks, training_config. Every number in a section has an entry in that
section's `provenance` map: `analytic | traced | measured | cited: <tool or source>`.
Nothing in the report depends on wall-clock time, so the same request gives byte-identical JSON."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qkv.agent.graph.sections import (
    Architecture,
    Efficiency,
    Ethics,
    Inference,
    LayerProfileSection,
    Objective,
    ResourceBudget,
    Tokenization,
    TrainingConfigSection,
)

CheckStatus = Literal["pass", "warn", "fail", "n/a"]
Mode = Literal["fine-tune", "pre-train", "inference"]


class Stated(BaseModel):
    """One constraint the request states: the field it binds, the value, and the user's own words."""

    field: str
    value: Any
    text: str = Field(description="the words of the request (or the command-line option) it came from")


class TaskSpec(BaseModel):
    """What the user wants, as facts the tools can act on. `None` means 'not stated'.

    `stated` lists every constraint bound from the request with its words; `not_understood` lists what
    looked like a constraint (a number, a device, a unit) but was not bound — never dropped silently."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="the request as the user wrote it")
    objective: str | None = Field(None, description="summarisation, classification, qa, translation, chat, ...")
    domain: str | None = Field(None, description="legal, medical, code, finance, ...")
    mode: Mode = Field("fine-tune", description="fine-tune an existing model, pre-train, or inference only")
    method: Literal["full", "lora", "qlora"] | None = Field(
        None, description="fine-tuning method the user asked for (the ladder starts there)")
    base_model: str | None = Field(None, description="a catalog name, config.json, model folder or .gguf")
    param_budget: float | None = Field(None, description="parameters, e.g. 7e9 for '7B'")
    data_tokens: float | None = Field(None, description="training tokens available or planned")
    compute_flops: float | None = Field(None, description="pre-training compute budget, FLOPs")
    data_examples: int | None = Field(None, description="number of training examples")
    doc_tokens: int | None = Field(None, description="typical document length, tokens")
    max_doc_tokens: int | None = Field(None, description="longest document to handle, tokens")
    gpu: str | None = Field(None, description="catalog GPU name")
    gpus: int | None = Field(None, description="GPU count")
    vram_gib: float | None = Field(None, description="memory per GPU when no GPU name was given, GiB")
    latency_ms: float | None = Field(None, description="target time per generated token, ms")
    throughput_tok_s: float | None = Field(None, description="target generated tokens per second")
    concurrency: int | None = Field(None, description="sequences served at once")
    languages: list[str] = Field(default_factory=list)
    source_lang: str | None = None
    target_lang: str | None = None
    sampling: dict[str, Any] | None = Field(None, description="decoding settings the user stated")
    deploy: bool = Field(False, description="the request mentions serving / deployment")
    corpus: list[str] = Field(default_factory=list, description="corpus sample files for the tokenizer audit")
    constraints: list[str] = Field(default_factory=list)
    # Plan settings the user may state (None: not stated; the steps choose and say so).
    cpu_only: bool = Field(False, description="the request plans for a CPU, no GPU")
    ram_gib: float | None = Field(None, description="host RAM stated, GiB")
    sharding: Literal["none", "ddp", "zero1", "zero2", "zero3", "fsdp"] | None = Field(
        None, description="multi-GPU strategy the user asked for")
    precision: Literal["bf16", "fp16", "fp32"] | None = Field(None, description="training precision stated")
    weights: str | None = Field(None, description="inference weight format stated (bf16, int8, nf4, Q4_K_M, ...)")
    micro_batch: int | None = Field(None, description="micro-batch per GPU stated, sequences")
    grad_accum: int | None = Field(None, description="gradient-accumulation steps stated")
    epochs: int | None = Field(None, description="passes over the training data stated")
    learning_rate: float | None = Field(None, description="peak learning rate stated")
    lora_r: int | None = Field(None, description="LoRA rank stated")
    lora_alpha: int | None = Field(None, description="LoRA alpha stated")
    lora_targets: list[str] | None = Field(None, description="LoRA target modules stated")
    grad_checkpointing: bool | None = Field(None, description="gradient checkpointing stated on or off")
    gpu_hours: float | None = Field(None, description="GPU-time budget stated, GPU-hours")
    wall_hours: float | None = Field(None, description="wall-clock budget stated, hours")
    ttft_ms: float | None = Field(None, description="target time to first token, ms")
    context_extension: str | None = Field(None, description="context-extension method stated (yarn, linear, ...)")
    stated: list[Stated] = Field(default_factory=list, description="every constraint bound, with its words")
    not_understood: list[str] = Field(default_factory=list,
                                      description="phrases that look like constraints but were not bound")


class Assumption(BaseModel):
    """A default taken where the request was silent: which field, what value, why."""

    field: str
    value: Any
    reason: str


class Check(BaseModel):
    rule: str
    status: CheckStatus
    detail: str


class DesignReport(BaseModel):
    """The design report: every decision, every number with its provenance, the three rule checks."""

    task: TaskSpec
    assumptions: list[Assumption]
    objective: Objective
    architecture: Architecture
    efficiency: Efficiency
    tokenization: Tokenization
    inference: Inference
    resource_budget: ResourceBudget
    layer_profile: LayerProfileSection
    ethics: Ethics
    checks: list[Check]
    training_config: TrainingConfigSection
    narrative: dict[str, str] = Field(default_factory=dict, description="prose per section (template or LLM)")
    narrative_source: dict[str, str] = Field(default_factory=dict, description="who worded each section")
    unavailable: list[str] = Field(default_factory=list, description="tools that were not available")

    def to_markdown(self) -> str:
        """The report as Markdown (what `qkv design -o report.md` writes)."""
        from qkv.agent.graph.report_md import render_markdown

        return render_markdown(self)

    def to_html(self) -> str:
        """A self-contained HTML page with an inline SVG memory-breakdown chart."""
        from qkv.agent.graph.report_html import render_html

        return render_html(self)


class ToolCall(BaseModel):
    """One tool call made by a step (durations live here, never in the report)."""

    tool: str
    seconds: float
    summary: str = ""


class StepEvent(BaseModel):
    """One update of a streamed design run (what the TUI renders).

    status: running/done for a step, looped when a step runs again (efficiency ladder, revision),
    interrupt when the graph needs an answer (`question`), error when a step failed (`error`),
    pending for steps announced but not started."""

    step: str
    status: Literal["pending", "running", "done", "looped", "interrupt", "error"]
    tool_calls: list[ToolCall] = Field(default_factory=list)
    state: dict[str, Any] = Field(default_factory=dict, description="the state keys this step wrote")
    question: str | None = None
    field: str | None = None
    error: str | None = None
    report: DesignReport | None = Field(None, description="the finished report (on the final 'report' event)")
