"""Result models of the trainer (the CLI's --json schema and the MCP tool schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from qkv.tools.memory.schema import MemoryRequest


class MemoryCheck(BaseModel):
    """Measured peak memory of the run next to qkv's estimate for the same config."""

    measured_bytes: int = Field(description="peak measured during training")
    measured_kind: Literal["cuda_max_allocated", "cpu_peak_rss"] = Field(
        description="cuda_max_allocated compares with predicted_allocated_bytes; cpu_peak_rss is the whole "
                    "process (Python, torch, tokenizer, data) and so sits above any tensor-byte estimate")
    predicted_allocated_bytes: int | None = Field(None, description="estimator: peak live tensor bytes")
    predicted_total_bytes: int | None = Field(None, description="estimator: + allocator reserve + CUDA context")
    measured_over_predicted: float | None = Field(None, description="measured / predicted allocated")
    request: MemoryRequest | None = Field(None, description="the estimator request built from the training config")
    fits_gpu: bool | None = Field(None, description="the estimator's verdict on run.gpu, when one is set")
    note: str = ""
    provenance: Literal["measured"] = "measured"


class TrainSummary(BaseModel):
    """What one `qkv train` run did and measured."""

    output_dir: str
    method: Literal["full", "lora", "qlora"]
    model: str
    status: Literal["finished", "interrupted"] = Field(description="interrupted: Ctrl-C saved a checkpoint and stopped")
    steps: int = Field(description="optimizer steps completed (global step)")
    max_steps: int
    resumed_from: str | None = Field(None, description="checkpoint the run resumed from")
    last_checkpoint: str | None = None
    params: int
    trainable_params: int
    train_sequences: int
    eval_sequences: int
    tokens_seen: int = Field(description="non-padding input tokens processed (all steps, resumed included)")
    final_loss: float | None = None
    eval_loss: float | None = None
    tokens_per_s: float | None = Field(None, description="median training throughput over logged steps (this process)")
    wall_s: float = Field(description="seconds this process spent training (excludes model loading)")
    adapter_dir: str | None = Field(None, description="adapter (LoRA/QLoRA) or full weights, safetensors")
    memory: MemoryCheck | None = None
    processes: int = Field(1, description="processes that trained together (accelerate launch / torchrun world size)")
    rank: int = Field(0, description="this process's rank; rank 0 writes the run's files (summary.json, adapter)")
    notes: list[str] = Field(default_factory=list)
    provenance: Literal["measured"] = "measured"


class PerplexityPoint(BaseModel):
    """Held-out perplexity at one point of the pilot (through qkv.tools.evaluate.perplexity_of)."""

    token_ppl: float
    bits_per_byte: float
    tokens: int


class PilotResult(BaseModel):
    """A pilot: N steps on a sample, with held-out perplexity before and after."""

    steps: int
    heldout_source: str
    before: PerplexityPoint
    after: PerplexityPoint | None = Field(description="None when the pilot was interrupted (Ctrl-C)")
    improved: bool = Field(description="after.token_ppl < before.token_ppl")
    ppl_ratio: float | None = Field(description="after / before token perplexity")
    summary: TrainSummary
    provenance: Literal["measured"] = "measured"
