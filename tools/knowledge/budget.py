"""Training budgets in both directions, every figure with its provenance.

- From data: examples × typical length → tokens per epoch → steps at the planned global batch →
  epochs (the recipe's, or the stated ones) → total steps, warm-up steps, training FLOPs and a time
  bound on the stated GPUs (the same roofline as the scaling tool), with an over/underfitting note.
- From hardware time: GPUs × hours × peak × MFU → FLOPs → tokens at a fixed model size (C = 6ND),
  deliberately past Chinchilla when the size is fixed, bounded by unique data × ~4 epochs of repeats
  (Muennighoff et al. 2023); the share of the stated budget the plan uses, or the reason it is < 50%."""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from qkv.tools.knowledge.scaling import DEFAULT_MFU, optimal_for_params, peak_flops_per_s
from qkv.tools.knowledge.schema import Figure, analytic, cited, collect_sources

# Muennighoff et al. 2023: up to ~4 epochs of repeated data are nearly as good as unique data.
MAX_USEFUL_EPOCHS = 4
# Fewer optimizer steps than this and the warm-up and decay barely run (a smoke test, not a training run).
MIN_USEFUL_STEPS = 100
# A plan that spends less than this share of a stated compute budget must say why.
MIN_BUDGET_SHARE = 0.5


class DataBudgetRequest(BaseModel):
    """A fine-tuning data budget: how much data, how long each example, the batch it is trained at."""

    examples: int = Field(gt=0)
    tokens_per_example: int = Field(gt=0, description="typical tokens per example (before truncation)")
    length_basis: str = Field(description="where the typical length came from (stated, or the recipe's)")
    seq: int = Field(gt=0, description="training sequence length: examples are truncated to it")
    batch_sequences: int = Field(gt=0, description="global batch: micro-batch × accumulation × data-parallel GPUs")
    epochs: int = Field(gt=0)
    epochs_figure: Figure = Field(description="where the epoch count came from")
    trainable_flops_per_token: float = Field(gt=0, description="6·N for full training, ~4·N with frozen weights")
    flops_basis: str
    gpu: str | None = None
    gpus: int = 1
    mfu: float = DEFAULT_MFU
    warmup_ratio: float | None = Field(None, description="warm-up as a fraction of steps (the recipe's)")
    warmup_steps: int | None = Field(None, description="warm-up in steps (the recipe's), when not a ratio")
    warmup_sources: list[str] = Field(default_factory=list)


class DataBudget(BaseModel):
    tokens_per_epoch: Figure
    epochs: Figure
    steps_per_epoch: Figure
    steps: Figure
    warmup_steps: Figure
    train_tokens: Figure
    train_flops: Figure
    hours: Figure | None = None
    fit_note: str
    notes: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


def data_budget(req: DataBudgetRequest) -> DataBudget:
    """Epochs, steps, warm-up, FLOPs and time from the data size and the planned batch."""
    per_example = min(req.tokens_per_example, req.seq)
    tpe = req.examples * per_example
    spe = math.ceil(req.examples / req.batch_sequences)
    steps = spe * req.epochs
    if req.warmup_ratio is not None:
        warm = math.ceil(req.warmup_ratio * steps)
        wform = f"ceil({req.warmup_ratio:g} × {steps:,} steps)"
    else:
        warm = min(int(req.warmup_steps or 0), steps)
        wform = f"the recipe's {req.warmup_steps} steps, at most the run's {steps:,}"
    total = tpe * req.epochs
    flops = req.trainable_flops_per_token * total
    notes: list[str] = []
    srcs = ["kaplan2020"]
    hours = None
    if req.gpu:
        from qkv.tools.catalog.gpus import get_gpu

        device = get_gpu(req.gpu)  # an unknown name is an error; a GPU known only by its memory has no peak
        if device.bf16_dense_tflops or device.fp16_dense_tflops:
            peak, column = peak_flops_per_s(req.gpu)
            h = flops / (req.gpus * peak * req.mfu) / 3600
            hours = analytic(h, f"FLOPs / ({req.gpus} × {column} × MFU {req.mfu:.0%}) / 3600; a bound from the "
                                "roofline", "chowdhery2022", "qkv-gpus", unit="hours")
        else:
            notes.append(f"no time bound: {device.name} has no 16-bit FLOP/s in the GPU catalog (name the GPU)")
    if req.examples < 1000:
        fit = (f"{req.examples:,} examples is small: evaluate every epoch on a held-out split and keep the best; "
               "fine-tuning on small data is unstable, so run several seeds (Mosbach et al. 2021)")
        srcs.append("mosbach2021")
    elif steps < MIN_USEFUL_STEPS:
        fit = (f"{steps} optimizer steps is too few for the warm-up and decay to run: lower the batch or add data "
               "(underfitting risk)")
    else:
        fit = (f"{req.epochs} epoch(s) over {tpe:,.0f} tokens: watch the held-out loss and stop when it rises; "
               "repeated passes overfit a fine-tune before they overfit pre-training (Mosbach et al. 2021)")
        srcs.append("mosbach2021")
    if req.tokens_per_example > req.seq:
        notes.append(f"typical examples ({req.tokens_per_example:,} tokens) are truncated to {req.seq:,}")
    budget = DataBudget(
        tokens_per_epoch=analytic(tpe, f"{req.examples:,} examples × {per_example:,} tokens ({req.length_basis})",
                                  unit="tokens"),
        epochs=req.epochs_figure,
        steps_per_epoch=analytic(spe, f"ceil({req.examples:,} / global batch {req.batch_sequences})", unit="steps"),
        steps=analytic(steps, f"{spe:,} steps/epoch × {req.epochs} epochs", unit="steps"),
        warmup_steps=analytic(warm, wform, *req.warmup_sources, unit="steps"),
        train_tokens=analytic(total, "tokens/epoch × epochs", unit="tokens"),
        train_flops=analytic(flops, f"{req.flops_basis} × tokens", "kaplan2020", unit="FLOPs"),
        hours=hours, fit_note=fit, notes=notes)
    budget.sources = collect_sources(budget, *srcs)
    return budget


