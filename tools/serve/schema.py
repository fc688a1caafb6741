"""Input and output models of the serving planner (the CLI's --json schema and the MCP schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from qkv.tools.catalog.gpus import GIB

Engine = Literal["vllm", "sglang", "llama.cpp", "transformers"]
ServeWeights = Literal["bf16", "fp16", "fp8", "awq-int4", "gptq-int4", "nf4", "int8",
                       "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0"]
ServeKv = Literal["bf16", "fp16", "fp8", "q8_0", "q4_0"]
Provenance = Literal["analytic", "measured", "cited", "assumed"]
MAX_GPUS = 1024  # the largest deployment the planner takes: 128 nodes of 8
MAX_CONCURRENCY = 100_000


class ServingRequest(BaseModel):
    """A serving deployment to plan: a model on GPUs for a load (users × context) and optional targets."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str = Field(description="catalog name (`qkv models`), config.json, model folder or .gguf")
    gpu: str = Field(description="catalog GPU name (`qkv gpus`) or 'gpu-<N>gib'")
    gpus: int = Field(1, ge=1, le=MAX_GPUS, validation_alias=AliasChoices("gpus", "num_gpus", "gpu_count"),
                      description="GPUs available for serving (also accepted as num_gpus, gpu_count)")
    concurrency: int = Field(1, ge=1, le=MAX_CONCURRENCY,
                             validation_alias=AliasChoices("concurrency", "users", "max_num_seqs"),
                             description="requests served at once (also accepted as users, max_num_seqs)")
    context: int = Field(4096, ge=1, le=10_000_000, validation_alias=AliasChoices("context", "max_model_len"),
                         description="tokens one request holds: prompt + output (also accepted as max_model_len)")
    output_tokens: int = Field(256, ge=1, description="tokens generated per request (part of the context)")
    prompt_tokens: int | None = Field(None, ge=1, description="prompt tokens; default: context - output tokens")
    beams: int = Field(1, ge=1, le=64, description="beam width per request: each beam holds its own KV")
    samples: int = Field(1, ge=1, le=64, description="parallel samples per request (n): each holds its own KV")
    engine: Engine = Field("vllm", description="serving engine profile: vllm, sglang, llama.cpp, transformers")
    weights: ServeWeights | None = Field(None, description="weight format; default: the best the GPU serves that fits")
    kv_dtype: ServeKv | None = Field(None, validation_alias=AliasChoices("kv_dtype", "kv_cache_dtype"),
                                     description="KV-cache format; default: bf16, fp8 when that is what fits")
    tensor_parallel: int | None = Field(None, ge=1, le=64,
                                        validation_alias=AliasChoices("tensor_parallel", "tensor_parallel_size", "tp"),
                                        description="tensor-parallel degree; default: the smallest that fits")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="vLLM's share of GPU memory it may use")
    max_num_batched_tokens: int | None = Field(
        None, ge=1, description="tokens per prefill step (chunked prefill); default: the engine's")
    block_size: int = Field(16, ge=1, le=1024, description="tokens per paged KV block (vLLM default 16)")
    ttft_ms: float | None = Field(None, gt=0, description="time-to-first-token target, ms")
    tpot_ms: float | None = Field(None, gt=0, description="time-per-output-token target, ms (per user)")
    online: bool = Field(False, description="allow fetching a hub config.json")


class _Out(BaseModel):
    """Output models forbid unknown keys too, so a plan read back from JSON is the plan written."""

    model_config = ConfigDict(extra="forbid")


class MemoryItem(_Out):
    """One named slice of one GPU's memory, with the formula and provenance of its figure."""

    name: str
    bytes: int
    gib: float = Field(0.0, description="bytes in GiB (derived from bytes)")
    formula: str
    provenance: Provenance = "analytic"
    source: str = ""

    @model_validator(mode="after")
    def _gib(self) -> MemoryItem:
        self.gib = round(self.bytes / GIB, 3)
        return self


class KvPool(_Out):
    """The paged KV pool of one GPU and what it holds."""

    bytes_per_token: int = Field(description="KV bytes one token takes on one GPU (after the TP split)")
    pool_bytes: int
    blocks: int = Field(description="paged blocks of block_size tokens (0 for a contiguous cache)")
    block_size: int
    tokens: int = Field(description="tokens the pool holds")
    tokens_needed: int = Field(description="tokens the stated load holds per replica (beams/samples included)")
    max_concurrency: int = Field(description="requests of the stated context that fit at once (per deployment)")
    max_context: int = Field(description="longest context per request at the stated concurrency")


class FrontierPoint(_Out):
    context: int
    max_concurrency: int


class ThroughputRow(_Out):
    """Roofline bounds at one concurrency: per-user time per token and aggregate tokens/s."""

    concurrency: int
    tpot_ms: float
    tokens_per_s: float
    fits: bool
    bound: Literal["memory", "compute"]


class TargetCheck(_Out):
    name: Literal["ttft_ms", "tpot_ms"]
    target: float
    bound: float
    met: bool
    levers: list[str] = Field(default_factory=list, description="what would meet a missed target, computed")


class Latency(_Out):
    """Roofline lower bounds on latency (upper bounds on speed) at the planned batch."""

    tpot_ms: float = Field(description="time per output token, ms: bytes read per step ÷ bandwidth + all-reduce")
    ttft_ms: float = Field(description="time to first token for the prompt, ms: FLOPs ÷ peak (attention included)")
    decode_bytes_per_step: int = Field(description="bytes one GPU reads per decode step (weights + KV)")
    allreduce_ms: float = Field(description="tensor-parallel all-reduce time per decode step, ms")
    prefill_flops: float
    attention_flop_share: float = Field(description="share of prefill FLOPs in attention scores")
    tokens_per_s: float = Field(description="aggregate decode tokens/s at the stated concurrency")
    formulas: dict[str, str] = Field(default_factory=dict)


class Option(_Out):
    """One configuration the planner tried, and why it was or was not chosen."""

    label: str
    fits: bool
    meets_targets: bool
    reason: str


class ServingPlan(_Out):
    """How to serve a model on given GPUs: the chosen layout, each GPU's memory, the roofline bounds."""

    request: ServingRequest
    model: str
    engine: Engine
    gpu: str
    gpu_display: str
    tensor_parallel: int
    pipeline_parallel: int
    replicas: int = Field(description="independent copies (data parallel) over the GPUs")
    gpus_used: int
    weights: str
    kv_dtype: str
    prefill_tokens_per_step: int = Field(description="max tokens prefilled per engine step (the workspace bound)")
    sequences_per_request: int = Field(description="KV sequences one request holds (beams or samples)")
    per_gpu: list[MemoryItem] = Field(description="one GPU's memory: weights, KV pool, workspace, overheads")
    usable_bytes: int = Field(description="the GPU memory the engine may use")
    usable_gib: float = Field(0.0, description="usable_bytes in GiB (derived)")
    kv: KvPool | None = Field(None, description="None for an encoder: no KV cache")
    fits: bool
    latency: Latency | None = None
    throughput: list[ThroughputRow] = Field(default_factory=list)
    frontier: list[FrontierPoint] = Field(default_factory=list)
    targets: list[TargetCheck] = Field(default_factory=list)
    tried: list[Option] = Field(default_factory=list)
    decoding: str = Field(description="what the decoding plan holds, or why there is none")
    notes: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _usable_gib(self) -> ServingPlan:
        self.usable_gib = round(self.usable_bytes / GIB, 3)
        return self

    def item(self, name: str) -> MemoryItem | None:
        return next((m for m in self.per_gpu if m.name == name), None)
