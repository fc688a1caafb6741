"""LoRA targets and QLoRA's 4-bit set come from the modules transformers really builds: the stored
layouts equal what transformers builds on the meta device for every catalog model, the family table
and the inventory agree with them, PEFT accepts the default targets, and bitsandbytes quantises
exactly the modules the layout says (measured on CPU)."""

from __future__ import annotations

import json
import re
import tempfile
from importlib.resources import files

import pytest

from qkv.tools.arch import spec_from_config
from qkv.tools.catalog.linear_modules import (
    build_layout,
    family_layout,
    layout_for,
    stored_layouts,
)
from qkv.tools.catalog.models import get_model, list_models
from qkv.tools.errors import BadInput
from qkv.tools.inventory import apply_layout, inventory
from qkv.tools.knowledge.hparams import PEFT_CHECKED, HparamRequest, recommend_hparams
from qkv.tools.memory.dtypes import NF4_DQ_BITS
from qkv.tools.memory.estimate import estimate_memory
from qkv.tools.memory.schema import MemoryRequest
from qkv.tools.memory.trainable import lora_targets

NAMES = [m.name for m in list_models()]
STORED = ("model_class", "linear_modules", "outside_linear", "fused_expert_params", "other_matrices", "not_quantised")
LLAMA_ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MIXTRAL_TINY = dict(model_type="mixtral", vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
                    max_position_embeddings=128)


def _hits(path: str, name: str) -> bool:
    return path == name or path.endswith("." + name)


@pytest.mark.slow
def test_stored_layouts_equal_what_transformers_builds_on_meta():
    """Rebuild every catalog model on the meta device: the stored data cannot rot when transformers changes
    (if this fails after an upgrade: python -m qkv.tools.catalog.linear_modules --write, then re-read the diff)."""
    stored = stored_layouts()
    assert sorted(stored) == sorted(NAMES)
    for name in NAMES:
        built = build_layout(get_model(name).config).model_dump(include=set(STORED))
        assert built == stored[name].model_dump(include=set(STORED)), name


def test_catalog_models_use_the_stored_layout_without_torch():
    """By name (a config from the catalog) or recognised by its published config: the stored layout."""
    folder = files("qkv.tools.catalog").joinpath("models")
    for item in folder.iterdir():
        if item.name.endswith(".json"):
            entry = json.loads(item.read_text())
            for layout in (layout_for(entry["config"]), layout_for(get_model(entry["name"]).config, entry["name"])):
                assert layout is stored_layouts()[entry["name"]] and layout.from_transformers


@pytest.mark.parametrize("name", NAMES)
def test_family_table_and_inventory_agree_with_transformers(name):
    """The family table (the fallback) names exactly the real linear modules, and the inventory's linear
    groups are exactly them: every real module is a group, every linear group a real module."""
    cfg = get_model(name).config
    spec, layout = spec_from_config(cfg), stored_layouts()[name]
    real = layout.linear_modules
    assert all(any(_hits(p, n) for p in real) for n in spec.linear_names), spec.linear_names
    assert all(any(_hits(p, n) for n in spec.linear_names) for p in real), real
    groups = inventory(spec)
    applied = apply_layout(groups, layout)
    assert [g.is_linear for g in groups] == [g.is_linear for g in applied]  # roles already say what transformers does
    modules = {g.module for g in applied if g.is_linear}
    assert all(any(_hits(p, m) for m in modules) for p in real)
    # fused expert tensors: the inventory's 3-D groups are the real ones, shape for shape
    fused = {g.name: list(g.shape) for g in groups if g.role == "experts"}
    assert fused == {f.name: f.shape for f in layout.fused_expert_params}
    assert set(family_layout(cfg, "test").leaf_names) == set(layout.leaf_names)


def test_mixtral_is_built_with_fused_experts_and_attention_linears_only():
    layout = stored_layouts()["mixtral-8x7b"]
    assert layout.linear_modules == ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"]
    assert {f.name: f.shape for f in layout.fused_expert_params} == {
        "mlp.experts.gate_up_proj": [8, 2 * 14336, 4096], "mlp.experts.down_proj": [8, 4096, 14336]}
    assert layout.other_matrices == ["mlp.gate.weight"]  # the router: a bare parameter, not nn.Linear


