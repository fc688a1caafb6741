"""The sandbox on its own: allowed roots, symlink escapes, device files and FIFOs, size limits, and that no
qkv code path turns on trust_remote_code."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from qkv.agent.mcp_limits import InputTooLarge, Limits, PathRefused
from qkv.agent.mcp_safety import Sandbox
from qkv.tools.errors import BadInput


@pytest.fixture()
def box(tmp_path: Path) -> Sandbox:
    root = tmp_path / "root"
    (root / "model").mkdir(parents=True)
    (root / "model" / "config.json").write_text('{"model_type": "llama"}')
    (root / "notes.txt").write_text("legal prose\n" * 5)
    (tmp_path / "secret.txt").write_text("not yours")
    return Sandbox.from_dirs([root], limits=Limits(max_string=64, max_list=4, max_depth=3,
                                                   file_bytes={"text": 100, "config": 1000, "model": 10**9}))


def test_inside_paths_resolve_to_real_paths(box):
    root = box.roots[0]
    assert box.check_path("notes.txt", "text") == str(root / "notes.txt")  # relative: against the first root
    assert box.check_path(str(root / "model"), "model") == str(root / "model")
    assert box.check_model_ref("llama-2-7b") == "llama-2-7b"  # catalog names are not paths
    assert box.check_model_ref("meta-llama/Llama-2-7b-hf") == "meta-llama/Llama-2-7b-hf"  # nor hub ids
    assert box.check_model_ref("model") == str(root / "model")  # a name that exists under the root is a path


def _refusal(fn, *args) -> str:
    with pytest.raises(PathRefused) as info:
        fn(*args)
    return str(info.value)


def test_outside_and_symlink_escapes_refused(box):
    root = box.roots[0]
    outside = "is outside the allowed roots or does not exist"
    assert outside in _refusal(box.check_path, str(root.parent / "secret.txt"), "text")
    assert outside in _refusal(box.check_path, "../secret.txt", "text")
    (root / "link.txt").symlink_to(root.parent / "secret.txt")
    escape = _refusal(box.check_path, "link.txt", "text")
    assert "symlink that escapes" in escape and "secret" not in escape  # the link's target is never shown
    (root / "model" / "tokenizer.json").symlink_to(root.parent / "secret.txt")  # escape inside a folder
    assert "symlink that escapes" in _refusal(box.check_model_ref, "model")
    assert outside in _refusal(box.check_path, "missing.txt", "text")
    # One message whether the outside file exists or not: a refusal is no existence oracle.
    exists = _refusal(box.check_path, "../secret.txt", "text").replace("secret.txt", "X")
    missing = _refusal(box.check_path, "../no-such.txt", "text").replace("no-such.txt", "X")
    assert exists == missing


def test_device_fifo_and_oversized_files_refused(box, tmp_path):
    root = box.roots[0]
    os.mkfifo(root / "fifo.txt")
    with pytest.raises(PathRefused, match="FIFO"):
        box.check_path("fifo.txt", "text")
    dev = Sandbox.from_dirs(["/dev"])
    with pytest.raises(PathRefused, match="device file"):
        dev.check_path("/dev/zero", "text")
    (root / "big.txt").write_text("x" * 101)
    with pytest.raises(PathRefused, match="at most 100 bytes"):
        box.check_path("big.txt", "text")


def test_globs_and_stdin(box):
    root = box.roots[0]
    assert box.check_pattern("*.txt", "text") == [str(root / "notes.txt")]
    with pytest.raises(PathRefused, match="stdin"):
        box.check_pattern("-", "text")
    with pytest.raises(PathRefused, match="no file inside the allowed roots matches"):
        box.check_pattern("*.csv", "text")


def test_argument_limits(box):
    box.check_arguments({"model": "llama-2-7b", "batch": 4, "lora_targets": ["q_proj", "v_proj"]})
    cases = [({"model": "x" * 65}, "65 characters"), ({"targets": list(range(5))}, "5 items"),
             ({"a": {"b": {"c": {"d": 1}}}}, "nested"), ({"seq": 10**13}, "magnitude"),
             ({"x": "a\x00b"}, "NUL")]
    for args, text in cases:
        with pytest.raises(BadInput, match=text):
            box.check_arguments(args)
    with pytest.raises(InputTooLarge, match="at most 32"):
        box.check_arguments({"seq": 64}, caps={"seq": 32})
    with pytest.raises(BadInput, match="URL"):
        box.check_arguments({"llm": "https://example.com/v1"})
    with pytest.raises(BadInput, match="never enabled"):
        box.check_arguments({"trust_remote_code": True})


def test_no_qkv_code_enables_trust_remote_code():
    """No tool executes model code from the hub: nothing in qkv passes trust_remote_code=True."""
    repo = Path(__file__).resolve().parents[2]
    hits = []
    for folder in ("agent", "tools", "tui"):
        for path in (repo / folder).rglob("*.py"):
            if re.search(r"trust_remote_code\s*=\s*True", path.read_text(encoding="utf-8")):
                hits.append(str(path.relative_to(repo)))
    assert hits == []
