"""The built wheel is the product: it builds without setuptools warnings, holds every data file qkv
reads at run time, and works installed into a fresh virtual environment from another folder.

The fresh venv gets qkv from the wheel alone; its third-party dependencies are borrowed from the test
environment through a plain path entry (the editable qkv there is a `.pth` finder, which a plain path
entry does not run), so the test needs no network and no second 1.6 GB install."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Repository folder → its name inside the wheel (pyproject's package-dir mapping).
MAPPED = {"agent": "qkv/agent", "tools": "qkv/tools", "prompts": "qkv/prompts", "tui": "qkv/tui"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """(the wheel, the build log). Built offline from this checkout with the test environment's setuptools."""
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy of the tracked files only: a developer's build/ or egg-info must not leak in.
    src = out / "src"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        dst = src / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / rel).is_file():
            dst.write_bytes((ROOT / rel).read_bytes())
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(out), "-v"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(out.glob("qkv-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], proc.stdout + proc.stderr


def test_build_has_no_package_warnings(built) -> None:
    _, log = built
    assert "would be ignored" not in log and "absent from the `packages`" not in log, [
        line for line in log.splitlines() if "absent from" in line][:5]


def test_wheel_holds_every_runtime_file(built) -> None:
    wheel, _ = built
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = []
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for rel in tracked.splitlines():
        top, _, rest = rel.partition("/")
        if top in MAPPED and rest:
            expected.append(f"{MAPPED[top]}/{rest}")
    missing = sorted(e for e in expected if e not in names)
    assert not missing, missing[:20]
    # The kinds of file the product reads at run time, named so a regression says which kind went missing.
    for needle in ("qkv/tools/catalog/models/llama-2-7b.json", "qkv/tools/catalog/gpus.json",
                   "qkv/tools/knowledge/data/chinchilla_table3.json", "qkv/tools/train/data/licences-train.jsonl",
                   "qkv/tools/evaluate/data/counterfactual_gender.json", "qkv/prompts/persona.md",
                   "qkv/tui/qkv.tcss"):
        assert needle in names, needle
    assert not any(n.startswith(("tools/", "agent/", "tests/")) for n in names), "a generic top-level name leaked"


def test_installed_wheel_runs_from_another_folder(built, tmp_path: Path) -> None:
    wheel, _ = built
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    vpy = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(vpy), "install", "--no-deps", "--no-index",
                    "--quiet", str(wheel)], check=True, timeout=300, capture_output=True)
    site = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    qkv = str(venv / "bin" / "qkv")

    def run(*args: str) -> str:
        proc = subprocess.run([qkv, *args], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
        return proc.stdout

    where = subprocess.run([str(vpy), "-c", "import qkv.tools; print(qkv.tools.__file__)"], cwd=work, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv)), f"qkv imported from {where}, not from the installed wheel"
    assert "mixtral-8x7b" in run("models", "--json")
    assert "tinyllama-1.1b" in run("models")  # the table never cuts a name a user copies
    assert "fits" in run("vram", "llama-2-7b", "--method", "qlora", "--gpu", "rtx-4090", "--seq", "2048")
    run("design", "Fine-tune a 7B model for legal summarisation on one 24 GB GPU", "--llm", "none",
        "-o", "report.md")
    assert "Peak" in (work / "report.md").read_text() or "peak" in (work / "report.md").read_text()
    assert "fertility" in run("audit", "gpt2", "--corpus", "/usr/share/common-licenses/Apache-2.0").lower()
