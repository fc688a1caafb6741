"""The model catalog: one JSON file per model under `models/`, each a published HF `config.json`
with the source it was taken from, and the model's capabilities (languages, effective context,
instruct variant, licence, pretraining tokens), each with its own source."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any, Literal

from pydantic import BaseModel, Field

from qkv.tools.errors import UnknownName, closest


class Capabilities(BaseModel):
    """What a model can do, as published: the facts model choice filters on before size and window."""

    languages: list[str] = Field(description="ISO 639-1 codes the pretraining data or model card names")
    languages_source: str
    variant: Literal["base", "instruct"] = Field(description="pretrained only, or instruction/chat tuned")
    instruct_variant: str | None = Field(None, description="catalog name of this base model's instruct variant")
    effective_context: int | None = Field(None, description="tokens where quality holds (RULER or model card)")
    effective_context_source: str | None = None
    licence: str
    licence_source: str
    pretraining_tokens: float | None = Field(None, description="tokens seen in pretraining, as published")
    pretraining_tokens_source: str | None = None
    specialisation: Literal["general", "code"] = "general"


class CatalogModel(BaseModel):
    """A catalog entry: the model's published config and where it came from."""

    name: str
    aliases: list[str] = Field(default_factory=list)
    hub_id: str | None = None
    family: str
    published_params: str | None = None
    source: str
    config: dict[str, Any]
    capabilities: Capabilities | None = None


@cache
def _load_all() -> dict[str, CatalogModel]:
    folder = files("qkv.tools.catalog").joinpath("models")
    entries = {}
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".json"):
            entry = CatalogModel.model_validate(json.loads(item.read_text()))
            entries[entry.name] = entry
    return entries


@cache
def _index() -> dict[str, str]:
    """Lower-cased name and every alias -> canonical name."""
    index: dict[str, str] = {}
    for entry in _load_all().values():
        for key in [entry.name, *entry.aliases, *( [entry.hub_id] if entry.hub_id else [])]:
            index[key.lower()] = entry.name
    return index


def list_models() -> list[CatalogModel]:
    """All catalog models, sorted by name."""
    return list(_load_all().values())


def find_model(name: str) -> CatalogModel | None:
    """The catalog entry for a name, alias or hub id (case-insensitive), or None."""
    key = _index().get(name.strip().lower())
    return _load_all()[key] if key else None


def get_model(name: str) -> CatalogModel:
    """The catalog entry for `name`; an UnknownName error lists the closest names otherwise."""
    entry = find_model(name)
    if entry is None:
        raise UnknownName(
            f"unknown model '{name}'",
            expected="a catalog name (`qkv models`), a config.json, a model folder, a .gguf file, "
            "or a hub id with --online",
            choices=closest(name, _index().keys()),
        )
    return entry
