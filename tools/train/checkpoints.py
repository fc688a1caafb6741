"""Checkpoints that are either complete or invisible.

transformers.Trainer writes `checkpoint-N` in place, file by file, so a SIGKILL mid-save leaves a folder
that looks like a checkpoint but is not. qkv has the Trainer write into a staging folder, fsyncs every
file, writes a `qkv-complete.json` marker (itself written tmp + fsync + rename), renames the folder to
`checkpoint-N` and fsyncs the parent. Resume only ever considers folders with the marker."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

from qkv.tools.atomic import write_text

MARKER = "qkv-complete.json"
STAGING_PREFIX = ".staging-"
_CKPT = re.compile(r"^checkpoint-(\d+)$")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder under `folder` (data on disk before the rename makes it visible)."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            _fsync_path(Path(root) / name)
        _fsync_path(Path(root))


def write_text_atomic(path: Path, text: str) -> None:
    """Write tmp, fsync, rename: readers see the old file or the new one, never half of one."""
    write_text(path, text, fsync=True)


def finalize(staged: Path, final: Path, step: int) -> Path:
    """Seal a fully written staging folder as `final` (checkpoint-N): fsync, marker, rename, fsync parent."""
    fsync_tree(staged)
    write_text_atomic(staged / MARKER, json.dumps({"step": step, "time": time.time()}) + "\n")
    if final.exists():  # a re-save of the same step (e.g. Ctrl-C right at an interval)
        shutil.rmtree(final)
    os.replace(staged, final)
    _fsync_path(final.parent)
    if staged.parent.name.startswith(STAGING_PREFIX):  # the Trainer wrote into .staging-N/checkpoint-N
        shutil.rmtree(staged.parent, ignore_errors=True)
    return final


def step_of(folder: Path) -> int | None:
    m = _CKPT.match(folder.name)
    return int(m.group(1)) if m else None


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoint folders, oldest step first."""
    if not run_dir.is_dir():
        return []
    found = [p for p in run_dir.iterdir() if p.is_dir() and step_of(p) is not None and (p / MARKER).is_file()]
    return sorted(found, key=lambda p: step_of(p) or 0)


def latest_complete(run_dir: Path) -> Path | None:
    """The newest checkpoint that carries the completion marker (None when there is none)."""
    done = complete_checkpoints(run_dir)
    return done[-1] if done else None


def incomplete(run_dir: Path) -> list[Path]:
    """Staging folders and checkpoint folders without the marker (left by a crash mid-save)."""
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and (
        p.name.startswith(STAGING_PREFIX) or (step_of(p) is not None and not (p / MARKER).is_file())))


def clean_incomplete(run_dir: Path) -> list[Path]:
    """Delete what a crash left half-written; returns what was removed."""
    gone = incomplete(run_dir)
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone


def prune(run_dir: Path, keep: int) -> list[Path]:
    """Keep the newest `keep` complete checkpoints; delete older ones."""
    done = complete_checkpoints(run_dir)
    old = done[:-keep] if keep > 0 else []
    for p in old:
        shutil.rmtree(p, ignore_errors=True)
    return old
