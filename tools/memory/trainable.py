"""Which tensors a method trains, and their count: all of them (full), or LoRA adapters on the named
linear modules (exact: r × (in + out) per adapted matrix)."""

from __future__ import annotations

from qkv.tools.arch import ModelSpec
from qkv.tools.errors import BadInput
from qkv.tools.inventory import TensorGroup


def _matches(module: str, target: str) -> bool:
    # PEFT matches a target by the module name's suffix ("c_proj" hits attn.c_proj and mlp.c_proj).
    return module == target or module.endswith("." + target)


def lora_targets(spec: ModelSpec, groups: list[TensorGroup], targets: list[str] | None) -> frozenset[str]:
    """The leaf modules that get adapters; BadInput naming the valid modules for an unknown target."""
    linear = {g.module for g in groups if g.is_linear and g.module}
    wanted = list(targets) if targets else list(spec.default_lora_targets)
    if wanted in (["all-linear"], ["all"]):
        return frozenset(linear)
    chosen: set[str] = set()
    for target in wanted:
        hits = {m for m in linear if _matches(m, target)}
        if not hits:
            raise BadInput(
                f"LoRA target '{target}' is not a linear module of {spec.model_type}",
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
