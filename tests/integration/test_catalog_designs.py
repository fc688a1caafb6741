"""Every architecture the catalog lists designs without error, MoE included, for QLoRA, LoRA and full
fine-tuning on one 24 GB GPU. A plan that does not fit is an honest answer (fits False); an exception
is not. Where the plan adapts modules, they are the model's real linear modules."""

from __future__ import annotations

import pytest

from qkv.agent.graph.api import DesignRequest, design
from qkv.tools.catalog.linear_modules import stored_layouts
from qkv.tools.catalog.models import list_models

NAMES = [m.name for m in list_models()]
METHODS = {"qlora": "QLoRA", "lora": "LoRA", "full": "full fine-tuning"}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return tmp_path_factory.mktemp("designs") / "sessions.sqlite"


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("name", NAMES)
def test_catalog_model_designs(name, method, db):
    task = f"Fine-tune {name} with {METHODS[method]} for summarisation on one 24 GB GPU"
    report = design(DesignRequest(task=task, llm="none"), db_path=db)
    assert report.task.base_model == name
    eff = report.efficiency
    assert eff.method in ("full", "lora", "qlora") and isinstance(eff.fits, bool)
    assert eff.peak_vram_gib is None or eff.peak_vram_gib > 0
    layout = stored_layouts()[name]
    targets = eff.hyperparameters.get("lora_targets") or []
    for target in targets if isinstance(targets, list) else [targets]:
        assert layout.is_linear(target), (target, layout.linear_modules)
    if eff.method == "qlora" and layout.fused_expert_params:
        weights = next(b for b in eff.breakdown if b.name == "weights")
        assert "fused experts" in weights.formula