class ComputeBudgetRequest(BaseModel):
    """A pre-training budget in hardware time, for a model whose size is fixed."""

    gpu: str
    gpus: int = Field(ge=1)
    hours: float = Field(gt=0, description="wall-clock hours on all GPUs")
    params: float = Field(gt=0, description="the model's parameters N (fixed)")
    unique_tokens: float | None = Field(None, description="unique training tokens available, when known")
    mfu: float = DEFAULT_MFU


class ComputeBudget(BaseModel):
    flops: Figure
    tokens_at_size: Figure = Field(description="tokens the budget trains at the fixed size: C / 6N")
    chinchilla_tokens: Figure
    planned_tokens: Figure
    tokens_per_param: Figure
    used_share: Figure = Field(description="planned FLOPs / the stated budget's FLOPs")
    planned_flops: Figure = Field(description="training FLOPs of the planned tokens: 6 × N × D")
    days: Figure = Field(description="wall-clock days the planned tokens take on the stated GPUs")
    gpu_hours: Figure = Field(description="GPU-hours the planned tokens take")
    repeat_cap: Figure | None = None
    reason: str
    notes: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)


def compute_budget(req: ComputeBudgetRequest) -> ComputeBudget:
    """Tokens a fixed-size model trains on in the stated hardware time, capped by unique data × 4 epochs."""
    peak, column = peak_flops_per_s(req.gpu)
    flops = req.gpus * req.hours * 3600 * peak * req.mfu
    mfu_src = ("chowdhery2022", "dubey2024")
    at_size = flops / (6 * req.params)
    chin = optimal_for_params(req.params).tokens
    planned, cap = at_size, None
    notes = []
    if req.unique_tokens:
        cap = analytic(MAX_USEFUL_EPOCHS * req.unique_tokens, f"{MAX_USEFUL_EPOCHS} epochs × unique tokens",
                       "muennighoff2023", unit="tokens")
        planned = min(at_size, MAX_USEFUL_EPOCHS * req.unique_tokens)
    share = planned / at_size
    if share < MIN_BUDGET_SHARE:
        reason = (f"the unique data ({req.unique_tokens:.3g} tokens) allows {MAX_USEFUL_EPOCHS} epochs = "
                  f"{planned:.3g} tokens, {share:.0%} of the budget (Muennighoff et al. 2023): collect more unique "
                  "data or train a larger model with the rest")
    elif at_size > chin:
        reason = (f"the size is fixed, so the budget goes to data: {at_size / req.params:,.0f} tokens/param, past "
                  f"Chinchilla's {chin / req.params:.0f} (Hoffmann et al. 2022) on purpose; the loss keeps falling and "
                  "a small model is cheaper to serve (TinyLlama 1.1B: 3T tokens; Sardana et al. 2024)")
    else:
        reason = "the whole budget trains the fixed-size model; it stays below the compute-optimal token count"
    if not req.unique_tokens:
        notes.append(f"bounded by unique data: {at_size:.3g} tokens needs ≥ {at_size / MAX_USEFUL_EPOCHS:.3g} unique "
                     f"tokens at ≤ {MAX_USEFUL_EPOCHS} epochs (Muennighoff et al. 2023); state the unique-token count "
                     "to cap it")
    out = ComputeBudget(
        flops=analytic(flops, f"{req.gpus} GPUs × {req.hours:g} h × 3600 × {column} × MFU {req.mfu:.0%}",
                       "qkv-gpus", *mfu_src, unit="FLOPs"),
        tokens_at_size=analytic(at_size, "C / (6N)", "kaplan2020", unit="tokens"),
        chinchilla_tokens=analytic(chin, "Approach 1 inverse at this N (≈20 tokens/param)", "hoffmann2022",
                                   unit="tokens"),
        planned_tokens=analytic(planned, "min(C / 6N, 4 × unique tokens)" if req.unique_tokens else "C / (6N)",
                                *(["muennighoff2023"] if req.unique_tokens else []), unit="tokens"),
        tokens_per_param=analytic(planned / req.params, "planned tokens / N", unit="tokens/param"),
        used_share=analytic(share, "planned tokens / (C / 6N)", unit="fraction"),
        planned_flops=analytic(6 * req.params * planned, "6 × N × planned tokens", "kaplan2020", unit="FLOPs"),
        days=analytic(req.hours * share / 24, f"{req.hours:g} h × used share / 24", unit="days"),
        gpu_hours=analytic(req.hours * req.gpus * share, f"{req.hours:g} h × {req.gpus} GPUs × used share",
                           unit="GPU-hours"),
        repeat_cap=cap, reason=reason, notes=notes)
    out.sources = collect_sources(out, "muennighoff2023", "zhang2024tinyllama", "sardana2024")
    return out


