"""The auditor's contract: one pydantic request in, one pydantic report out (CLI, agent, MCP and TUI share it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

Provenance = Literal["measured", "analytic", "cited", "rule"]
Action = Literal["keep", "extend", "adapter"]


# Tokenizers that ship with qkv (tools.tokenizer.load.shipped_names, plus its short aliases); a test keeps
# this description in step with them.
SHIPPED_TOKENIZERS = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "qwen2.5-0.5b", "qwen2.5-7b", "qwen2.5-72b",
                      "gemma-3-270m", "bert-base-uncased", "bert-large-uncased", "smollm2-135m")


class AuditRequest(BaseModel):
    """What to audit: tokenizers (catalog names, tokenizer.json / folders, .gguf, .tiktoken, .model files,
    or hub ids with online=True) over a corpus (files, folders, globs, JSONL/CSV, a saved `datasets`
    dataset)."""

    model_config = ConfigDict(extra="forbid")

    tokenizers: list[str] = Field(
        min_length=1, description="tokenizers to compare, the first is the base: shipped names ("
        + ", ".join(SHIPPED_TOKENIZERS) + "), or a tokenizer.json, tokenizer folder, .gguf, .tiktoken or "
        "SentencePiece .model file")
    corpus: list[str] = Field(min_length=1, description="corpus files, folders or glob patterns (.txt, .jsonl, "
                                                        ".csv, or a saved datasets folder)")
    terms: str | None = Field(None, description="file of terms of art, one per line, scored on their own")
    sample: int | None = Field(None, ge=1, description="audit at most this many documents (fixed seed)")
    context_window: int | None = Field(None, ge=1, validation_alias=AliasChoices("context_window", "context_length"),
                                       description="window to check documents against (tokens); default: the "
                                       "model's own window when known (also accepted as context_length)")
    column: str | None = Field(None, description="JSONL/CSV/dataset text column (default: 'text', or the "
                               "only string column)")
    online: bool = Field(False, description="allow loading tokenizers from the Hugging Face hub")
    extend: bool = Field(True, description="really extend each tokenizer with its proposed tokens and re-measure")
    max_new_tokens: int = Field(500, ge=0, description="at most this many tokens proposed for extension")
    min_count: int = Field(5, ge=1, description="a word must occur this often to be proposed as a token")
    extend_min_saving: float = Field(0.05, ge=0, le=1, description="rule: recommend extension when it shortens "
                                     "the corpus by at least this share of tokens")
    adapter_fertility: float = Field(1.5, gt=0, description="rule: recommend a domain adapter when fertility stays "
                                     "at or above this and extension would not pay")
    top_words: int = Field(20, ge=0, description="how many most-fragmented frequent words to list")


class MetricDefinition(BaseModel):
    """What a reported number means and where the definition comes from."""

    name: str
    definition: str
    source: str
    provenance: Provenance


class DocLengths(BaseModel):
    """Tokens per document (no special tokens added)."""

    mean: float
    median: float
    p95: float
    max: int


class FragmentedWord(BaseModel):
    """A frequent corpus word and how the tokenizer splits it."""

    word: str
    count: int
    pieces: list[str]
    n_pieces: int
    excess_tokens: int = Field(description="count x (n_pieces - 1): tokens saved if the word were one token")


class TermPieces(BaseModel):
    term: str
    pieces: list[str]
    n_pieces: int


class TermScore(BaseModel):
    """Terms of art scored on their own (each encoded as in running text, after a space)."""

    n_terms: int
    pieces_per_term: float
    share_split_3plus: float = Field(description="share of terms split into >= 3 pieces")
    terms: list[TermPieces]


class ContextFlag(BaseModel):
    """Which documents no longer fit the context window with this tokenizer."""

    tokenizer: str
    window: int | None
    window_source: str | None
    docs_over: int = 0
    share_over: float = 0.0
    median_doc_tokens: float = 0.0
    typical_fits: bool = Field(True, description="False when the median document exceeds the window")
    docs_over_after_extension: int | None = None
    note: str = ""


class ExtensionResult(BaseModel):
    """The tokenizer really extended with the proposed tokens, then the corpus re-encoded."""

    added: int
    tokens: list[str] = Field(description="the new tokens (words), most savings first")
    method: str = Field(description="how the tokens were added to the copy")
    tokens_before: int
    tokens_after: int
    sequence_saving: float = Field(description="1 - tokens_after / tokens_before (measured)")
    fertility_before: float
    fertility_after: float
    pcw_before: float
    pcw_after: float
    chars_per_token_after: float
    terms_pieces_after: float | None = None
    new_embedding_rows: int
    hidden_size: int | None = None
    new_trainable_params: int | None = Field(None, description="new input rows (+ output rows when untied) x hidden")
    cost: str


class Recommendation(BaseModel):
    """The decision for one tokenizer, by explicit rule over measured numbers."""

    tokenizer: str
    action: Action
    n_tokens: int = 0
    reason: str
    rule: str
    provenance: Provenance = "rule"


class TokenizerMetrics(BaseModel):
    """Everything measured for one tokenizer on the corpus."""

    name: str
    kind: Literal["hf-tokenizers", "tiktoken", "sentencepiece"]
    algorithm: str
    source: str
    vocab_size: int
    documents: int
    words: int
    characters: int
    bytes: int
    tokens: int
    fertility: float
    pcw: float
    chars_per_token: float
    bytes_per_token: float
    unk_tokens: int
    unk_rate: float
    byte_fallback_tokens: int
    byte_fallback_rate: float
    inflation: float = Field(1.0, description="tokens / tokens of the best tokenizer compared")
    doc_tokens: DocLengths
    fragmented: list[FragmentedWord]
    terms: TermScore | None = None
    extension: ExtensionResult | None = None
    context: ContextFlag
    recommendation: Recommendation
    provenance: Provenance = "measured"


class RankRow(BaseModel):
    rank: int
    tokenizer: str
    tokens: int
    inflation: float
    fertility: float
    pcw: float
    chars_per_token: float


class Skip(BaseModel):
    path: str
    reason: str


class CorpusStats(BaseModel):
    """What was read: documents, bytes, and every input skipped with its reason."""

    sources: list[str]
    documents: int
    bytes: int
    characters: int
    words: int
    distinct_words: int
    sampled: bool
    skipped: list[Skip] = Field(default_factory=list)


class AuditReport(BaseModel):
    """Per-tokenizer metrics, a side-by-side ranking, the recommendation and the context-window flags."""

    corpus: CorpusStats
    tokenizers: list[TokenizerMetrics]
    ranking: list[RankRow]
    best: str
    recommendation: Recommendation = Field(description="the decision for the base (first) tokenizer")
    recommendations: list[Recommendation]
    context_flags: list[ContextFlag]
    definitions: list[MetricDefinition]
    plot: dict[str, Any] = Field(description="column-oriented series for plotting (one entry per tokenizer)")
    provenance: Provenance = "measured"
