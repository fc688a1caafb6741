"""Diagnosis: which memory term dominates a job, the targeted fix for each large term with its saving
(computed by re-running the estimate with that one change, never guessed), its throughput cost where a
source states one, and the cheapest combination of fixes that fits.

One function behind `qkv vram … --why`, the design report, the MCP tool and the TUI."""

from __future__ import annotations

from pydantic import BaseModel, Field

from qkv.tools.memory.schema import MemoryEstimate, MemoryRequest, to_gib

# term name (prefix) → the fixes that attack it, in the order a researcher tries them:
# (label, changes to the request, throughput cost with its source or 'not measured'). The chunked loss is
# offered for causal decoders only: qkv's trainer chunks no other model's loss (`_Model.applies`).
CHECKPOINT_COST = ("≈ +33% compute: one extra forward per step (Chen et al. 2016, 'Training deep nets with "
                   "sublinear memory')")
CHUNKED_COST = ("about the speed of the standard loss (Liger Kernel reports equal or better throughput for fused "
                "linear cross-entropy; Wijmans et al. 2024, Cut Cross-Entropy)")
OFFLOAD_COST = ("PCIe copies overlapped with compute: small when compute per layer exceeds the copy (torchtune's "
                "activation offloading docs); not measured here")
EIGHT_BIT_COST = "no measurable cost (Dettmers et al. 2022, 8-bit optimizers)"
UPCAST_COST = "none: the fp32 copies only hold frozen weights (torchao NF4 and torchtune keep them in bf16)"
QLORA_COST = ("~+30-40% step time for dequantisation (Dettmers et al. 2023) and a small quality risk from 4-bit "
              "base weights (QLoRA matches 16-bit LoRA on their benchmarks)")
LORA_COST = ("faster than full fine-tuning; may trail it on large domain shifts (Biderman et al. 2024, 'LoRA learns "
             "less and forgets less')")
MB1_COST = "same effective batch through accumulation; lower GPU utilisation per step"
IN_BWD_COST = "none per step; rules out gradient accumulation and global-norm clipping (torchtune's docs)"
PAGED_COST = ("none while the GPU has room; when short, the evicted state crosses PCIe twice per step (the term's "
              "note gives the bytes); QLoRA §3 found paged and regular AdamW equally fast at 65B on 48 GB")

FIXES: list[tuple[str, str, dict[str, object], str]] = [
    ("loss", "chunked cross-entropy (1,024-token chunks)", {"loss_chunk": 1024}, CHUNKED_COST),
    ("activations (", "gradient checkpointing", {"grad_checkpointing": True}, CHECKPOINT_COST),
    ("activations (checkpointed", "activation offload to host RAM", {"offload_activations": True}, OFFLOAD_COST),
    ("activations (", "activation offload to host RAM", {"offload_activations": True}, OFFLOAD_COST),
    ("activations (", "micro-batch 1 with more accumulation", {"batch": 1}, MB1_COST),
    ("activations (LM head", "keep embeddings / LM head in bf16", {"kbit_fp32_upcast": False}, UPCAST_COST),
    ("weights", "keep embeddings / LM head in bf16", {"kbit_fp32_upcast": False}, UPCAST_COST),
    ("weights", "LoRA (frozen 16-bit base)", {"method": "lora"}, LORA_COST),
    ("weights", "QLoRA (4-bit base)", {"method": "qlora"}, QLORA_COST),
    ("optimizer states", "8-bit AdamW", {"optimizer": "adamw-8bit"}, EIGHT_BIT_COST),
    ("optimizer states", "paged AdamW (state to host RAM under pressure)", {"optimizer": "paged-adamw"}, PAGED_COST),
    ("optimizer states", "paged 8-bit AdamW", {"optimizer": "paged-adamw-8bit"}, PAGED_COST),
    ("gradients", "optimizer step fused into backward", {"optimizer_in_bwd": True, "grad_accum": 1}, IN_BWD_COST),
]
# Optimizer changes that only lower the state's footprint from where the request is (never back).
OPTIMIZER_STEPS = {"adamw": ("adamw-8bit", "paged-adamw", "paged-adamw-8bit"), "adamw-8bit": ("paged-adamw-8bit",)}
# How far each change moves the user's plan (smaller first in the combined plan): technique before method.
DISRUPTION = {"loss_chunk": 0, "kbit_fp32_upcast": 0, "grad_checkpointing": 1, "optimizer": 1, "batch": 1,
              "offload_activations": 2, "optimizer_in_bwd": 2, "method": 3}


def _disruption(changes: dict[str, object]) -> int:
    """How far a change moves the user's plan: techniques before LoRA, LoRA before 4-bit weights."""
    if changes.get("method") == "qlora":
        return 4
    if str(changes.get("optimizer", "")).startswith("paged-"):
        return 2  # PCIe traffic when memory is short, like activation offload
    return max(DISRUPTION.get(k, 3) for k in changes)


class TermShare(BaseModel):
    name: str
    gib: float
    share: float = Field(description="fraction of the allocated peak")


class Fix(BaseModel):
    """One targeted change, re-estimated."""

    term: str = Field(description="the term it attacks")
    fix: str
    changes: dict[str, object]
    saving_gib: float = Field(description="total before − total after, GiB per GPU (re-estimated)")
    total_gib: float
    fits: bool | None
    cost: str = Field(description="throughput or quality cost, with its source, or 'not measured'")