def test_mixtral_qlora_targets_exclude_modules_that_do_not_exist():
    plan = recommend_hparams(HparamRequest(model="mixtral-8x7b", method="qlora"))
    assert plan.lora.targets.value == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert not {"gate_proj", "up_proj", "down_proj", "gate"} & set(plan.lora.targets.value)
    text = " ".join(plan.notes)
    assert "mlp.experts.gate_up_proj" in text and "target_parameters" in text and PEFT_CHECKED in text
    assert "stay 16-bit" in text
    # the estimator takes these targets, and names the fused tensors when asked for an expert projection
    est = estimate_memory(MemoryRequest(model="mixtral-8x7b", method="qlora", lora_targets=plan.lora.targets.value,
                                        lora_r=64))
    assert est.trainable_params == 32 * 64 * ((4096 + 4096) * 2 + (4096 + 1024) * 2)
    with pytest.raises(BadInput, match="fused 3-D parameters"):
        estimate_memory(MemoryRequest(model="mixtral-8x7b", method="lora", lora_targets=["gate_proj"]))


def test_llama2_all_linear_is_q_k_v_o_gate_up_down():
    plan = recommend_hparams(HparamRequest(model="llama-2-7b", method="qlora"))
    assert plan.lora.targets.value == LLAMA_ALL_LINEAR
    assert not any("fused" in n for n in plan.notes)
    spec = spec_from_config(get_model("llama-2-7b").config)
    groups = apply_layout(inventory(spec), stored_layouts()["llama-2-7b"])
    assert lora_targets(spec, groups, ["all-linear"]) == frozenset(LLAMA_ALL_LINEAR)
    assert lora_targets(spec, groups, plan.lora.targets.value) == frozenset(LLAMA_ALL_LINEAR)


def test_qlora_weights_hold_fused_experts_in_16_bit():
    """4-bit: the nn.Linear modules bitsandbytes converts (attention, for Mixtral); the fused experts,
    router, embeddings and LM head stay 16-bit, then fp32 after prepare_model_for_kbit_training."""
    spec = spec_from_config(get_model("mixtral-8x7b").config)
    groups = inventory(spec)
    total = sum(g.numel for g in groups)
    attention = sum(g.numel for g in groups if g.role == "attention" and len(g.shape) == 2)
    adapters = 32 * 8 * ((4096 + 4096) + (4096 + 1024))  # PEFT's default q_proj, v_proj at r 8
    for upcast, other in ((True, 4), (False, 2)):
        est = estimate_memory(MemoryRequest(model="mixtral-8x7b", method="qlora", kbit_fp32_upcast=upcast, seq=256))
        weights = next(t for t in est.terms if t.name == "weights")
        assert weights.bytes == int(attention * NF4_DQ_BITS / 8 + (total - attention) * other + adapters * 4)
        assert "q_proj, k_proj, v_proj, o_proj" in weights.formula and "fused experts 45,097,156,608" in weights.formula
        assert "mlp.experts.gate_up_proj" in weights.note and "stay 16-bit" in weights.note
    dense = next(t for t in estimate_memory(MemoryRequest(model="llama-2-7b", method="qlora", seq=256)).terms
                 if t.name == "weights")
    assert "fused" not in dense.formula and "gate_proj" in dense.formula
    nf4 = estimate_memory(MemoryRequest(model="mixtral-8x7b", method="inference", weights="nf4", seq=256))
    w = next(t for t in nf4.terms if t.name == "weights")
    assert w.bytes == int(attention * NF4_DQ_BITS / 8 + (total - attention) * 2) and "fused expert" in w.note


def test_config_outside_the_catalog_is_built_on_meta(tmp_path):
    cfg = dict(get_model("mixtral-8x7b").config, num_hidden_layers=2)
    layout = layout_for(cfg)
    assert layout.from_transformers and "built by transformers" in layout.source
    assert layout.linear_modules == stored_layouts()["mixtral-8x7b"].linear_modules
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    plan = recommend_hparams(HparamRequest(model=str(path), method="qlora"))
    assert plan.lora.targets.value == ["q_proj", "k_proj", "v_proj", "o_proj"]


