"""The report's sections as typed models: what each design step decides, every number with its provenance.

A section that embeds a tool's own model does so directly (the layer structure, the precision choice, the
memory diagnosis, the catalog's capabilities). Sections reject keys no field takes (`extra="forbid"`), so a
step cannot put a figure in the report that the report would silently drop."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from qkv.tools.catalog.models import Capabilities
from qkv.tools.knowledge.precision import PrecisionChoice
from qkv.tools.knowledge.structure import LayerStructure
from qkv.tools.memory.diagnose import Diagnosis

Num = int | float  # a figure as the tool gave it: an int stays an int in the JSON (the union keeps its type)
ObjectiveKind = Literal["understanding", "generation", "translation"]
ArchFamily = Literal["encoder-only", "decoder-only", "encoder-decoder"]
ContextAction = Literal["ok", "rope_scaling", "sliding_window", "chunking", "long_context_model"]
EfficiencyMethod = Literal["full", "lora", "qlora", "none"]


class Section(BaseModel):
    """A report section whose optional parts are absent from the JSON, not null, when the step did not
    compute them (`OPTIONAL` names them): a reader can tell "not computed" from "computed: none"."""

    model_config = ConfigDict(extra="forbid")  # a key no field takes is a bug, not data to drop

    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _absent_unless_set(self, handler):  # no return annotation: the JSON schema stays the fields'
        data = handler(self)
        for name in self.OPTIONAL - self.model_fields_set:
            data.pop(name, None)
        return data


class Objective(Section):
    """Step 1: what kind of model the task needs, its loss, metrics and the task family's recipe."""

    kind: ObjectiveKind
    architecture: ArchFamily
    task: str = Field(description="the task label the metrics plan is for")
    loss: str
    metrics: list[str]
    metrics_plan: list[dict[str, Any]] = Field(default_factory=list)
    recipe: dict[str, Any] = Field(default_factory=dict, description="the task family's recipe: loss, metrics, "
                                   "baselines, ethics, each with sources (qkv.tools.knowledge.recipes)")
    rationale: str
    provenance: dict[str, str] = Field(default_factory=dict)


class Architecture(Section):
    OPTIONAL = frozenset({"context_caveats"})
    base_model: str
    model_source: str
    params: int
    active_params: int
    context_window: int | None
    required_tokens: int
    train_seq: int = Field(description="tokens per training/serving sequence after the context plan")
    context_action: ContextAction
    context_detail: str
    rope_scaling: dict[str, Any] | None = None
    candidates: list[dict[str, Any]] = Field(default_factory=list, description="models considered and why")
    rationale: str
    capabilities: Capabilities | None = Field(
        None, description="the chosen model's published languages, effective context, variant, licence (sourced)")
    choice_notes: list[str] = Field(default_factory=list, description="capability gaps and relaxed filters")
    context_caveats: list[str] = Field(default_factory=list,
                                       description="what the context plan's method costs (the context tool's caveats)")
    provenance: dict[str, str] = Field(default_factory=dict)


class MemoryBreakdownItem(BaseModel):
    name: str
    gib: float
    formula: str


class Alternative(BaseModel):
    name: str
    total_gib: float
    fits: bool
    tight: bool
    changes: dict[str, Any] = Field(default_factory=dict)


class Efficiency(Section):
    """Step 3: the training method and memory plan chosen on the ladder, its breakdown and alternatives."""

    method: EfficiencyMethod
    strategy: str = Field(description="the ladder rung chosen (or why none)")
    fits: bool
    peak_vram_gib: float | None
    gpu: str
    gpus: int
    usable_gib: float
    sharding: str = "none"
    quantization: str | None = Field(None, description="training-time weight quantisation (QLoRA: nf4)")
    double_quant: bool = False
    grad_checkpointing: bool = False
    micro_batch: int = 1
    grad_accum: int = 1
    breakdown: list[MemoryBreakdownItem] = Field(default_factory=list)
    alternatives: list[Alternative] = Field(default_factory=list)
    what_would_fit: list[str] = Field(default_factory=list, description="when nothing fits: what would")
    stated_plan: Alternative | None = Field(None, description="the user's own plan as stated, evaluated as is")
    departures: list[str] = Field(default_factory=list, description="stated settings the plan had to change")
    diagnosis: Diagnosis | None = Field(
        None, description="the plan's dominant memory terms and targeted fixes (qkv.tools.memory.diagnose)")
    tradeoffs: dict[str, Any] | None = Field(
        None, description="the chosen method weighed against the next cheaper one: rule, options, summary")
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    pretraining: dict[str, Any] | None = None
    warnings: list[str] = Field(default_factory=list)
    provenance: dict[str, str] = Field(default_factory=dict)


class Tokenization(Section):
    """Step 4: the tokenizer audit on the corpus sample, or the plan for one."""

    tokenizer: str
    audited: bool
    corpus: list[str] = Field(default_factory=list)
    results: dict[str, Any] = Field(default_factory=dict)
    plan: list[str] = Field(default_factory=list, description="what to audit when no corpus was given")
    domain_terms: list[str] = Field(default_factory=list)
    recommendation: str
    provenance: dict[str, str] = Field(default_factory=dict)


