"""Checkpoints are complete or invisible: the marker decides, staging and half-written folders are ignored
and cleaned, old ones pruned; metrics.jsonl survives a torn line and is cut back on resume."""

from __future__ import annotations

import json

from qkv.tools.train import checkpoints as ck
from qkv.tools.train.metrics import read_metrics, truncate_after


def _staged(run, step):
    staged = run / f"{ck.STAGING_PREFIX}{step}" / f"checkpoint-{step}"
    staged.mkdir(parents=True)
    (staged / "adapter_model.safetensors").write_bytes(b"x" * 10)
    return staged


def test_finalize_makes_a_complete_checkpoint_atomically(tmp_path):
    final = ck.finalize(_staged(tmp_path, 4), tmp_path / "checkpoint-4", 4)
    assert json.loads((final / ck.MARKER).read_text())["step"] == 4
    assert ck.latest_complete(tmp_path) == final
    assert not (tmp_path / f"{ck.STAGING_PREFIX}4" / "checkpoint-4").exists()


def test_latest_complete_ignores_what_a_crash_left(tmp_path):
    ck.finalize(_staged(tmp_path, 2), tmp_path / "checkpoint-2", 2)
    (tmp_path / "checkpoint-4").mkdir()  # written in place by a crashed save: no marker
    _staged(tmp_path, 6)  # killed mid-staging
    assert ck.latest_complete(tmp_path).name == "checkpoint-2"
    assert {p.name for p in ck.incomplete(tmp_path)} == {"checkpoint-4", f"{ck.STAGING_PREFIX}6"}
    ck.clean_incomplete(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]
    assert ck.latest_complete(tmp_path / "nothing-here") is None


def test_prune_keeps_the_newest(tmp_path):
    for step in (2, 4, 10, 6):
        ck.finalize(_staged(tmp_path, step), tmp_path / f"checkpoint-{step}", step)
    ck.prune(tmp_path, 2)
    assert [p.name for p in ck.complete_checkpoints(tmp_path)] == ["checkpoint-6", "checkpoint-10"]


def test_write_text_atomic_replaces_whole_files(tmp_path):
    path = tmp_path / "summary.json"
    ck.write_text_atomic(path, "old")
    ck.write_text_atomic(path, "new")
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_metrics_torn_line_and_truncate(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 6)) + '{"step": 6, "lo')
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4, 5]
    truncate_after(path, 3)
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3]
