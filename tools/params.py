"""Exact parameter counts: closed-form from the config (fast, no torch), or by instantiating the real
transformers class on the `meta` device (no weights, no download), or from a GGUF file's tensors."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qkv.tools.arch import ModelSpec, spec_from_config
from qkv.tools.errors import BadInput
from qkv.tools.inventory import inventory
from qkv.tools.modelref import ResolvedModel, resolve_model


class ParamCountRequest(BaseModel):
    """What to count: a model reference and the counting method."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="catalog name, config.json, model folder, .gguf file, or hub id (online)")
    exact: bool = Field(False, description="also build the transformers class on PyTorch's meta device to confirm "
                                           "the count (imports torch: seconds)")
    online: bool = Field(False, description="allow fetching config.json from the hub")


class ParamCount(BaseModel):
    """Parameter counts (element counts; tied matrices counted once)."""

    model: str
    model_class: str = Field(description="the model class whose parameters are counted")
    total: int
    embedding: int = Field(description="token, position and segment embedding tables")
    lm_head: int = Field(description="untied output projection; 0 when tied to the input embedding")
    non_embedding: int = Field(description="total - embedding - lm_head (Kaplan et al. 2020's N)")
    attention: int
    mlp: int = Field(description="dense MLP, or all experts for MoE")
    norm_and_bias: int
    active: int = Field(description="parameters used per token (MoE: top-k experts only; dense: = total)")
    method: Literal["closed-form", "closed-form+meta", "gguf-tensors"]
    meta_total: int | None = Field(None, description="count from the real class on the meta device")
    gguf_total: int | None = Field(None, description="element count of the GGUF file's tensors")
    provenance: Literal["analytic"] = "analytic"
    source: str = Field(description="where the config came from")


def model_class_name(spec: ModelSpec) -> str:
    """The transformers Auto class whose parameters qkv counts for this kind of model."""
    return {"decoder": "AutoModelForCausalLM", "encoder": "AutoModel",
            "encoder-decoder": "AutoModelForSeq2SeqLM"}[spec.kind]


def count_meta(config: dict, spec: ModelSpec) -> int:
    """Instantiate the real transformers class on the meta device and count its parameters.
    Imports torch and transformers (seconds); never downloads, never runs remote code."""
    import torch
    import transformers

    cfg = dict(config)
    model_type = cfg.pop("model_type")
    try:
        hf_config = transformers.AutoConfig.for_model(model_type, **cfg)
        auto = getattr(transformers, model_class_name(spec))
        with torch.device("meta"):
            model = auto.from_config(hf_config)
    except (ValueError, TypeError, KeyError) as exc:
        raise BadInput(f"transformers cannot build '{model_type}' from this config ({exc})",
                       expected="a config transformers understands") from None
    return sum(p.numel() for p in model.parameters())  # parameters() yields tied tensors once


def count_params(resolved: ResolvedModel, exact: bool = False) -> ParamCount:
    """Count parameters of a resolved model, closed-form (and on the meta device when exact)."""
    spec = spec_from_config(resolved.config)
    groups = inventory(spec)

    def total(*roles: str) -> int:
        return sum(g.numel for g in groups if g.role in roles)

    all_params = sum(g.numel for g in groups)
    embedding = total("embedding", "position", "token_type")
    lm_head = total("lm_head")
    experts = total("experts")
    inactive = experts * (spec.experts - spec.experts_per_token) // spec.experts if spec.experts else 0
    meta = count_meta(resolved.config, spec) if exact else None
    return ParamCount(
        model=resolved.name,
        model_class=model_class_name(spec),
        total=all_params,
        embedding=embedding,
        lm_head=lm_head,
        non_embedding=all_params - embedding - lm_head,
        attention=total("attention"),
        mlp=total("mlp", "experts", "router"),
        norm_and_bias=total("norm", "bias", "pooler", "relative_bias"),
        active=all_params - inactive,
        method="gguf-tensors" if resolved.gguf_params else ("closed-form+meta" if exact else "closed-form"),
        meta_total=meta,
        gguf_total=resolved.gguf_params,
        source=resolved.source,
    )


def param_count(req: ParamCountRequest) -> ParamCount:
    """Exact parameter count of a model: total, embedding, non-embedding, and active per token for MoE."""
    return count_params(resolve_model(req.model, online=req.online), exact=req.exact)
