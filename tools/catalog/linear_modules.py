"""The real linear modules of each model, as transformers builds it: which leaf modules inside the
transformer blocks are `nn.Linear` (or GPT-2's `Conv1D`), which weights are fused 3-D expert tensors
(MoE in transformers 5), and which linears bitsandbytes' 4/8-bit loading leaves in 16 bits.

LoRA on modules can adapt only the linears; bitsandbytes quantises only the linears it converts. So
the default LoRA targets and QLoRA's 4-bit set both come from here, never from a family table that
could drift from transformers (Mixtral's experts stopped being `nn.Linear` modules in transformers 5).

Building a model on the meta device imports torch (seconds), so the catalog models' layouts are
stored in `linear_modules.json`; `tests/unit/test_lora_targets.py` rebuilds every one and compares.
A config outside the catalog is built on meta on demand; if transformers cannot build it, the
family table (`ModelSpec.linear_names`) stands in and the layout says so.

Regenerate the data after a transformers upgrade: `python -m qkv.tools.catalog.linear_modules --write`."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from importlib.resources import files
from typing import Any

from pydantic import BaseModel, Field

DATA_FILE = "linear_modules.json"
_INDEX = re.compile(r"(^|.*\.)\d+\.")  # everything up to and including the last ".<digits>."


class FusedParam(BaseModel):
    """A fused expert tensor of one block: (experts, out_features, in_features)."""

    name: str = Field(description="parameter path inside one block, e.g. mlp.experts.gate_up_proj")
    shape: list[int]


class LinearLayout(BaseModel):
    """Where a model's linear layers really are. Paths inside the blocks are relative to one repeated
    block (the part after the last numeric index: `self_attn.q_proj`, `SelfAttention.q`)."""

    model_class: str
    linear_modules: list[str] = Field(description="nn.Linear / Conv1D leaf modules inside the blocks, in model order")
    outside_linear: list[str] = Field(description="linear modules outside the blocks (lm_head, pooler.dense)")
    fused_expert_params: list[FusedParam] = Field(
        default_factory=list, description="3-D expert tensors inside the blocks (nn.Parameter, not nn.Linear)")
    other_matrices: list[str] = Field(
        default_factory=list, description="2-D parameters inside the blocks held by non-linear modules (MoE routers)")
    not_quantised: list[str] = Field(
        default_factory=list, description="linear modules bitsandbytes' 4/8-bit loading leaves in 16 bits "
                                          "(output embedding, _keep_in_fp32_modules)")
    source: str = Field("", description="how this layout was obtained")
    transformers: str | None = Field(None, description="the transformers release that built it")
    from_transformers: bool = Field(True, description="False: the family table stood in (see source)")

    @property
    def leaf_names(self) -> list[str]:
        """Unique last components of the in-block linears, in model order (what PEFT matches)."""
        return list(dict.fromkeys(p.rsplit(".", 1)[-1] for p in self.linear_modules))

    def is_linear(self, module: str) -> bool:
        """Whether an in-block module name (a path suffix, as the inventory names it) is a real linear."""
        return any(_hits(p, module) for p in self.linear_modules)

    def is_quantised(self, module: str) -> bool:
        """Whether bitsandbytes converts this module (in the blocks or outside them) to 4/8 bits."""
        linear = self.is_linear(module) or any(_hits(p, module) for p in self.outside_linear)
        return linear and not any(_hits(p, module) for p in self.not_quantised)

    @property
    def fused_expert_names(self) -> list[str]:
        return [f.name for f in self.fused_expert_params]


def _hits(path: str, name: str) -> bool:
    """PEFT's rule: a name targets a module whose path equals it or ends with '.' + it."""
    return path == name or path.endswith("." + name)


def _canonical(config: dict[str, Any]) -> str:
    return json.dumps(config, sort_keys=True, default=str)


@cache
def stored_layouts() -> dict[str, LinearLayout]:
    """The stored layout of every catalog model, by catalog name."""
    raw = json.loads(files("qkv.tools.catalog").joinpath(DATA_FILE).read_text())
    how = f"built by transformers {raw['transformers']} on the meta device (stored in tools/catalog/{DATA_FILE})"
    return {name: LinearLayout.model_validate({**entry, "source": how, "transformers": raw["transformers"]})
            for name, entry in raw["models"].items()}


@cache
def _catalog_by_config() -> dict[str, str]:
    """Canonical config -> catalog name, read from the catalog's files (not from the in-memory entries,
    which code handing them to transformers' AutoConfig may have changed in place)."""
    folder = files("qkv.tools.catalog").joinpath("models")
    index = {}
    for item in folder.iterdir():
        if item.name.endswith(".json"):
            entry = json.loads(item.read_text())
            index[_canonical(entry["config"])] = entry["name"]
    return index


def layout_for(config: dict[str, Any], catalog_name: str | None = None) -> LinearLayout:
    """The layout of the model this config describes: stored for a catalog model (named, when the
    config came from the catalog, or recognised by its config); otherwise built on the meta device now
    (imports torch); the family table, saying so, if transformers cannot build it."""
    name = catalog_name if catalog_name in stored_layouts() else _catalog_by_config().get(_canonical(config))
    if name is not None and name in stored_layouts():
        return stored_layouts()[name]
    return _built(_canonical(config))


