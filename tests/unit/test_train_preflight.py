"""Bad configs fail before any model loads, naming the key and the fix; the CLI prints one line, exits 2."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from typer.testing import CliRunner

from qkv.tools.errors import BadInput, ContextExceeded
from qkv.tools.train import preflight as pf
from qkv.tools.train.config import config_from_dict


@pytest.fixture(autouse=True)
def no_model_loads(monkeypatch, qkv_home):
    """Any attempt to load weights fails the test: every error here must come first."""
    monkeypatch.setenv("QKV_HOME", os.environ.get("QKV_HOME") or str(qkv_home))
    import qkv.tools.hf_models as hf
    import qkv.tools.train.model as tm

    def boom(*a, **k):
        raise AssertionError("the model was loaded before the config was rejected")

    monkeypatch.setattr(hf, "load_causal_lm", boom)
    monkeypatch.setattr(tm, "load_for_training", boom)


@pytest.fixture
def data(tmp_path):
    (tmp_path / "t.jsonl").write_text("".join(json.dumps({"text": f"row {i} " * 5}) + "\n" for i in range(8)))
    return str(tmp_path / "t.jsonl")


def _prepare(raw, tmp_path):
    from qkv.tools.train.run import prepare

    raw.setdefault("run", {})["output_dir"] = str(tmp_path / "out")
    return prepare(config_from_dict(raw), progress=False)


def test_flash_attention_on_cpu(tmp_path, data, monkeypatch):
    # The machine is made CPU-only through preflight's own probe, so the check runs on every machine
    # (a CUDA host included) instead of being skipped there.
    monkeypatch.setattr(pf, "cuda_available", lambda: False)
    raw = {"model": {"attention": "flash_attention_2"}, "data": {"train": data, "eval": None}}
    with pytest.raises(BadInput, match=r"model\.attention flash_attention_2 needs a CUDA GPU.*model\.attention: sdpa"):
        _prepare(raw, tmp_path)


def test_qlora_without_bitsandbytes(tmp_path, data, monkeypatch):
    real = pf.has_package
    monkeypatch.setattr(pf, "has_package", lambda name: name != "bitsandbytes" and real(name))
    with pytest.raises(BadInput, match=r"method\.kind qlora needs bitsandbytes.*method\.kind: lora"):
        _prepare({"method": {"kind": "qlora"}, "data": {"train": data, "eval": None}}, tmp_path)
    with pytest.raises(BadInput, match=r"optim\.optimizer adamw-8bit needs bitsandbytes"):
        _prepare({"optim": {"optimizer": "adamw-8bit"}, "data": {"train": data, "eval": None}}, tmp_path)


def test_empty_dataset_and_missing_column(tmp_path, data):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(BadInput, match=r"data\.train .* has no rows"):
        _prepare({"data": {"train": str(tmp_path / "empty.jsonl"), "eval": None}}, tmp_path)
    with pytest.raises(BadInput, match=r"no column 'prompt'.*data\.prompt_column"):
        _prepare({"data": {"train": data, "eval": None, "format": "prompt_response"}}, tmp_path)
    with pytest.raises(BadInput, match=r"data file .*nope\.jsonl does not exist"):
        _prepare({"data": {"train": str(tmp_path / "nope.jsonl")}}, tmp_path)


def test_sequence_longer_than_the_window(tmp_path, data):
    with pytest.raises(ContextExceeded, match=r"train\.seq_len 40000 exceeds .*32768"):
        _prepare({"train": {"seq_len": 40000}, "data": {"train": data, "eval": None}}, tmp_path)


@pytest.mark.slow  # resolves the bundled GGUF
def test_existing_run_needs_resume(tmp_path, data):
    from qkv.tools.train.checkpoints import MARKER

    ck = tmp_path / "out" / "checkpoint-2"
    ck.mkdir(parents=True)
    (ck / MARKER).write_text("{}")
    with pytest.raises(BadInput, match=r"already holds checkpoint-2.*--resume"):
        _prepare({"data": {"train": data, "eval": None}}, tmp_path)


def test_cli_prints_one_line_and_exits_2(tmp_path, data):
    from qkv.agent.cli import app

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"seqlen": 64}, "data": {"train": data}}))
    result = CliRunner().invoke(app, ["train", str(cfg)])
    assert result.exit_code == 2 or isinstance(result.exception, BadInput)
    text = result.output + str(result.exception or "")
    assert "unknown key 'train.seqlen'" in text and "did you mean 'seq_len'" in text


@pytest.mark.slow  # resolves the bundled GGUF
def test_cli_validate_and_print_config(tmp_path, data):
    from qkv.agent.cli import app

    cfg = tmp_path / "ok.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"train": data, "eval": None}, "method": {"kind": "qlora"}}))
    result = CliRunner().invoke(app, ["train", str(cfg), "--validate"])
    assert result.exit_code == 0, result.output
    assert "model not loaded" in result.output
    result = CliRunner().invoke(app, ["train", "--print-config", "--method", "qlora"])
    assert result.exit_code == 0 and config_from_dict(yaml.safe_load(result.output)).method.kind == "qlora"
