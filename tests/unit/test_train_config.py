"""TrainConfig: YAML round trip with comments, unknown keys named with the closest valid key, cross-field
rules, and every shipped preset valid and identical to what the schema generates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qkv.tools.errors import BadInput
from qkv.tools.train.config import TrainConfig, config_from_dict, load_config, to_yaml
from qkv.tools.train.presets import PRESETS, preset_yaml

CONFIGS = Path(__file__).parents[2] / "configs"


def test_to_yaml_round_trips_and_documents_every_key():
    cfg = config_from_dict({"method": {"kind": "qlora", "target_modules": ["all-linear"]},
                            "data": {"eval": None, "train": "a file: with colon.jsonl"}, "train": {"seq_len": 256}})
    text = to_yaml(cfg, header="qkv train x.yaml")
    assert text.startswith("# qkv train x.yaml")
    assert config_from_dict(yaml.safe_load(text)) == cfg
    for section in TrainConfig.model_fields:
        for name, field in type(getattr(cfg, section)).model_fields.items():
            assert field.description, f"{section}.{name} has no documented trade-off"
            assert f"  {name}:" in text


@pytest.mark.parametrize(("raw", "key", "suggestion"), [
    ({"methd": {}}, "methd", "method"),
    ({"train": {"seqlen": 64}}, "train.seqlen", "seq_len"),
    ({"method": {"lora_r": 8}}, "method.lora_r", "r"),
    ({"optim": {"learning_rate": 1e-4}}, "optim.learning_rate", "lr"),
])
def test_unknown_key_is_named_with_the_closest_valid_one(raw, key, suggestion):
    with pytest.raises(BadInput) as err:
        config_from_dict(raw)
    assert f"unknown key '{key}'" in str(err.value) and f"did you mean '{suggestion}'" in str(err.value)


def test_bad_values_name_the_key():
    with pytest.raises(BadInput, match=r"method\.kind.*'full', 'lora' or 'qlora'"):
        config_from_dict({"method": {"kind": "qlorra"}})
    with pytest.raises(BadInput, match=r"train\.seq_len is 0"):
        config_from_dict({"train": {"seq_len": 0}})
    with pytest.raises(BadInput, match=r"optim\.lr .* full fine-tuning"):
        config_from_dict({"method": {"kind": "full"}, "optim": {"lr": 1e-2}})
    with pytest.raises(BadInput, match=r"method\.dropout"):
        config_from_dict({"method": {"dropout": 1.5}})


def test_load_config_errors(tmp_path):
    with pytest.raises(BadInput, match="no training config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_config(bad)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shipped_presets_validate_and_match_the_schema(name):
    path = CONFIGS / f"{name}.yaml"
    assert path.read_text() == preset_yaml(name), "regenerate with: python -m qkv.tools.train.presets configs"
    assert path.read_text().startswith(f"# qkv train configs/{name}.yaml")
    cfg = load_config(path)
    assert cfg.method.kind in name


def test_every_training_yaml_in_configs_is_a_preset():
    shipped = {p.stem for p in CONFIGS.glob("*.yaml") if not p.stem.startswith("accelerate-")}
    assert shipped == set(PRESETS)


def test_accelerate_configs_are_valid_yaml_with_their_command():
    for name in ("accelerate-ddp", "accelerate-fsdp"):
        text = (CONFIGS / f"{name}.yaml").read_text()
        assert text.startswith("# accelerate launch --config_file configs/")
        cfg = yaml.safe_load(text)
        assert cfg["num_processes"] >= 2 and cfg["distributed_type"] in ("MULTI_GPU", "FSDP")


def test_warmup_is_steps_or_a_fraction_never_both():
    base = {"model": {"name": "gemma3-270m"}, "data": {"train": "x.jsonl"}, "method": {"kind": "lora"}}
    assert config_from_dict({**base, "optim": {"warmup_ratio": 0.03}}).optim.warmup_ratio == 0.03
    for bad in ({"warmup_ratio": 1.5}, {"warmup_ratio": 0.03, "warmup_steps": 10}):
        with pytest.raises(BadInput):
            config_from_dict({**base, "optim": bad})


def test_yaml_true_is_not_a_number():
    """The same rule as the MCP tools: a boolean is never read as 1."""
    for section, key in (("train", "micro_batch"), ("method", "r"), ("optim", "warmup_steps"), ("run", "seed")):
        with pytest.raises(BadInput, match=f"{key} is true"):
            config_from_dict({section: {key: True}})