def test_family_table_stands_in_when_transformers_cannot_build(monkeypatch):
    import qkv.tools.catalog.linear_modules as lm

    def fail(config):
        raise ValueError("no such architecture here")

    monkeypatch.setattr(lm, "build_layout", fail)
    cfg = dict(get_model("mixtral-8x7b").config, num_hidden_layers=3)  # a config no other test builds
    layout = lm.layout_for(cfg)
    assert not layout.from_transformers and "no such architecture here" in layout.source
    assert layout.leaf_names == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert [f.name for f in layout.fused_expert_params] == ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]


@pytest.mark.slow
def test_peft_accepts_the_default_targets_on_the_real_mixtral():
    """get_peft_model on Mixtral as transformers 5 builds it (meta device): the recommended targets adapt
    exactly those modules, with the trainable count the estimator uses; the old gate_proj fails; peft's
    target_parameters reaches the fused experts, as the plan's note says."""
    import torch
    from peft import LoraConfig, get_peft_model

    from qkv.tools.catalog.linear_modules import _meta_model

    cfg = dict(get_model("mixtral-8x7b").config, num_hidden_layers=2)
    targets = recommend_hparams(HparamRequest(model="mixtral-8x7b", method="qlora")).lora.targets.value
    model = get_peft_model(_meta_model(cfg), LoraConfig(r=64, lora_alpha=16, target_modules=targets))
    adapted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if ".lora_A." in n}
    assert adapted == set(targets)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 2 * 64 * ((4096 + 4096) * 2 + (4096 + 1024) * 2)
    with pytest.raises(ValueError, match="gate_proj"):
        get_peft_model(_meta_model(cfg), LoraConfig(target_modules=["gate_proj"]))
    experts = get_peft_model(_meta_model(cfg), LoraConfig(
        r=8, target_modules=[], target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]))
    shapes = sorted(tuple(p.shape) for n, p in experts.named_parameters() if "layers.0." in n and "lora_" in n)
    assert shapes == sorted([(8 * 8, 4096), (2 * 14336, 8 * 8), (8 * 8, 14336), (4096, 8 * 8)])  # A (r·E, in), B
    assert all(p.device == torch.device("meta") for p in experts.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("config", [
    MIXTRAL_TINY,
    dict(model_type="gpt2", vocab_size=256, n_embd=64, n_layer=1, n_head=4, n_positions=64),
    dict(model_type="bert", vocab_size=256, hidden_size=64, num_hidden_layers=1, num_attention_heads=4,
         intermediate_size=128, max_position_embeddings=64),
    dict(model_type="t5", vocab_size=256, d_model=64, d_kv=16, d_ff=128, num_layers=1, num_heads=4),
], ids=["mixtral", "gpt2", "bert", "t5"])
def test_bitsandbytes_quantises_exactly_what_the_layout_says(config):
    """Measured, not assumed: load a tiny model of each layout in 4 bits on CPU (bitsandbytes 0.50). The
    4-bit parameters are the layout's quantised modules; Mixtral's fused experts and router stay 16-bit;
    so do GPT-2's LM head and T5's wo (_keep_in_fp32_modules), while BERT's pooler is quantised."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("bitsandbytes")
    import transformers

    from qkv.tools.params import model_class_name

    layout = build_layout(config)
    spec = spec_from_config(config)
    auto = getattr(transformers, model_class_name(spec))
    cfg = {k: v for k, v in config.items() if k != "model_type"}
    with tempfile.TemporaryDirectory() as folder:
        auto.from_config(transformers.AutoConfig.for_model(config["model_type"], **cfg)).save_pretrained(folder)
        quant = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
        model = auto.from_pretrained(folder, quantization_config=quant, dtype=torch.bfloat16, device_map="cpu")
    four_bit, sixteen = set(), set()
    for name, p in model.named_parameters():
        module = name.rsplit(".", 1)[0]
        (four_bit if type(p).__name__ == "Params4bit" else sixteen).add(module if p.dim() < 3 else name)
    linear = [n for n, m in model.named_modules() if type(m).__name__ in ("Linear", "Linear4bit", "Conv1D")]
    expected = {n for n in linear if layout.is_quantised(re.sub(r"(^|.*\.)\d+\.", "", n))}
    assert four_bit == expected and four_bit
    for fused in layout.fused_expert_names:
        assert any(n.endswith(fused) for n in sixteen)
        assert all(p.dtype == torch.bfloat16 for n, p in model.named_parameters() if n.endswith(fused))
    assert ("pooler.dense" in four_bit) == (config["model_type"] == "bert")
