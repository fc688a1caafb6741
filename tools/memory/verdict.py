"""Verdicts on a GPU: does it fit, the largest micro-batch and longest sequence that fit, and the
ladder of cheaper strategies a researcher would try, in order, until one fits."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, Field

from qkv.tools.arch import ModelSpec, spec_from_config
from qkv.tools.catalog.gpus import get_gpu
from qkv.tools.errors import QkvError
from qkv.tools.memory.estimate import estimate_resolved
from qkv.tools.memory.schema import MemoryEstimate, MemoryRequest, to_gib
from qkv.tools.modelref import ResolvedModel, resolve_model

# The estimator sits 0-9% below published measurements (docs/memory-model.md, validation), so a
# rung that fills more than 90% of the card is called tight and is not recommended.
SAFETY_MARGIN = 0.10


class StrategyOption(BaseModel):
    """One rung of the ladder and its per-GPU total."""

    name: str
    changes: dict[str, object] = Field(description="fields changed from the request")
    total_bytes: int
    fits: bool
    tight: bool = Field(description=f"fits, but with less than {SAFETY_MARGIN:.0%} of the GPU to spare")

    @property
    def total_gib(self) -> float:
        return to_gib(self.total_bytes)

    @property
    def comfortable(self) -> bool:
        """Fits with the safety margin to spare: the only rungs qkv recommends."""
        return self.fits and not self.tight


class FitReport(BaseModel):
    """The estimate for the request plus the searches that answer 'what would fit?'."""

    estimate: MemoryEstimate
    max_batch: int | None = Field(description="largest micro-batch that fits (0: not even 1); None: no GPU")
    max_seq: int | None = Field(description="longest sequence that fits within the window; None: no GPU")
    ladder: list[StrategyOption] = Field(default_factory=list, description="strategies in the order tried")
    recommended: str | None = Field(
        None, description="first strategy on the ladder that fits with the safety margin to spare")


def _total(resolved: ResolvedModel, spec: ModelSpec, req: MemoryRequest, **changes: object) -> int:
    trial = req.model_copy(update=changes)
    return estimate_resolved(resolved, spec, trial).total_bytes


def _largest(fits: Callable[[int], bool], hi_limit: int) -> int:
    """Largest n in [1, hi_limit] with fits(n), assuming monotonicity; 0 if none."""
    if not fits(1):
        return 0
    lo, hi = 1, 2
    while hi <= hi_limit and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, hi_limit + 1)
    while hi - lo > 1:  # invariant: fits(lo), not fits(hi) (or hi beyond the limit)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def comfortable(total: int | float, usable: int | float) -> bool:
    """Whether `total` bytes fit in `usable` with SAFETY_MARGIN of it to spare: what qkv recommends."""
    return total <= usable * (1 - SAFETY_MARGIN)


def fit_state(total: int | float, usable: int | float) -> tuple[bool, bool]:
    """(fits, tight): a job fits when its total is within the usable memory, and is tight when it fits but
    not comfortably (it fills more than 1 - SAFETY_MARGIN of it: not recommended). With `comfortable`, the one
    place this rule is written."""
    fits = total <= usable
    return fits, fits and not comfortable(total, usable)


def smallest_gpu_holding(total: int | float):
    """The catalog GPU with the least memory that holds `total` bytes with the safety margin (discrete
    GPUs only: a unified-memory machine shares it with the OS); None when none does."""
    from qkv.tools.catalog.gpus import list_gpus

    pool = sorted((g for g in list_gpus() if comfortable(total, g.usable_bytes) and not g.unified_memory),
                  key=lambda g: (g.memory_gib, g.name))
    return pool[0] if pool else None


def _option(name: str, changes: dict[str, object], total: int, usable: int) -> StrategyOption:
    fits, tight = fit_state(total, usable)
    return StrategyOption(name=name, changes=changes, total_bytes=total, fits=fits, tight=tight)


LADDER_CHUNK = 1024  # tokens per cross-entropy chunk on the ladder's chunked-loss rungs
METHOD_LABEL = {"full": "full fine-tune", "lora": "LoRA", "qlora": "QLoRA"}


def ladder_rungs(req: MemoryRequest) -> list[tuple[str, dict[str, object]]]:
    """The rungs a researcher climbs, in order: for each method from highest fidelity down (full, LoRA,
    QLoRA), first the levers that keep the method and its quality — micro-batch 1 at the same effective batch,
    gradient checkpointing, chunked cross-entropy, activation offload, an 8-bit optimizer for full
    fine-tuning — and only then the next, cheaper method. Sharding over more GPUs comes after (`ladder`)."""
    effective = req.batch * req.grad_accum
    rungs: list[tuple[str, dict[str, object]]] = []
    for method in ("full", "lora", "qlora"):
        m = METHOD_LABEL[method]
        # Each method starts with every lever off, whatever the request carried, so a rung's name is its content.
        steps: list[tuple[str, dict[str, object]]] = [(m, {"method": method, "grad_checkpointing": False,
                                                           "loss_chunk": None, "offload_activations": False,
                                                           "kbit_fp32_upcast": True, "optimizer": req.optimizer})]
        if req.batch > 1:
            steps.append((f"{m} + micro-batch 1", {"batch": 1, "grad_accum": effective}))
        steps += [
            (f"{m} + gradient checkpointing", {"grad_checkpointing": True}),
            (f"{m} + checkpointing + chunked loss", {"loss_chunk": LADDER_CHUNK}),
        ]
        if method == "qlora":  # peft's fp32 upcast of embeddings and LM head buys nothing for frozen weights
            steps.append((f"{m} + checkpointing + chunked loss + bf16 embeddings", {"kbit_fp32_upcast": False}))
        steps.append((f"{steps[-1][0]} + activation offload", {"offload_activations": True}))
        if req.optimizer == "adamw":  # states in 8 bits: no measurable cost (Dettmers et al. 2022)
            steps.append((f"{steps[-1][0]} + 8-bit AdamW".replace("activation offload + 8-bit", "offload + 8-bit"),
                          {"optimizer": "adamw-8bit"}))
        changes: dict[str, object] = {}
        for name, delta in steps:  # each rung keeps the levers before it
            changes = {**changes, **delta}
            rungs.append((name, dict(changes)))
    return rungs


def ladder(resolved: ResolvedModel, spec: ModelSpec, req: MemoryRequest, usable: int) -> list[StrategyOption]:
    """The rungs of `ladder_rungs` with their totals, stopping at the first that fits with the margin; when
    none does on this GPU, the last rung sharded over more GPUs (an alternative, not the plan)."""
    options: list[StrategyOption] = []
    for name, changes in ladder_rungs(req):
        total = _total(resolved, spec, req, **changes)
        options.append(_option(name, changes, total, usable))
        if options[-1].comfortable:
            return options
    last = dict(ladder_rungs(req)[-1][1])
    for gpus in (2, 4, 8, 16, 32, 64):
        changes = {**last, "gpus": gpus, "sharding": "fsdp"}
        total = _total(resolved, spec, req, **changes)
        options.append(_option(f"QLoRA + all levers + FSDP over {gpus} GPUs", changes, total, usable))
        if options[-1].comfortable:
            break
    return options


# What each method costs beyond memory, with sources (the design report weighs them in words).
METHOD_COST = {
    "full": ("1.0× (reference)", "none: every weight trained in 16-bit"),
    "lora": ("≈1.0× of full fine-tuning's step at the same length (frozen base, tiny optimizer)",
             "low: 16-bit LoRA on all linear layers matches full fine-tuning on instruction data (Dettmers et al. "
             "2023) but learns less on large domain shifts (Biderman et al. 2024)"),
    "qlora": ("≈1.3–1.4× LoRA's step: every 4-bit weight is dequantised per matmul (Dettmers et al. 2023)",
              "small: NF4 base weights; QLoRA matched 16-bit LoRA on its benchmarks (Dettmers et al. 2023)"),
}


class MethodOption(BaseModel):
    """One method at its cheapest levers, for weighing against another."""

    name: str
    method: str
    changes: dict[str, object]
    total_gib: float
    fits: bool
    max_seq: int = Field(description="longest sequence that fits on the GPU at this micro-batch (tokens)")
    step_time: str = Field(description="relative step time, cited")
    quality_risk: str = Field(description="quality risk, cited")


SHARD_COUNTS = (2, 4, 8, 16, 32, 64, 128, 256, 512)  # FSDP degrees the full-parameter ladder tries


def full_parameter_rungs(gpus: int) -> list[tuple[str, dict[str, object]]]:
    """The ladder for full-parameter training (pre-training, or an architecture sized from scratch), in cost
    order: plain, gradient checkpointing, micro-batch 1 on a single GPU, then FSDP over the GPUs the user
    has and over more (what would fit) — never over fewer than they have."""
    rungs: list[tuple[str, dict[str, object]]] = [
        ("full-parameter training", {"method": "full"}),
        ("full + gradient checkpointing", {"method": "full", "grad_checkpointing": True})]
    if gpus == 1:
        rungs.append(("full + checkpointing + micro-batch 1",
                      {"method": "full", "grad_checkpointing": True, "batch": 1}))
    for n in sorted({max(2, gpus), *(c for c in SHARD_COUNTS if c > gpus)}):
        rungs.append((f"full + checkpointing + FSDP over {n} GPUs",
                      {"method": "full", "grad_checkpointing": True, "gpus": n, "sharding": "fsdp"}))
    return rungs


def weigh_methods(req: MemoryRequest, options: list[tuple[str, dict[str, object]]]) -> list[MethodOption]:
    """Each option (name, changes) re-estimated on `req.gpu`: its peak, whether it fits, the longest sequence
    it allows at this micro-batch, and its cited costs."""
    resolved = resolve_model(req.model, online=req.online)
    spec = spec_from_config(resolved.config)
    usable = get_gpu(req.gpu).usable_bytes if req.gpu else 0
    window = spec.max_positions or 1_048_576
    out = []
    for name, changes in options:
        trial = req.model_copy(update=changes)
        total = estimate_resolved(resolved, spec, trial).total_bytes

        def fits(seq: int, trial: MemoryRequest = trial) -> bool:
            try:
                return estimate_resolved(resolved, spec, trial.model_copy(update={"seq": seq})).total_bytes <= usable
            except QkvError:
                return False

        method = str(trial.method)
        step, risk = METHOD_COST[method]
        out.append(MethodOption(name=name, method=method, changes=changes, total_gib=to_gib(total),
                                fits=total <= usable, max_seq=_largest(fits, max(window, req.seq)), step_time=step,
                                quality_risk=risk))
    return out


def fit_report(req: MemoryRequest) -> FitReport:
    """The estimate, the largest batch and sequence that fit on `req.gpu`, and the strategy ladder."""
    resolved = resolve_model(req.model, online=req.online)
    spec = spec_from_config(resolved.config)
    estimate = estimate_resolved(resolved, spec, req)
    if not req.gpu:
        return FitReport(estimate=estimate, max_batch=None, max_seq=None)
    usable = get_gpu(req.gpu).usable_bytes

    def fits(**changes: object) -> bool:
        try:
            return _total(resolved, spec, req, **changes) <= usable
        except QkvError:
            return False

    window = spec.max_positions or 1_048_576
    if req.seq > window:
        window = req.seq  # a stated extension already allowed the request's length
    max_batch = _largest(lambda b: fits(batch=b), 65_536)
    max_seq = _largest(lambda s: fits(seq=s), window)
    options = ladder(resolved, spec, req, usable) if req.method != "inference" else []
    recommended = next((o.name for o in options if o.comfortable), None)
    return FitReport(estimate=estimate, max_batch=max_batch, max_seq=max_seq, ladder=options,
                     recommended=recommended)
