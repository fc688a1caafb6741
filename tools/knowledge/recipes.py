"""Task recipes: the objective, loss, metrics, baselines and ethics plan of a task family, each item
with its sources (data in `data/recipes.json`). A multilingual request adds per-language evaluation,
data splits and the fertility check."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from qkv.tools.knowledge.tables import load_table

# Words that make a classification task multi-label (toxicity-style: several independent, rare labels).
MULTILABEL_WORDS = ("toxic", "multi-label", "multilabel", "hate", "abuse", "moderation", "tags", "offensive")


class RecipeItem(BaseModel):
    name: str
    why: str
    sources: list[str]


class Recipe(BaseModel):
    """What to optimise, how to score it, what to beat, and what to check for harm."""

    family: str
    objective: str
    loss: str
    loss_sources: list[str]
    metrics: list[RecipeItem]
    metric_ids: list[str] = Field(default_factory=list, description="the report's stable metric ids, if set")
    baselines: list[RecipeItem]
    ethics: dict[str, list[str]] = Field(description="evaluation, data and mitigations")
    decoding_notes: list[str] = Field(default_factory=list)
    tokenizer: str | None = None
    typical_tokens: int = Field(description="planning length per example when the request states none")
    multilingual: bool = False
    sources: list[str] = Field(default_factory=list)


def families() -> list[str]:
    return list(load_table("recipes")["families"])


def family_for(task: str | None, domain: str | None = None, mode: str = "fine-tune", text: str = "") -> str | None:
    """The recipe family of a task label (the objective step's), its domain, mode and wording; None for a
    task no recipe covers (plain 'generation': the generic plan applies)."""
    label = (task or "").lower()
    words = text.lower()
    code = label == "code" or domain == "code"
    if mode == "pre-train":
        return "pretraining-code" if code else "pretraining"
    if code:
        return "code"
    if label == "classification" and any(w in words for w in MULTILABEL_WORDS):
        return "classification-multilabel"
    if label in families():
        return label
    return {"dialogue": "chat", "summarization": "summarisation"}.get(label)


def recipe_for(task: str | None, domain: str | None = None, mode: str = "fine-tune", text: str = "",
               languages: list[str] | None = None) -> Recipe | None:
    """The recipe of the task's family (None when no recipe covers it); with two or more languages, the
    multilingual additions."""
    table = load_table("recipes")
    name = family_for(task, domain, mode, text)
    if name is None:
        return None
    raw: dict[str, Any] = table["families"][name]
    metrics = [RecipeItem(**m) for m in raw["metrics"]]
    ethics = {k: list(v) for k, v in raw["ethics"].items()}
    tokenizer = raw.get("tokenizer")
    multi = len(languages or []) >= 2
    extra_sources: list[str] = list(raw.get("ethics_sources", []))
    if multi:
        ml = table["multilingual"]
        metrics += [RecipeItem(**m) for m in ml["metrics"]]
        ethics["data"] = ethics.get("data", []) + list(ml["data"])
        tokenizer = (tokenizer + "; " if tokenizer else "") + ml["tokenizer"]
        extra_sources += ml["sources"]
    baselines = [RecipeItem(**b) for b in raw["baselines"]]
    sources = sorted({s for item in [*metrics, *baselines] for s in item.sources}
                     | set(raw["loss"]["sources"]) | set(extra_sources))
    return Recipe(family=name, objective=raw["objective"], loss=raw["loss"]["text"],
                  loss_sources=list(raw["loss"]["sources"]), metrics=metrics,
                  metric_ids=list(raw.get("metric_ids", [])), baselines=baselines, ethics=ethics,
                  decoding_notes=list(raw.get("decoding_notes", [])), tokenizer=tokenizer,
                  typical_tokens=int(raw["typical_tokens"]), multilingual=multi, sources=sources)


def vocabulary_rule(method: str | None, mode: str, extend_min_saving: float | None) -> str:
    """When extending the vocabulary can help, tied to what the training method updates."""
    if mode == "pre-train":
        return "no base tokenizer: train one on a sample of the corpus before pre-training"
    if mode == "inference" or method in (None, "none"):
        return "inference only: keep the model's tokenizer (new tokens would have untrained embeddings)"
    saving = f"shortens the corpus by ≥ {extend_min_saving:.0%}" if extend_min_saving else "the audit recommends it"
    if method in ("lora", "qlora"):
        return (f"{method}: keep the tokenizer. New vocabulary rows start untrained and LoRA leaves the embeddings and "
                "LM head frozen, so added tokens would stay noise; extend only if you also train embed_tokens and "
                f"lm_head (peft modules_to_save) and the audit shows it {saving}")
    return (f"full fine-tuning trains the embeddings and LM head: extend the vocabulary when that {saving}, "
            "initialising new rows from the mean of their sub-token embeddings")
