"""A real `qkv train` subprocess (Gemma 3 270M LoRA, dropout on) is SIGKILLed mid-run, resumed, stopped
with Ctrl-C (SIGINT → checkpoint → exit 130), resumed again; every step's loss equals an uninterrupted
run's with the same seed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from qkv.tools.train.checkpoints import MARKER, complete_checkpoints
from qkv.tools.train.metrics import read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.llm]

STEPS = 6


@pytest.fixture(scope="module")
def home(qkv_home) -> str:
    # a QKV_HOME that already holds the dequantised Gemma (the caller's) saves the 1-3 min rebuild
    return os.environ.get("QKV_HOME") or str(qkv_home)


def _config(tmp: Path) -> Path:
    rows = [json.loads(line) for line in
            (Path(__file__).parents[2] / "tools/train/data/licences-train.jsonl").read_text().splitlines()[:12]]
    (tmp / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {
        "model": {"name": "gemma3-270m"},
        "data": {"train": "train.jsonl", "eval": None, "eval_fraction": 0.1},
        "method": {"kind": "lora", "r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]},
        "optim": {"lr": 1e-3, "schedule": "linear"},
        "train": {"micro_batch": 1, "seq_len": 32, "max_steps": STEPS},
        "run": {"seed": 7, "eval_interval": 1000, "checkpoint_interval": 2, "keep_checkpoints": 3, "threads": 2},
    }
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _qkv(cfg: Path, out: Path, home: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "QKV_HOME": home, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-c", "from qkv.agent.cli import main; main()", "train", str(cfg), "--out", str(out),
           "--no-progress", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, cond, timeout: float = 1500) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc.poll() is not None:
            raise AssertionError(f"qkv train exited early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("timed out waiting for the run")


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(out / "metrics.jsonl") if "loss" in r}


def _rows(out: Path) -> list[dict]:
    return read_metrics(out / "metrics.jsonl")


def _finish(proc: subprocess.Popen, timeout: float = 1500) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def test_sigkill_then_sigint_then_resume_matches_uninterrupted(tmp_path, home):
    cfg = _config(tmp_path)
    ref_out, out = tmp_path / "reference", tmp_path / "interrupted"

    rc, err = _finish(_qkv(cfg, ref_out, home))
    assert rc == 0, err[-2000:]
    reference = _losses(ref_out)
    assert sorted(reference) == list(range(1, STEPS + 1))

    # 1) SIGKILL once checkpoint-2 is complete and step 3 has been logged: at most one interval is lost
    proc = _qkv(cfg, out, home)
    _wait_for(proc, lambda: (out / "checkpoint-2" / MARKER).is_file() and max(_losses(out), default=0) >= 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert [p.name for p in complete_checkpoints(out)] == ["checkpoint-2"]

    # 2) --resume picks checkpoint-2 and says so; Ctrl-C (SIGINT) mid-way saves a checkpoint and exits 130
    started = time.time()
    proc = _qkv(cfg, out, home, "--resume")
    _wait_for(proc, lambda: any(r["step"] >= 3 and r["time"] > started for r in _rows(out) if "loss" in r))
    proc.send_signal(signal.SIGINT)
    rc, err = _finish(proc)
    assert rc == 130, err[-2000:]
    assert "resuming from" in err and "checkpoint-2" in err
    stopped_at = max(int(p.name.split("-")[1]) for p in complete_checkpoints(out))
    assert 3 <= stopped_at < STEPS  # a checkpoint at the step where Ctrl-C landed, not only at the interval
    assert all((p / MARKER).is_file() for p in complete_checkpoints(out))

    # 3) resume again to the end
    rc, err = _finish(_qkv(cfg, out, home, "--resume"))
    assert rc == 0, err[-2000:]
    assert f"checkpoint-{stopped_at}" in err
    resumed = _losses(out)
    assert sorted(resumed) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):  # same seed, restored data order and dropout RNG: the same losses
        assert resumed[step] == pytest.approx(reference[step], rel=1e-6, abs=1e-7), step
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == STEPS
    assert summary["resumed_from"].endswith(f"checkpoint-{stopped_at}")
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
