"""The training config: one YAML file the agent writes and a user edits, validated by pydantic.

Every field's description states its trade-off; `to_yaml` writes those descriptions as comments, so
the file a user opens teaches what each knob costs. Validation here is pure (no torch, no files);
`qkv.tools.train.preflight` adds the checks that look at the machine and the data, still before any
model loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qkv.tools.errors import BadInput, closest

Method = Literal["full", "lora", "qlora"]
DataFormat = Literal["text", "prompt_response", "chat"]
Optimizer = Literal["adamw", "adamw-8bit", "paged-adamw", "paged-adamw-8bit"]
Schedule = Literal["cosine", "linear", "constant", "constant_with_warmup"]
Attention = Literal["sdpa", "eager", "flash_attention_2"]
DType = Literal["float32", "bfloat16", "float16"]
LossKind = Literal["standard", "chunked"]
LossBackend = Literal["auto", "torch", "cut-cross-entropy", "liger"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, data: Any) -> Any:
        """YAML `true` for a number (`micro_batch: true`) is a mistake, not 1: refuse it by name."""
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if isinstance(value, bool) and field is not None and field.annotation in (int, float, int | None,
                                                                                          float | None):
                    raise BadInput(f"{name} is {str(value).lower()}", expected="a number, not true/false")
        return data


class ModelSection(_Section):
    """Which weights to start from and how to hold them."""

    name: str = Field("gemma3-270m", description=(
        "model to fine-tune: 'gemma3-270m' (the GGUF qkv ships), a transformers folder, or a .gguf file "
        "(dequantised once through transformers); catalog names carry configs only, not weights"))
    dtype: DType = Field("float32", description=(
        "weights/compute dtype of unquantised layers: bfloat16 halves memory on GPUs with bf16 (Ampere+); "
        "float32 is the safe CPU choice (CPU bf16 matmuls are slow without AMX)"))
    attention: Attention = Field("sdpa", description=(
        "attention kernel: sdpa (PyTorch fused, O(seq) memory, everywhere), flash_attention_2 (CUDA + "
        "flash-attn installed; fastest on long sequences), eager (materialises seq x seq scores: debugging)"))


class DataSection(_Section):
    """Where examples come from and how they become tokens."""

    train: str = Field("bundled:licences-train.jsonl", description=(
        "training data: a .jsonl/.json/.csv/.txt file, a `datasets.save_to_disk` folder, or "
        "'bundled:NAME' for a file shipped in qkv/tools/train/data; relative paths resolve from the config"))
    eval: str | None = Field("bundled:licences-heldout.jsonl", description=(
        "held-out data in the same format; null = carve `eval_fraction` off the training data"))
    format: DataFormat = Field("text", description=(
        "text: loss on every token; prompt_response: loss on the response only (the model is not "
        "trained to reproduce prompts); chat: the tokenizer's chat template over a list of messages"))
    text_column: str = Field("text", description="column holding plain text (format=text)")
    prompt_column: str = Field("prompt", description="column holding the prompt (format=prompt_response)")
    response_column: str = Field("response", description="column holding the target (format=prompt_response)")
    messages_column: str = Field("messages", description="column holding [{role, content}, ...] (format=chat)")
    eval_fraction: float = Field(0.1, description=(
        "share of training rows held out when `eval` is null: more gives a steadier eval loss, fewer "
        "examples to learn from"))
    max_samples: int | None = Field(None, description="use only the first N training rows (quick pilots)")
    max_eval_samples: int | None = Field(None, description=(
        "use only the first N held-out rows: a cheaper eval pass, a noisier eval loss"))


class MethodSection(_Section):
    """Which parameters train, and how the frozen ones are stored."""

    kind: Method = Field("lora", description=(
        "full: every weight trains (best quality, ~16 bytes/param with AdamW); lora: small low-rank "
        "adapters on frozen weights (a few % of the memory); qlora: lora over NF4 4-bit frozen weights "
        "(~4x less weight memory than bf16, slower matmuls, needs bitsandbytes)"))
    r: int = Field(8, description=(
        "LoRA rank: higher fits more task-specific change, costs linearly more adapter memory"))
    alpha: int = Field(16, description="LoRA scale alpha/r multiplies the update; 2*r is a common, stable choice")
    dropout: float = Field(0.05, description="LoRA dropout: regularises small data sets; 0 is slightly faster")
    target_modules: list[str] = Field(["q_proj", "k_proj", "v_proj", "o_proj"], description=(
        "linear layers that get adapters: attention projections are the cheap default; ['all-linear'] "
        "adds the MLP too (more capacity, ~3x the adapter parameters)"))
    double_quant: bool = Field(True, description=(
        "QLoRA: quantise the NF4 block scales too (4.127 instead of 4.5 bits/weight) at negligible cost"))
    compute_dtype: DType = Field("float32", description=(
        "QLoRA: dtype the 4-bit weights are dequantised to for each matmul: bfloat16 on GPUs, float32 on CPU"))
    upcast_non_quantised: bool = Field(True, description=(
        "QLoRA: true = peft's prepare_model_for_kbit_training casts every weight left unquantised (embeddings, "
        "LM head, norms) to fp32: the usual, numerically safest recipe, but 4 bytes/param where a large "
        "vocabulary makes those weights big (Gemma 3: 168M of 268M params); false = keep them in compute_dtype "
        "(bfloat16: half the bytes, as litgpt does); only with method.kind qlora and a 16-bit compute_dtype"))


class OptimSection(_Section):
    """The optimizer and learning-rate schedule."""

    optimizer: Optimizer = Field("adamw", description=(
        "adamw: two fp32 states per trainable weight (8 bytes/param); adamw-8bit: bitsandbytes 8-bit "
        "states (2 bytes/param, same quality in practice); paged-*: states page to CPU RAM under GPU "
        "memory pressure instead of OOM (CUDA only; falls back to non-paged on CPU)"))
    lr: float = Field(2e-4, description=(
        "peak learning rate: ~1e-4..3e-4 for LoRA, ~1e-5..5e-5 for full fine-tuning (scale down with size)"))
    schedule: Schedule = Field("cosine", description="learning-rate decay after warm-up")
    warmup_steps: int = Field(0, description="linear warm-up steps: protects adapters/optimizer state early on")
    warmup_ratio: float = Field(0.0, description=(
        "warm-up as a fraction of all optimizer steps (QLoRA/Alpaca recipes use 0.03); set this or warmup_steps"))
    weight_decay: float = Field(0.0, description="decoupled weight decay: 0 for LoRA, ~0.01-0.1 for full FT")
    max_grad_norm: float = Field(1.0, description="gradient clipping: guards against loss spikes; 0 disables")


class TrainSection(_Section):
    """How many tokens per step and for how long."""

    micro_batch: int = Field(4, description=(
        "sequences per forward pass per device: more is faster until memory runs out"))
    grad_accum: int = Field(1, description=(
        "micro-batches per optimizer step: raises the effective batch without memory, costs time per step"))
    seq_len: int = Field(128, description=(
        "tokens per sequence: activation memory grows linearly (sdpa); must stay within the model's window"))
    packing: bool = Field(True, description=(
        "concatenate examples into full seq_len blocks (no padding: every token computed is trained on); "
        "off: each example is its own row, padded to the longest in its batch"))
    grad_checkpointing: bool = Field(False, description=(
        "recompute activations in backward: ~sqrt memory for activations at ~30% more compute"))
    loss: LossKind = Field("standard", description=(
        "standard: the model's own loss, which holds fp32 logits, log-probs and their gradient for every token "
        "(~12 bytes x vocabulary per token: 3 MiB/token for Gemma's 262k vocabulary); chunked: the loss over "
        "the vocabulary loss_chunk_tokens tokens at a time, so only one chunk's logits ever exist (same loss "
        "and gradients; needs a plain lm_head, so no LoRA on lm_head)"))
    loss_chunk_tokens: int = Field(1024, description=(
        "loss: chunked: tokens per chunk; the loss keeps ~12 x chunk x vocabulary bytes at most (fewer = less "
        "memory, more, smaller matmuls; 256-4096 keeps the matmuls efficient); ignored by loss: standard"))
    loss_backend: LossBackend = Field("auto", description=(
        "loss: chunked implementation: auto = cut-cross-entropy on CUDA with a 16-bit LM head when installed "
        "(never writes logits to memory), else liger (CUDA), else torch (plain-torch chunks: the one that runs "
        "on CPU); naming one that cannot run here fails before the model loads"))
    offload_activations: bool = Field(False, description=(
        "keep the tensors saved for backward in CPU RAM (pinned) instead of GPU memory, copied back in "
        "backward (torch save_on_cpu): frees most activation memory for PCIe traffic each step; no effect "
        "on a CPU-only run, where they already live in RAM"))
    max_steps: int = Field(30, description="optimizer steps to run (takes precedence over epochs when > 0)")
    epochs: float = Field(1.0, description="passes over the data when max_steps is 0")


class RunSection(_Section):
    """Reproducibility, evaluation, checkpoints and where things go."""

    seed: int = Field(42, description="seeds data order, LoRA init and dropout: same seed, same losses")
    eval_interval: int = Field(10, description="steps between eval-loss passes: more often = finer curve, slower run")
    checkpoint_interval: int = Field(10, description=(
        "steps between checkpoints: a crash loses at most this many steps; each save costs time and disk"))
    keep_checkpoints: int = Field(2, description="complete checkpoints kept (older ones deleted); at least 1")
    output_dir: str = Field("runs/train", description="run folder: checkpoints, metrics.jsonl, adapter, summary")
    threads: int | None = Field(None, description="CPU threads for torch (None: torch's default)")
    gpu: str | None = Field(None, description="catalog GPU the summary checks the measured peak against (qkv gpus)")


class TrainConfig(_Section):
    """A complete fine-tuning run."""

    model: ModelSection = Field(default_factory=ModelSection, description="starting weights")
    data: DataSection = Field(default_factory=DataSection, description="examples and tokenisation")
    method: MethodSection = Field(default_factory=MethodSection, description="full / LoRA / QLoRA")
    optim: OptimSection = Field(default_factory=OptimSection, description="optimizer and schedule")
    train: TrainSection = Field(default_factory=TrainSection, description="batch, length, duration")
    run: RunSection = Field(default_factory=RunSection, description="seed, eval, checkpoints, output")

    @model_validator(mode="after")
    def _cross_checks(self) -> TrainConfig:
        for section, name in [("train", "micro_batch"), ("train", "grad_accum"), ("train", "seq_len"),
                              ("train", "loss_chunk_tokens"), ("method", "r"), ("run", "eval_interval"),
                              ("run", "checkpoint_interval"), ("run", "keep_checkpoints")]:
            if getattr(getattr(self, section), name) <= 0:
                raise BadInput(f"{section}.{name} is {getattr(getattr(self, section), name)}",
                               expected="a positive integer")
        if self.train.max_steps < 0 or (self.train.max_steps == 0 and self.train.epochs <= 0):
            raise BadInput("train.max_steps is 0 and train.epochs is not positive",
                           expected="max_steps > 0, or max_steps: 0 with epochs > 0")
        if not 0 <= self.method.dropout < 1:
            raise BadInput(f"method.dropout is {self.method.dropout}", expected="a probability in [0, 1)")
        if not 0 < self.data.eval_fraction < 1:
            raise BadInput(f"data.eval_fraction is {self.data.eval_fraction}", expected="a fraction in (0, 1)")
        if not 0 <= self.optim.warmup_ratio < 1:
            raise BadInput(f"optim.warmup_ratio is {self.optim.warmup_ratio}", expected="a fraction in [0, 1)")
        if self.optim.warmup_ratio and self.optim.warmup_steps:
            raise BadInput("optim.warmup_steps and optim.warmup_ratio are both set",
                           expected="one of them: steps (e.g. 500) or a fraction of all steps (e.g. 0.03)")
        if self.optim.lr <= 0:
            raise BadInput(f"optim.lr is {self.optim.lr}", expected="a positive learning rate, e.g. 2e-4")
        if self.method.kind == "full" and self.optim.lr > 1e-3:
            raise BadInput(f"optim.lr {self.optim.lr} with method.kind full would destroy the pretrained weights",
                           expected="lr <= 1e-3 for full fine-tuning (typically 1e-5..5e-5)")
        if self.method.kind == "qlora" and self.model.dtype == "float16" and self.method.compute_dtype == "float32":
            raise BadInput("method.compute_dtype float32 with model.dtype float16 mixes precisions oddly",
                           expected="compute_dtype equal to model.dtype")
        if not self.method.upcast_non_quantised:
            if self.method.kind != "qlora":
                raise BadInput(f"method.upcast_non_quantised false with method.kind {self.method.kind}: only QLoRA "
                               "upcasts weights (peft's prepare_model_for_kbit_training)",
                               expected="method.kind: qlora, or leave upcast_non_quantised: true")
            if self.method.compute_dtype == "float32":
                raise BadInput("method.upcast_non_quantised false with compute_dtype float32 keeps nothing smaller: "
                               "the unquantised weights load in fp32 already",
                               expected="method.compute_dtype: bfloat16 (or float16), or upcast_non_quantised: true")
        if self.train.loss == "chunked" and any(t.rsplit(".", 1)[-1] == "lm_head" for t in self.method.target_modules):
            raise BadInput("train.loss chunked with a LoRA adapter on lm_head: the chunked loss multiplies by the "
                           "plain LM head weight",
                           expected="method.target_modules without lm_head, or train.loss: standard")
        if self.train.loss == "standard" and self.train.loss_backend != "auto":
            raise BadInput(f"train.loss_backend {self.train.loss_backend} with train.loss standard: the backend "
                           "applies to the chunked loss only", expected="train.loss: chunked, or loss_backend: auto")
        if self.data.format == "text" and self.data.text_column == "":
            raise BadInput("data.text_column is empty", expected="the name of the column holding text")
        return self


def _fields_of(cls: type[BaseModel]) -> list[str]:
    return list(cls.model_fields)


def _check_keys(raw: dict[str, Any], cls: type[BaseModel], where: str) -> None:
    """Unknown keys named with the closest valid one (pydantic's own message lists neither)."""
    valid = _fields_of(cls)
    for key, value in raw.items():
        if key not in valid:
            near = closest(str(key), valid, limit=3)
            hint = f"did you mean '{near[0]}'?" if near else "no similar key"
            raise BadInput(f"unknown key '{where}{key}' in the training config ({hint})",
                           expected=f"one of the {where or 'top-level '}keys: {', '.join(valid)}")
        sub = cls.model_fields[key].annotation
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            _check_keys(value, sub, f"{where}{key}.")


def config_from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Validate a parsed YAML mapping; every failure is one BadInput naming the key."""
    if not isinstance(raw, dict):
        raise BadInput("the training config is not a mapping", expected="YAML keys model, data, method, ...")
    _check_keys(raw, TrainConfig, "")
    try:
        return TrainConfig(**raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "config"
        ctx = err.get("ctx") or {}
        expected = f"one of {ctx['expected']}" if "expected" in ctx else None
        raise BadInput(f"{key}: {err['msg']} (got {err.get('input')!r})", expected=expected) from None


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML training config. Relative data paths later resolve from its folder."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise BadInput(f"no training config at {path}",
                       expected="a YAML file such as configs/pilot-gemma3-270m-lora-cpu.yaml")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"{path} is not valid YAML: {exc}".replace("\n", " ")) from None
    return config_from_dict(raw)


def _scalar(value: Any) -> str:
    import json

    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    text = str(value)
    needs_quotes = not text or text[0] in "!&*[]{}|>'\"%@`#-" or ": " in text or " #" in text or text in {
        "null", "true", "false", "yes", "no", "on", "off"}
    return json.dumps(text) if needs_quotes else text


def to_yaml(config: TrainConfig, *, header: str | None = None) -> str:
    """The config as YAML with every key's trade-off written above it as a comment (round-trips)."""
    lines: list[str] = []
    if header:
        lines += [f"# {h}".rstrip() for h in header.splitlines()] + [""]
    for section_name, section_field in TrainConfig.model_fields.items():
        section = getattr(config, section_name)
        lines.append(f"# --- {section_field.description} ---")
        lines.append(f"{section_name}:")
        for name, field in type(section).model_fields.items():
            for chunk in _wrap(field.description or ""):
                lines.append(f"  # {chunk}")
            lines.append(f"  {name}: {_scalar(getattr(section, name))}")
        lines.append("")
    return "\n".join(lines)


def _wrap(text: str, width: int = 100) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]
