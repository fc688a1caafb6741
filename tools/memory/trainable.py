"""Which tensors a method trains, and their count: all of them (full), or LoRA adapters on the named
linear modules (exact: r × (in + out) per adapted matrix)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qkv.tools.arch import ModelSpec
from qkv.tools.errors import BadInput
from qkv.tools.inventory import TensorGroup

if TYPE_CHECKING:
    from qkv.tools.catalog.linear_modules import LinearLayout

# Names that meant expert projections when experts were nn.Linear modules (transformers 4: Mixtral's
# w1/w2/w3, the Llama-style gate/up/down); in transformers 5 they are fused 3-D parameters.
EXPERT_PROJECTIONS = ("gate_proj", "up_proj", "down_proj", "w1", "w2", "w3")


def _matches(module: str, target: str) -> bool:
    # PEFT matches a target by the module name's suffix ("c_proj" hits attn.c_proj and mlp.c_proj).
    return module == target or module.endswith("." + target)


def lora_targets(spec: ModelSpec, groups: list[TensorGroup], targets: list[str] | None,
                 layout: LinearLayout | None = None) -> frozenset[str]:
    """The leaf modules that get adapters; BadInput naming the valid modules for an unknown target.
    `groups` decide what is linear (pass them through `inventory.apply_layout` for the real modules);
    `layout` only sharpens the error for a target that names a fused expert tensor."""
    linear = {g.module for g in groups if g.is_linear and g.module}
    wanted = list(targets) if targets else list(spec.default_lora_targets)
    if wanted in (["all-linear"], ["all"]):
        return frozenset(linear)
    chosen: set[str] = set()
    for target in wanted:
        hits = {m for m in linear if _matches(m, target)}
        if not hits:
            fused = layout.fused_expert_names if layout else []
            why = ""
            if fused and target in EXPERT_PROJECTIONS:
                why = (f" (its experts are fused 3-D parameters, {', '.join(fused)}, not nn.Linear modules; "
                       "LoRA on modules cannot reach them)")
            raise BadInput(
                f"LoRA target '{target}' is not a linear module of {spec.model_type}{why}",
                expected="module names of this model, or 'all-linear'",
                choices=[*sorted({m.split(".")[-1] for m in linear}), "all-linear"],
            )
        chosen |= hits
    return frozenset(chosen)


def lora_param_groups(groups: list[TensorGroup], modules: frozenset[str], r: int) -> list[TensorGroup]:
    """The adapter tensors: A (r × in) and B (out × r) per adapted linear, repeated like the base."""
    out = []
    for g in groups:
        if g.is_linear and g.module in modules:
            in_f, out_f = g.features
            out.append(TensorGroup(f"lora_A.{g.name}", (r, in_f), "attention", g.repeat, g.module, g.block))
            out.append(TensorGroup(f"lora_B.{g.name}", (out_f, r), "attention", g.repeat, g.module, g.block))
    return out
