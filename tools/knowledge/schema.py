"""Shared result pieces of the knowledge tools: a number with its provenance.

Every figure a knowledge tool returns is a `Figure`: the value, its unit, and where it came from,
either `analytic` (computed here from a formula, the formula stated) or `cited` (taken from a
published table or released script; `sources` names entries of `qkv.tools.knowledge.sources`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

Provenance = Literal["analytic", "cited", "traced", "measured"]

# Other libraries' names for qkv's arguments, accepted as documented aliases (pydantic validation_alias)
# by the request models whose field means exactly that: a sequence length in tokens, a number of GPUs.
SEQ_ALIASES = ("seq_len", "seq_length", "sequence_length", "max_seq_length")
GPUS_ALIASES = ("num_gpus", "n_gpus", "gpu_count")


def also(*aliases: str) -> str:
    """The description suffix that documents a field's aliases."""
    return " (also accepted as " + ", ".join(aliases) + ")"


class Figure(BaseModel):
    """One number (or setting) with its unit and provenance."""

    value: float | int | str | bool | list[str] | dict[str, Any] | None
    unit: str | None = None
    provenance: Provenance
    sources: list[str] = Field(default_factory=list, description="source ids (qkv.tools.knowledge.sources)")
    formula: str | None = Field(None, description="how an analytic figure was computed")
    note: str | None = None

    @model_validator(mode="after")
    def _cited_has_source(self) -> Figure:
        from qkv.tools.knowledge.sources import SOURCES

        if self.provenance == "cited" and not self.sources:
            raise ValueError("a cited figure needs at least one source id")
        unknown = [s for s in self.sources if s not in SOURCES]
        if unknown:
            raise ValueError(f"unknown source ids {unknown}")
        return self


def cited(value: Any, *sources: str, unit: str | None = None, note: str | None = None) -> Figure:
    """A figure taken from a publication or a released script."""
    return Figure(value=value, unit=unit, provenance="cited", sources=list(sources), note=note)


def analytic(value: Any, formula: str, *sources: str, unit: str | None = None, note: str | None = None) -> Figure:
    """A figure computed here; `sources` name where the formula or its inputs come from."""
    return Figure(value=value, unit=unit, provenance="analytic", sources=list(sources), formula=formula, note=note)


def figures(model: BaseModel) -> list[Figure]:
    """Every Figure inside a result model, depth first (lists and dicts included)."""
    out: list[Figure] = []

    def walk(value: Any) -> None:
        if isinstance(value, Figure):
            out.append(value)
        elif isinstance(value, BaseModel):
            for v in value.__dict__.values():
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    walk(model)
    return out


def collect_sources(model: BaseModel, *extra: str) -> list[str]:
    """The sorted set of source ids cited anywhere in a result (for its `sources` list)."""
    return sorted({s for f in figures(model) for s in f.sources} | set(extra))


def resolve_ref(model: str, config: dict[str, Any] | None = None, online: bool = False):
    """A model reference resolved by the foundation (catalog, file, GGUF, hub) or, when `config` is
    given, that HF config itself named `model` (a proposed architecture has no file yet)."""
    from qkv.tools.errors import BadInput
    from qkv.tools.modelref import ResolvedModel, resolve_model

    if config is None:
        return resolve_model(model, online=online)
    if not isinstance(config, dict) or "model_type" not in config:
        raise BadInput("inline config has no 'model_type'", expected="an HF config.json dict")
    return ResolvedModel(name=model or "inline", origin="config.json", source="inline config", config=config)
