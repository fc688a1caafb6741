"""Real fine-tuning of Gemma 3 270M on CPU, short: a LoRA pilot lowers held-out perplexity (measured by the
evaluator) and writes its artefacts; QLoRA through bitsandbytes keeps LoRA gradients after an eval pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qkv.tools.train.config import config_from_dict, load_config
from qkv.tools.train.metrics import read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.llm]

DATA = Path(__file__).parents[2] / "tools/train/data"


@pytest.fixture(scope="module", autouse=True)
def home(training_home):
    yield


def _cfg(tmp: Path, kind: str, **over):
    raw = {
        "model": {"name": "gemma3-270m"},
        "data": {"train": "bundled:licences-train.jsonl", "eval": "bundled:licences-heldout.jsonl",
                 "max_samples": 24, "max_eval_samples": 4},
        "method": {"kind": kind, "r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "optim": {"lr": 2e-3, "schedule": "constant"},
        "train": {"micro_batch": 2, "seq_len": 48, "max_steps": 6},
        "run": {"seed": 3, "eval_interval": 1000, "checkpoint_interval": 1000, "output_dir": str(tmp / kind)},
    }
    for section, values in over.items():
        raw[section].update(values)
    return config_from_dict(raw)


def test_lora_pilot_lowers_heldout_perplexity(tmp_path):
    from qkv.tools.train.pilot import pilot

    result = pilot(_cfg(tmp_path, "lora"), 6, progress=False, max_tokens=192)
    assert result.steps == 6
    assert result.after.token_ppl < result.before.token_ppl, result
    assert result.improved and result.ppl_ratio < 1
    out = tmp_path / "lora"
    rows = [r for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    for r in rows:
        assert r["tokens_per_s"] > 0 and r["peak_memory_bytes"] > 100 * 2**20
        assert r["peak_memory_kind"] == "cpu_peak_rss" and r["learning_rate"] == pytest.approx(2e-3)
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert load_config(out / "config.yaml").method.kind == "lora"  # the resolved config reloads
    summary = json.loads((out / "summary.json").read_text())
    mem = summary["memory"]
    assert mem["predicted_allocated_bytes"] > 0 and mem["measured_bytes"] > 0
    assert mem["request"]["method"] == "lora" and mem["request"]["seq"] == 48
    assert json.loads((out / "pilot.json").read_text())["improved"] is True


def test_qlora_lora_grads_survive_an_eval_pass(tmp_path):
    import torch

    from qkv.tools.train.model import lora_grad_norms
    from qkv.tools.train.run import execute, prepare

    cfg = _cfg(tmp_path, "qlora", train={"max_steps": 2}, run={"eval_interval": 1})
    run = prepare(cfg, progress=False)
    assert run.info["bnb_layers_guarded"] > 0  # the 4-bit linears were found and guarded
    import bitsandbytes as bnb

    four_bit = [m for m in run.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert four_bit and all(m.support_avx512bf16_for_cpu is False for m in four_bit)

    metrics = run.trainer.evaluate()  # eval mode + no_grad: the pass that repacks weights on AVX512-BF16
    assert metrics["eval_loss"] > 0
    run.model.train()
    batch = run.trainer.data_collator([run.trainer.train_dataset[0], run.trainer.train_dataset[1]])
    run.model(**batch).loss.backward()
    grads = lora_grad_norms(run.model)
    b_grads = [g for n, g in grads.items() if "lora_B" in n]
    assert b_grads and all(g > 0 for g in b_grads)  # lora_B starts at 0, so its gradient must flow
    run.model.zero_grad(set_to_none=True)

    summary = execute(run)  # two real Trainer steps with an eval after each
    assert summary.steps == 2 and summary.eval_loss is not None
    trained = [p for n, p in run.model.named_parameters() if "lora_B" in n]
    assert all(float(torch.linalg.norm(p)) > 0 for p in trained)  # the optimizer moved every adapter
    assert summary.memory and summary.memory.request.method == "qlora"