@cache
def _built(key: str) -> LinearLayout:
    config = json.loads(key)
    try:
        return build_layout(config)
    except Exception as exc:  # no torch/transformers, or a config transformers cannot build
        return family_layout(config, f"{type(exc).__name__}: {exc}")


def _meta_model(config: dict[str, Any]):
    """The transformers class qkv counts for this config (qkv params --exact), built on meta."""
    import torch
    import transformers

    from qkv.tools.arch import spec_from_config
    from qkv.tools.params import model_class_name

    cfg = copy.deepcopy(config)  # AutoConfig changes nested dicts in place (rope_scaling gains rope_theta)
    model_type = cfg.pop("model_type")
    hf_config = transformers.AutoConfig.for_model(model_type, **cfg)
    auto = getattr(transformers, model_class_name(spec_from_config(config)))
    with torch.device("meta"):
        return auto.from_config(hf_config)


def build_layout(config: dict[str, Any]) -> LinearLayout:
    """Build the model on the meta device and read its linear modules, fused expert tensors and the
    modules bitsandbytes would skip (transformers' own `get_modules_to_not_convert` and
    `should_convert_module`, as its bnb quantizer calls them before loading)."""
    import torch
    import transformers
    from transformers.pytorch_utils import Conv1D
    from transformers.quantizers.base import HfQuantizer
    from transformers.quantizers.quantizers_utils import should_convert_module

    model = _meta_model(config)
    skip = HfQuantizer.get_modules_to_not_convert(model, None, getattr(model, "_keep_in_fp32_modules", None))
    inside: list[str] = []
    outside: list[str] = []
    not_quantised: list[str] = []
    linear_ids = set()
    for name, module in model.named_modules():
        if not (isinstance(module, Conv1D) or type(module) is torch.nn.Linear):
            continue
        linear_ids.add(id(module))
        rel = _INDEX.sub("", name)
        (inside if rel != name else outside).append(rel)
        if not should_convert_module(name, skip):
            not_quantised.append(rel)
    fused: dict[str, list[int]] = {}
    other: list[str] = []
    for name, module in model.named_modules():
        if id(module) in linear_ids:
            continue
        for pname, p in module.named_parameters(recurse=False):
            full = f"{name}.{pname}" if name else pname
            rel = _INDEX.sub("", full)
            if rel == full:
                continue  # outside the blocks: embeddings, final norm
            if p.dim() >= 3:
                fused.setdefault(rel, list(p.shape))
            elif p.dim() == 2 and not isinstance(module, torch.nn.Embedding):
                other.append(rel)
    return LinearLayout(
        model_class=type(model).__name__,
        linear_modules=list(dict.fromkeys(inside)),
        outside_linear=list(dict.fromkeys(outside)),
        fused_expert_params=[FusedParam(name=n, shape=s) for n, s in fused.items()],
        other_matrices=list(dict.fromkeys(other)),
        not_quantised=list(dict.fromkeys(not_quantised)),
        source=f"built by transformers {transformers.__version__} on the meta device",
        transformers=transformers.__version__,
    )


def family_layout(config: dict[str, Any], reason: str) -> LinearLayout:
    """The family table's layout (`ModelSpec.linear_names`, the inventory's expert tensors), used when
    transformers cannot build the config; `source` carries the reason."""
    from qkv.tools.arch import spec_from_config
    from qkv.tools.inventory import inventory
    from qkv.tools.params import model_class_name

    spec = spec_from_config(config)
    experts = [g for g in inventory(spec) if g.role == "experts"]
    outside = ["pooler.dense"] if spec.pooler else []
    if spec.kind != "encoder":
        outside.append("lm_head")
    return LinearLayout(
        model_class=f"{model_class_name(spec)} ({spec.model_type})",
        linear_modules=list(spec.linear_names),
        outside_linear=outside,
        fused_expert_params=[FusedParam(name=g.name, shape=list(g.shape)) for g in experts],
        other_matrices=["gate"] if spec.experts else [],
        not_quantised=["lm_head"] + (["wo"] if spec.family == "t5" else []),
        source=f"qkv's family table for '{spec.model_type}': transformers could not build this config "
               f"on the meta device ({reason[:200]})",
        from_transformers=False,
    )


def catalog_layouts() -> dict[str, Any]:
    """Every catalog model's layout, built now, in the stored file's format."""
    import transformers

    from qkv.tools.catalog.models import list_models

    keep = {"model_class", "linear_modules", "outside_linear", "fused_expert_params", "other_matrices",
            "not_quantised"}
    return {
        "about": "Built by qkv.tools.catalog.linear_modules.build_layout (the catalog config on the meta device). "
                 "Regenerate: python -m qkv.tools.catalog.linear_modules --write",
        "transformers": transformers.__version__,
        "models": {m.name: build_layout(m.config).model_dump(include=keep) for m in list_models()},
    }


def main(argv: list[str] | None = None) -> None:
    import sys

    args = sys.argv[1:] if argv is None else argv
    text = json.dumps(catalog_layouts(), indent=2) + "\n"
    if "--write" in args:
        from pathlib import Path

        Path(__file__).with_name(DATA_FILE).write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
