"""The evaluator's typed contracts: requests in, reports out (the CLI, the agent, the MCP server and the
TUI all use these). Every figure carries its provenance: `measured` (computed here on real data) or
`cited` (a convention taken from a named source)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qkv.tools.sampling import SamplingPolicy

TaskKind = Literal["language-modelling", "summarisation", "translation", "qa", "classification"]
TASK_KINDS: tuple[str, ...] = ("language-modelling", "summarisation", "translation", "qa", "classification")
Provenance = Literal["analytic", "traced", "measured", "cited"]
Backend = Literal["auto", "transformers", "llama-cpp"]


# ----------------------------------------------------------------------------------------------- perplexity
class PerplexityResult(BaseModel):
    """Strided sliding-window perplexity of one text under one model (HF 'Perplexity of fixed-length
    models'). token_ppl depends on the tokenizer; bits_per_byte and word_ppl do not (lm-eval-harness)."""

    model: str = Field("", description="what was scored (path or alias)")
    backend: Literal["transformers", "llama-cpp"] = "transformers"
    tokens: int = Field(description="tokens whose log-likelihood was summed (BOS excluded)")
    token_ppl: float = Field(description="exp(NLL / tokens): tokenizer-dependent")
    nll_sum_nats: float = Field(description="−Σ log p(token | context), natural log")
    bits_per_byte: float = Field(description="NLL / UTF-8 bytes / ln 2 (lm-eval-harness bits_per_byte)")
    word_ppl: float = Field(description="exp(NLL / whitespace words) (lm-eval-harness word_perplexity)")
    bytes: int = Field(description="UTF-8 bytes of the scored text")
    words: int = Field(description="whitespace-separated words of the scored text")
    window: int = Field(description="tokens per forward pass (context length used)")
    stride: int = Field(description="tokens the window advances; = window means non-overlapping chunks")
    windows: int = Field(0, description="forward passes made")
    bos_added: bool = Field(True, description="whether a BOS token was prepended (then every text token is scored)")
    tokenizer: str = Field("", description="tokenizer identity (class / vocabulary size)")
    notes: list[str] = Field(default_factory=list, description="method notes for the report")
    provenance: Provenance = "measured"


class PerplexityRequest(BaseModel):
    """Score a text (or a text file) with a causal LM."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("gemma3-270m", description="model folder, .gguf file, or 'gemma3-270m' (bundled GGUF)")
    text: str | None = Field(None, description="the text to score (or give text_file)")
    text_file: str | None = Field(None, description="a UTF-8 text/jsonl/csv file whose text is scored (or give text)")
    text_field: str = Field("text", description="jsonl/csv field holding the text")
    backend: Backend = Field("auto", description="auto: llama-cpp for .gguf files, transformers otherwise")
    adapter: str | None = Field(None, description="a PEFT LoRA adapter folder (transformers backend)")
    window: int = Field(512, ge=8, le=131072, description="tokens per forward pass (the context each scored token "
                                                          "may see at most)")
    stride: int | None = Field(None, ge=1, description="tokens the window advances (default: window // 2)")
    max_tokens: int | None = Field(None, ge=16, description="score only the first N tokens of the text")


# --------------------------------------------------------------------------------------------------- metrics
class MetricValue(BaseModel):
    """One corpus-level score, with how it was computed."""

    name: str
    value: float = Field(description="the score on the library's own scale (BLEU/chrF 0-100, ROUGE/EM/F1 0-1)")
    scale: str = Field("0-1", description="'0-100' or '0-1'")
    higher_is_better: bool = True
    library: str = Field(description="the implementation used, with version")
    signature: str | None = Field(None, description="sacreBLEU signature / rouge settings: what makes it comparable")
    details: dict[str, float | int | str] = Field(default_factory=dict)
    provenance: Provenance = "measured"


class MetricPlanItem(BaseModel):
    name: str
    why: str
    library: str
    source: str = Field(description="where the convention comes from (paper / reference implementation)")
    comparable_when: str = Field("", description="settings that must match for numbers to be comparable")


class MetricPlan(BaseModel):
    """What to measure for a task kind: perplexity always, plus the task metric the field reports."""

    task: TaskKind
    metrics: list[MetricPlanItem]
    notes: list[str] = Field(default_factory=list)
    provenance: Provenance = "cited"


class ScoreRequest(BaseModel):
    """Score predictions against references (files: .txt one per line, .jsonl, .json list, .csv/.tsv)."""

    model_config = ConfigDict(extra="forbid")

    predictions: str = Field(description="file of system outputs, one per item")
    references: str = Field(description="file of references (jsonl/json may hold a list of references per item)")
    task: TaskKind = Field("summarisation", description="selects the task metric")
    prediction_field: str = Field("prediction", description="jsonl/csv field for predictions")
    reference_field: str = Field("reference", description="jsonl/csv field for references")
    source: str | None = Field(None, description="optional file of sources (enables faithfulness proxies)")
    source_field: str = Field("source", description="jsonl/csv field for sources")
    stemming: bool = Field(True, description="ROUGE: Porter stemming (use_stemmer), as most papers report")
    bleu_tokenize: str | None = Field(None, description="sacreBLEU tokenizer (default 13a; zh, ja-mecab, ...)")
    lowercase: bool = Field(False, description="BLEU: lowercase (changes the signature to case:lc)")


class ItemScore(BaseModel):
    index: int
    scores: dict[str, float]


class FaithfulnessReport(BaseModel):
    """Proxies, not judgements: they flag where a human should look."""

    unsupported_number_rate: float | None = Field(
        None, description="share of numbers in outputs that do not occur in their source")
    unsupported_entity_rate: float | None = Field(
        None, description="share of capitalised named-entity spans in outputs absent from their source")
    numbers: int = 0
    entities: int = 0
    repetition_rate: float = Field(description="share of repeated word 3-grams within each output (mean)")
    distinct_2: float = Field(description="distinct bigrams / all bigrams over all outputs")
    items: int = 0
    label: str = "proxy: heuristic, not a faithfulness judgement"
    method: str = ""
    provenance: Provenance = "measured"


class ScoreReport(BaseModel):
    task: TaskKind
    items: int
    metrics: list[MetricValue]
    per_item: list[ItemScore] = Field(default_factory=list)
    faithfulness: FaithfulnessReport | None = None
    plan: MetricPlan
    notes: list[str] = Field(default_factory=list)
    provenance: Provenance = "measured"

    def metric(self, name: str) -> MetricValue:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)


# ------------------------------------------------------------------------------------------ model evaluation
class ModelEvalRequest(BaseModel):
    """Evaluate a model on a dataset: perplexity of the references and/or generate outputs and score them."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("gemma3-270m", description="model folder, .gguf file, or 'gemma3-270m' (bundled GGUF)")
    data: str = Field(description="dataset file (.jsonl/.json/.csv/.tsv with source/reference fields, or .txt)")
    task: TaskKind = "summarisation"
    backend: Backend = "auto"
    adapter: str | None = Field(None, description="PEFT LoRA adapter folder (transformers backend)")
    source_field: str = "source"
    reference_field: str = "reference"
    prompt_template: str | None = Field(
        None, description="how an item becomes a prompt, with {field} slots (default: a per-task template)")
    limit: int | None = Field(None, ge=1, description="evaluate only the first N items")
    sampling: SamplingPolicy = Field(default_factory=lambda: SamplingPolicy.greedy(max_new_tokens=64))
    force_unbounded: bool = Field(False, description="allow a policy that breaks hard rule 3")
    perplexity: bool = Field(True, description="also compute perplexity over the references")
    generate: bool = Field(True, description="generate outputs and score them with the task metric")
    window: int = Field(512, ge=8, description="perplexity window")
    stride: int | None = Field(None, ge=1, description="perplexity stride (default window // 2)")
    stemming: bool = True
    predictions_out: str | None = Field(None, description="write generated outputs here (.jsonl)")


class ModelEvalReport(BaseModel):
    model: str
    backend: str
    task: TaskKind
    items: int
    sampling: str = Field(description="the decoding policy in effect (SamplingPolicy.describe())")
    perplexity: PerplexityResult | None = None
    scores: ScoreReport | None = None
    predictions_file: str | None = None
    notes: list[str] = Field(default_factory=list)
    provenance: Provenance = "measured"


# ------------------------------------------------------------------------------------------ bias / review
class CounterfactualPair(BaseModel):
    template: str
    text_a: str
    text_b: str
    ppl_a: float
    ppl_b: float
    log_ratio: float = Field(description="ln(ppl_a / ppl_b): > 0 means variant A is less likely")


class CounterfactualReport(BaseModel):
    """Perplexity gap when gendered terms are swapped in a template set (a bias PROXY)."""

    model: str
    pairs: list[CounterfactualPair]
    mean_log_ratio: float = Field(description="mean ln(ppl_a/ppl_b) over pairs (0 = no systematic gap)")
    mean_abs_log_ratio: float
    share_a_preferred: float = Field(description="share of pairs where variant A has lower perplexity")
    groups: tuple[str, str] = ("male", "female")
    label: str = "proxy: perplexity gap on templated sentences, not a measurement of harm"
    provenance: Provenance = "measured"


class ReviewSheet(BaseModel):
    sheet_csv: str
    sheet_html: str
    key_file: str
    items: int
    systems: list[str]
    seed: int


class SystemReview(BaseModel):
    system: str
    rated: int
    faithfulness_mean: float | None
    quality_mean: float | None


class ReviewSummary(BaseModel):
    rows: int
    rated_rows: int
    systems: list[SystemReview]
    provenance: Provenance = "measured"
