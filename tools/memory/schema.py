"""Input and output models of the memory estimator (the CLI's --json schema and the MCP schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, computed_field, model_validator

from qkv.tools.memory.dtypes import KvFormat, WeightFormat

GIB = 1024**3
GB = 1e9

Method = Literal["full", "lora", "qlora", "inference"]
Precision = Literal["fp32", "bf16-mixed", "fp16-mixed", "bf16", "fp16"]
Optimizer = Literal["adamw", "adamw-8bit", "paged-adamw", "paged-adamw-8bit", "sgd", "adafactor"]
Sharding = Literal["none", "ddp", "zero1", "zero2", "zero3", "fsdp", "fsdp2"]
Zero2Accounting = Literal["deepspeed", "paper"]
Offload = Literal["none", "optimizer", "optimizer+params"]
Attention = Literal["sdpa", "flash", "eager"]


def to_gib(nbytes: float) -> float:
    """Bytes in GiB, rounded to 3 decimals (1 MiB): how every report and table states memory."""
    return round(nbytes / GIB, 3)


class MemoryRequest(BaseModel):
    """One training or inference job to size. Every field has the default a careful user would pick."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str = Field(description="catalog name, config.json, model folder, .gguf, or hub id (online)")
    method: Method = Field("full", description="full fine-tune, LoRA, QLoRA, or inference")
    batch: int = Field(1, validation_alias=AliasChoices("batch", "batch_size", "micro_batch_size",
                                                           "per_device_train_batch_size"),
                       json_schema_extra={"minimum": 1},
                       description="micro-batch size per GPU, sequences (also accepted as batch_size, "
                                   "micro_batch_size, per_device_train_batch_size)")
    seq: int = Field(2048, validation_alias=AliasChoices("seq", "seq_len", "seq_length", "sequence_length",
                                                         "max_seq_length"),
                     json_schema_extra={"minimum": 1},
                     description="tokens per sequence (training) or held in the KV cache (inference) (also "
                                 "accepted as seq_len, seq_length, sequence_length, max_seq_length)")
    grad_accum: int = Field(1, validation_alias=AliasChoices("grad_accum", "gradient_accumulation_steps"),
                            json_schema_extra={"minimum": 1},
                            description="gradient-accumulation steps; grads persist between micro-steps (also "
                                        "accepted as gradient_accumulation_steps)")
    precision: Precision = Field(
        "bf16", description="fp32; bf16-mixed/fp16-mixed = AMP with fp32 master weights; bf16/fp16 = pure 16-bit")
    optimizer: Optimizer = Field(
        "adamw", description="adamw; adamw-8bit (bitsandbytes, 1 B per state value); paged-adamw / paged-adamw-8bit "
                             "(bitsandbytes paged: the states of tensors of 100k+ elements live in CUDA unified "
                             "memory, evicted to host RAM under pressure, paged back tensor by tensor in the step); "
                             "sgd (momentum); adafactor (factored second moment)")
    foreach: bool = Field(True, description="torch AdamW's multi-tensor path (CUDA default): a state-sized temporary")
    grad_checkpointing: bool | None = Field(
        None, validation_alias=AliasChoices("grad_checkpointing", "gradient_checkpointing"),
        description="recompute activations in backward (also accepted as gradient_checkpointing); "
                    "unset: on for qlora, as peft's prepare_model_for_kbit_training turns it on, off otherwise")
    attention: Attention = Field("sdpa", description="sdpa/flash keep O(seq) memory; eager stores seq×seq scores")
    lora_r: int = Field(8, json_schema_extra={"minimum": 1}, description="LoRA rank")
    lora_alpha: int | None = Field(None, description="LoRA alpha (scales the update by alpha / r)")
    lora_targets: list[str] | None = Field(
        None, validation_alias=AliasChoices("lora_targets", "target_modules"),
        description="module names, or ['all-linear']; unset = PEFT's default (also accepted as target_modules)")
    lora_dropout: float = Field(0.0, json_schema_extra={"minimum": 0, "exclusiveMaximum": 1},
                                description="LoRA dropout probability")
    adapter_dtype: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="PEFT upcasts adapters to fp32")
    quant_double: bool = Field(True, description="QLoRA double quantisation (4.127 vs 4.5 bits/weight)")
    bnb_saves_input: bool = Field(
        False, description="bitsandbytes before 0.50 kept each 4-bit matmul's input for backward (litgpt's 0.41 did)")
    kbit_fp32_upcast: bool = Field(
        True, description="peft.prepare_model_for_kbit_training casts non-quantised params to fp32")
    weights: WeightFormat | None = Field(None, description="inference weight format; default: the precision's dtype")
    kv_dtype: KvFormat = Field("bf16", validation_alias=AliasChoices("kv_dtype", "kv_cache_dtype"),
                               description="KV-cache format (also accepted as kv_cache_dtype)")
    prefill_chunk: int | None = Field(None, description="tokens per prefill step (None = whole prompt at once)")
    gpus: int = Field(1, validation_alias=AliasChoices("gpus", "num_gpus", "n_gpus", "gpu_count"),
                      json_schema_extra={"minimum": 1},
                      description="number of GPUs (also accepted as num_gpus, n_gpus, gpu_count)")
    sharding: Sharding = Field(
        "none", description="multi-GPU strategy; 'none' is one GPU, or ddp when gpus > 1; fsdp = FSDP1 (flat "
                            "parameters, one layer gathered); fsdp2 = torch fully_shard (per-parameter dim-0 shards, "
                            "the current and the prefetched layer gathered, one reduce-scatter in flight)")
    zero2_accounting: Zero2Accounting = Field(
        "deepspeed", description="ZeRO-2 model states under bf16/fp16-mixed: 'deepspeed' = DeepSpeed's estimator "
                                 "2Ψ + 18Ψ/N (it partitions an fp32 gradient copy too), 'paper' = the ZeRO paper's "
                                 "2Ψ + 14Ψ/N (K = 12)")
    offload: Offload = Field("none", description="DeepSpeed ZeRO offload of optimizer states (and parameters)")
    gpu: str | None = Field(None, description="GPU to check the fit against: a name from the GPU catalog, or "
                                              "'gpu-24gib' for any GPU of exactly 24 GiB")
    gpu_memory_gib: float | None = Field(
        None, json_schema_extra={"exclusiveMinimum": 0},
        description="memory of a GPU not in the catalog, GiB (the same as gpu 'gpu-<N>gib'); give gpu or this")
    cuda_context_gib: float = Field(0.5, description="CUDA context + library kernels (assumed; see docs)")
    fragmentation: float = Field(0.05, description="caching-allocator reserve over allocated bytes (assumed)")
    context_extension: str | None = Field(
        None, description="stated way past the window (linear, dynamic, yarn, longrope, llama3, sliding, alibi)")
    loss_chunk: int | None = Field(
        None, description="chunked / fused linear cross-entropy, tokens per chunk (Liger, Cut Cross-Entropy, "
                          "Unsloth): the (tokens × vocab) fp32 log-probs and their gradient never materialise; "
                          "None = the standard loss")
    offload_activations: bool = Field(
        False, description="saved activations live in host RAM during backward (torch save_on_cpu, torchtune's "
                           "activation offloading): the GPU keeps two layers' worth, the host holds the rest")
    optimizer_in_bwd: bool = Field(
        False, description="the optimizer step runs inside backward, per parameter (torchtune's optimizer_in_bwd): "
                           "gradients never all live at once; needs no gradient accumulation")
    online: bool = Field(False, description="allow fetching a hub config.json (off: nothing is downloaded)")

    @model_validator(mode="after")
    def _check(self) -> MemoryRequest:
        from qkv.tools.errors import BadInput

        if self.grad_checkpointing is None:
            self.grad_checkpointing = self.method == "qlora"
        if self.gpu_memory_gib is not None:
            if self.gpu:
                raise BadInput(f"both gpu '{self.gpu}' and gpu_memory_gib {self.gpu_memory_gib:g}",
                               expected="one of them: a catalog GPU, or the memory of a GPU not in it")
            from qkv.tools.catalog.gpus import stated_device

            # 'gpu-<N>gib' carries the memory from here on, so a re-validated copy is not "both".
            self.gpu, self.gpu_memory_gib = stated_device("gpu", self.gpu_memory_gib), None
        if self.loss_chunk is not None and self.loss_chunk <= 0:
            raise BadInput(f"--loss-chunk is {self.loss_chunk}", expected="a positive number of tokens, e.g. 1024")
        if self.optimizer_in_bwd and self.grad_accum > 1:
            raise BadInput("optimizer_in_bwd with gradient accumulation",
                           expected="grad_accum 1: the step inside backward cannot wait for more micro-batches")
        for name in ("batch", "seq", "grad_accum", "gpus", "lora_r"):
            value = getattr(self, name)
            if value <= 0:
                raise BadInput(f"--{name.replace('_', '-')} is {value}", expected="a positive integer")
        if not 0 <= self.lora_dropout < 1:
            raise BadInput(f"--lora-dropout is {self.lora_dropout}", expected="a probability in [0, 1)")
        if not 0 <= self.fragmentation < 1:
            raise BadInput(f"fragmentation is {self.fragmentation}", expected="a fraction in [0, 1)")
        if self.cuda_context_gib < 0:
            raise BadInput(f"cuda context is {self.cuda_context_gib} GiB", expected="zero or more")
        if self.sharding == "none" and self.gpus > 1 and self.method != "inference":
            self.sharding = "ddp"
        if self.method == "inference" and self.sharding in ("zero1", "zero2"):
            raise BadInput(f"--sharding {self.sharding} shards optimizer state, which inference does not have",
                           expected="none, zero3, fsdp or fsdp2 (weights split over GPUs) for inference")
        if self.offload != "none" and self.sharding not in ("zero1", "zero2", "zero3"):
            raise BadInput(f"--offload {self.offload} needs DeepSpeed ZeRO", expected="--sharding zero1/zero2/zero3")
        if self.offload == "optimizer+params" and self.sharding != "zero3":
            raise BadInput("parameter offload needs ZeRO-3", expected="--sharding zero3")
        return self