class Diagnosis(BaseModel):
    """Why a job needs the memory it needs, and what brings it down."""

    total_gib: float
    usable_gib: float | None
    fits: bool | None
    ranked: list[TermShare]
    fixes: list[Fix] = Field(description="for each of the top terms, the targeted fixes, largest saving first")
    plan: list[Fix] = Field(description="fixes applied one after another, least disruptive first, until it fits")
    plan_fits: bool | None
    host_gib: float = Field(0.0, description="host RAM the plan needs (offloaded activations, paged optimizer state)")


class _Model:
    """The request's model, resolved once: every fix re-estimates the same model."""

    def __init__(self, req: MemoryRequest) -> None:
        from qkv.tools.arch import spec_from_config
        from qkv.tools.catalog.gpus import get_gpu
        from qkv.tools.modelref import resolve_model

        self.resolved = resolve_model(req.model, online=req.online)
        self.usable = get_gpu(req.gpu).usable_bytes if req.gpu else None  # an unknown GPU fails before any work
        self.spec = spec_from_config(self.resolved.config)

    def estimate(self, req: MemoryRequest) -> MemoryEstimate:
        from qkv.tools.memory.estimate import estimate_resolved

        return estimate_resolved(self.resolved, self.spec, req)

    def applies(self, req: MemoryRequest, changes: dict[str, object]) -> bool:
        """A fix is offered only when it changes something and makes sense for the method and the model."""
        if "loss_chunk" in changes and self.spec.kind != "decoder":
            return False
        return _applies(req, changes)


def _applies(req: MemoryRequest, changes: dict[str, object]) -> bool:
    """A fix is offered only when it changes something and makes sense for the method."""
    if all(getattr(req, k) == v for k, v in changes.items()):
        return False
    method = changes.get("method")
    if method == "lora" and req.method != "full":
        return False
    if method == "qlora" and req.method == "qlora":
        return False
    if "kbit_fp32_upcast" in changes and req.method != "qlora":
        return False
    if "optimizer" in changes and changes["optimizer"] not in OPTIMIZER_STEPS.get(req.optimizer, ()):
        return False
    if "optimizer_in_bwd" in changes and (req.method != "full" or req.sharding != "none"):
        return False
    if changes.get("offload_activations") and not req.grad_checkpointing and "grad_checkpointing" not in changes:
        return True
    return not ("batch" in changes and req.batch == 1)


TOP_TERMS = 4  # the largest terms that get targeted fixes


def diagnose(req: MemoryRequest) -> Diagnosis:
    """Rank the peak's terms and, for each of the TOP_TERMS largest, re-estimate with each targeted fix."""
    model = _Model(req)
    base, usable = model.estimate(req), model.usable
    allocated = base.allocated_bytes or 1
    ranked = sorted(base.terms, key=lambda t: -t.bytes)
    shares = [TermShare(name=t.name, gib=t.gib, share=round(t.bytes / allocated, 3)) for t in ranked]
    fixes: list[Fix] = []
    seen: set[str] = set()
    for term in ranked[:TOP_TERMS]:
        for prefix, label, changes, cost in FIXES:
            if not term.name.startswith(prefix) or label in seen or not model.applies(req, changes):
                continue
            seen.add(label)
            after = model.estimate(req.model_copy(update=changes))
            fixes.append(Fix(term=term.name, fix=label, changes=dict(changes),
                             saving_gib=to_gib(base.total_bytes - after.total_bytes),
                             total_gib=after.total_gib, fits=(after.total_bytes <= usable) if usable else None,
                             cost=cost))
    fixes = sorted((f for f in fixes if f.saving_gib > 0), key=lambda f: -f.saving_gib)
    plan, current = _plan(req, model)
    return Diagnosis(total_gib=base.total_gib, usable_gib=to_gib(usable) if usable else None,
                     fits=(base.total_bytes <= usable) if usable else None, ranked=shares, fixes=fixes, plan=plan,
                     plan_fits=(current.total_bytes <= usable) if usable else None,
                     host_gib=to_gib(current.host_bytes))


def _plan(req: MemoryRequest, model: _Model) -> tuple[list[Fix], MemoryEstimate]:
    """Apply fixes one at a time, each round the least disruptive one that lowers the peak (technique before
    method; the larger saving among equals), until the job fits with the safety margin or nothing helps."""
    from qkv.tools.memory.verdict import comfortable

    usable = model.usable
    current_req, current = req, model.estimate(req)
    plan: list[Fix] = []
    while not (usable and comfortable(current.total_bytes, usable)):
        best: tuple[tuple[int, int], Fix, MemoryRequest, MemoryEstimate] | None = None
        for _, label, changes, cost in FIXES:
            if not model.applies(current_req, changes) or any(f.fix == label for f in plan):
                continue
            trial_req = current_req.model_copy(update=changes)
            trial = model.estimate(trial_req)
            saving = current.total_bytes - trial.total_bytes
            if saving <= 0:
                continue
            key = (_disruption(changes), -saving)
            if best is None or key < best[0]:
                fix = Fix(term="(plan)", fix=label, changes=dict(changes), saving_gib=to_gib(saving),
                          total_gib=trial.total_gib, fits=(trial.total_bytes <= usable) if usable else None,
                          cost=cost)
                best = (key, fix, trial_req, trial)
        if best is None:
            break
        plan.append(best[1])
        current_req, current = best[2], best[3]
    return plan, current
