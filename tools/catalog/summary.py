"""One line per catalog model: the facts `qkv models` lists (closed-form, no torch)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from qkv.tools.arch import spec_from_config
from qkv.tools.catalog.models import list_models
from qkv.tools.inventory import inventory


class ModelSummary(BaseModel):
    name: str
    model_type: str
    kind: str = Field(description="decoder, encoder or encoder-decoder (qkv.tools.arch.ModelSpec.kind)")
    params: int
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    attention: str
    context: int | None
    source: str


def summarize_models() -> list[ModelSummary]:
    """Every catalog model with its exact (closed-form) parameter count."""
    rows = []
    for entry in list_models():
        spec = spec_from_config(entry.config)
        rows.append(ModelSummary(
            name=entry.name, model_type=spec.model_type, kind=spec.kind, params=sum(g.numel for g in inventory(spec)),
            layers=spec.layers + spec.encoder_layers, hidden=spec.hidden, heads=spec.heads,
            kv_heads=spec.kv_heads, attention=spec.attention_type, context=spec.max_positions,
            source=entry.source))
    return rows