class MemoryTerm(BaseModel):
    """One named component of the peak, with the formula that produced it."""

    name: str
    bytes: int
    formula: str
    provenance: Literal["analytic", "traced", "measured", "cited"] = "analytic"
    note: str | None = None

    @computed_field
    @property
    def gib(self) -> float:
        return to_gib(self.bytes)

    @computed_field
    @property
    def gb(self) -> float:
        return round(self.bytes / GB, 3)


class GpuFit(BaseModel):
    """The verdict on one GPU."""

    gpu: str
    usable_bytes: int
    fits: bool
    headroom_bytes: int = Field(description="usable - total; negative when it does not fit")

    @computed_field
    @property
    def usable_gib(self) -> float:
        return to_gib(self.usable_bytes)

    @computed_field
    @property
    def headroom_gib(self) -> float:
        return to_gib(self.headroom_bytes)


class MemoryEstimate(BaseModel):
    """Peak per-GPU memory of one job: the allocated tensor bytes at the peak, broken down, plus the
    CUDA context and allocator reserve that a GPU's total also holds."""

    request: MemoryRequest
    model: str
    params: int
    trainable_params: int
    peak_phase: str = Field(description="where the peak happens: forward/backward, optimizer step, or inference")
    terms: list[MemoryTerm] = Field(description="the components of the allocated peak")
    overhead: list[MemoryTerm] = Field(description="CUDA context and allocator reserve (not tensor bytes)")
    allocated_bytes: int = Field(description="peak of live tensor bytes (compare torch.cuda.max_memory_allocated)")
    total_bytes: int = Field(description="allocated + allocator reserve + CUDA context (compare nvidia-smi)")
    fit: GpuFit | None = None
    host_bytes: int = Field(0, description="host (CPU) RAM the job needs beyond the GPU: offloaded activations and "
                                           "paged optimizer state")
    warnings: list[str] = Field(default_factory=list)
    provenance: Literal["analytic"] = "analytic"

    def term_bytes(self, name: str) -> int:
        """Bytes of the named term ("weights", "KV cache", ...); 0 when the estimate has no such term."""
        return next((t.bytes for t in self.terms if t.name == name), 0)

    @property
    def decode_read_bytes(self) -> int:
        """Bytes one memory-bound decode step reads: every weight and the whole KV cache, once."""
        return self.term_bytes("weights") + self.term_bytes("KV cache")

    @computed_field
    @property
    def allocated_gib(self) -> float:
        return to_gib(self.allocated_bytes)

    @computed_field
    @property
    def allocated_gb(self) -> float:
        return round(self.allocated_bytes / GB, 3)

    @computed_field
    @property
    def total_gib(self) -> float:
        return to_gib(self.total_bytes)

    @computed_field
    @property
    def total_gb(self) -> float:
        return round(self.total_bytes / GB, 3)