class Inference(Section):
    """Step 5: weights format, KV cache, peak memory, decoding plan and the serving engine's plan."""

    quantization: str
    gpus: int = 1
    what_would_fit: list[str] = Field(default_factory=list, description="when nothing fits: what would")
    weights_gib: float
    kv_cache_gib: float
    kv_dtype: str
    peak_vram_gib: float
    fits: bool
    context_tokens: int
    concurrency: int
    attention_kernel: str
    sampling: dict[str, Any]
    sampling_policy: str
    sampling_issues: list[dict[str, Any]] = Field(default_factory=list)
    departures: list[str] = Field(default_factory=list, description="stated settings the plan had to change")
    decode_tok_s_upper: float | None = None
    prefill_s_lower: float | None = None
    beams: int = Field(1, description="beams per request: the KV cache holds concurrency × beams sequences")
    serving: dict[str, Any] | None = Field(None, description="the serving engine's plan (qkv.tools.serve "
                                                               "ServingPlan without its request)")
    alternatives: list[Alternative] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    provenance: dict[str, str] = Field(default_factory=dict)


class Pretraining(Section):
    """The pre-training budget: compute-optimal size and tokens (scaling tool), or a fixed size spending
    stated hardware time (budget tool), with the optimizer steps at the recipe's batch."""

    OPTIONAL = frozenset({"budget_flops", "chinchilla_tokens", "used_share", "budget_reason", "budget_provenance",
                          "steps", "warmup_steps", "steps_formula"})
    basis: str
    params: Num
    tokens: Num
    flops: Num
    tokens_per_param: Num
    loss: Num
    training_days: Num | None
    gpu_hours: Num | None
    mfu: Num | None
    proposed_params: Num
    notes: list[str]
    sources: list[str]
    provenance: str
    budget_flops: Num | None = None
    chinchilla_tokens: Num | None = None
    used_share: Num | None = None
    budget_reason: str | None = None
    budget_provenance: dict[str, str] | None = None
    steps: Num | None = None
    warmup_steps: Num | None = None
    steps_formula: str | None = None


class DataBudgetSection(Section):
    """The fine-tuning data budget (qkv.tools.knowledge.budget.data_budget) with the batch it was planned at."""

    examples: int
    tokens_per_example: int
    length_basis: str
    tokens_per_epoch: Num
    epochs: int
    epochs_source: str
    epochs_note: str | None
    steps_per_epoch: Num
    steps: Num
    warmup_steps: Num
    warmup_formula: str
    train_tokens: Num
    train_flops: Num
    hours: Num | None
    micro_batch: int
    grad_accum: int
    dp_gpus: int
    global_batch: int
    recipe_batch: int
    fit_note: str
    notes: list[str]
    sources: list[str]
    provenance: dict[str, str]


class ResourceBudget(Section):
    """Parameters and peak memory for training and inference, with the precision and the budgets."""

    OPTIONAL = frozenset({"pretraining", "precision", "data_budget"})
    params: int
    active_params: int
    train_peak_vram_gib: Num | None
    train_fits: bool | None
    inference_peak_vram_gib: Num
    inference_fits: bool
    gpu: str | None
    gpus: int
    usable_gib_per_gpu: Num | None
    provenance: dict[str, str]
    pretraining: Pretraining | None = None
    precision: PrecisionChoice | None = None
    data_budget: DataBudgetSection | None = None
    inference_breakdown: list[MemoryBreakdownItem] = Field(default_factory=list)


class LayerProfileSection(LayerStructure, Section):
    """The layer profile: the structure read from the config (qkv.tools.knowledge.structure) and, for a
    catalog model, the parameter shares and the attention share at the task's length
    (qkv.tools.knowledge.layer_profile)."""

    OPTIONAL = frozenset({"pattern", "share_attention", "share_mlp", "share_embeddings", "attention_share_of_flops",
                          "crossover_seq", "at_seq", "profile_notes", "profile_provenance"})
    pattern: str | None = None
    share_attention: Num | None = None
    share_mlp: Num | None = None
    share_embeddings: Num | None = None
    attention_share_of_flops: Num | None = None
    crossover_seq: Num | None = None
    at_seq: int | None = None
    profile_notes: list[str] = Field(default_factory=list)
    profile_provenance: str | None = None


class Ethics(Section):
    """The ethical-evaluation plan: hallucination checks, the measures (proxies) and the bias probes, data
    handling, mitigations and baselines, from the evaluator's schema and the task family's recipe."""

    hallucination: list[str]
    proxies: list[dict[str, str]] = Field(description="the evaluator's faithfulness proxies: name, what it measures")
    biased_token_distributions: list[str]
    data: list[str]
    mitigations: list[str]
    baselines: list[str]
    provenance: str


class TrainingConfigSection(Section):
    """The runnable training config (qkv's trainer YAML), or why there is none; for an encoder, the
    transformers TrainingArguments instead."""

    OPTIONAL = frozenset({"reason", "hf_trainer_arguments", "config", "yaml", "derived", "provenance"})
    available: bool
    reason: str | None = None
    hf_trainer_arguments: dict[str, Any] | None = None
    config: dict[str, Any] | None = Field(None, description="qkv.tools.train.config.TrainConfig as a dict")
    yaml: str | None = None
    derived: dict[str, str] | None = Field(None, description="where each value of the config came from")
    provenance: str | None = None