def wall_hours(wall: float | None, gpu_hours: float | None, gpus: int) -> float:
    """The wall-clock hours of a stated budget: stated as such, or GPU-hours shared by the GPUs."""
    if wall:
        return wall
    if not gpu_hours:
        raise ValueError("a hardware-time budget needs wall-clock hours or GPU-hours")
    return gpu_hours / gpus


def accumulation(global_batch: int, micro_batch: int, dp: int) -> int:
    """Gradient-accumulation steps that make up `global_batch` sequences when each of `dp` data-parallel
    GPUs adds `micro_batch` per step (at least 1; rounded up, so the batch is never smaller)."""
    return max(1, math.ceil(global_batch / (micro_batch * dp)))


def per_gpu_share(global_batch: int, gpus: int) -> int:
    """Sequences each data-parallel GPU contributes to a global batch (rounded up)."""
    return -(-global_batch // gpus)


def global_batch(micro_batch: int, grad_accum: int, dp: int) -> int:
    """Sequences per optimizer step: micro-batch × accumulation × data-parallel GPUs."""
    return micro_batch * grad_accum * dp


def trainable_flops_per_token(active_params: float, full: bool) -> tuple[float, str]:
    """(FLOPs per training token, the basis in words): 6N when every weight trains, 4N with frozen weights
    (LoRA/QLoRA: no weight gradients for the frozen base; Kaplan et al. 2020's 6N split 2N + 4N)."""
    if full:
        return 6 * active_params, "6N (full training: forward 2N + backward 4N)"
    return 4 * active_params, "4N (frozen weights: forward 2N + activation gradients 2N, no weight gradients)"


def run_intervals(steps: int) -> dict[str, int]:
    """The trainer's eval and checkpoint intervals in steps: ~20 evaluations and ~10 checkpoints over the run,
    never more often than every 10 steps (the trainer's default)."""
    return {"eval_interval": max(10, steps // 20), "checkpoint_interval": max(10, steps // 10)}


def epochs_for(examples: int, encoder: bool) -> Figure:
    """The published epoch count for a fine-tune of this kind and size of data."""
    if encoder:
        return cited(3, "devlin2019", unit="epochs", note="BERT fine-tuning: 2–4 epochs; the middle of the range")
    if examples >= 100_000:
        return cited(2, "ivison2023", unit="epochs", note="Tulu 2: 2 epochs over ~326k examples")
    return cited(3, "taori2023", unit="epochs", note="Alpaca: 3 epochs over 52k examples")


# TinyLlama 1.1B: 3T tokens in 2M-token batches, ~1.43M optimizer steps (Zhang et al. 2024).
TINYLLAMA_STEPS = 3e12 / 2_097_152


def pretrain_steps(tokens: float, batch_tokens: float, warmup_tokens: float) -> tuple[Figure, Figure, list[str]]:
    """Optimizer steps and warm-up steps of a pre-training run at a batch size in tokens, and a note when
    the batch is small for the token count."""
    steps = math.ceil(tokens / batch_tokens)
    warm = min(steps, math.ceil(warmup_tokens / batch_tokens))
    notes = []
    if steps > TINYLLAMA_STEPS:
        notes.append(f"{steps:,} steps at GPT-3's {batch_tokens:,.0f}-token batch (tuned for 300B-token runs): "
                     f"over-trained runs use larger batches, e.g. TinyLlama's 2M tokens (~{TINYLLAMA_STEPS:,.0f} "
                     "steps over 3T tokens; Zhang et al. 2024)")
    return (analytic(steps, f"ceil({tokens:.3g} tokens / {batch_tokens:,.0f} tokens per batch)", unit="steps"),
            analytic(warm, f"ceil({warmup_tokens:.3g} warm-up tokens / batch)", "brown2020", unit="steps"), notes)
