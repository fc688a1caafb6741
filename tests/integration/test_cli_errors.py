"""Inputs that used to crash the CLI with a traceback (ZeroDivisionError on a config with zero heads,
UnicodeDecodeError on a binary file) are one-line errors with exit code 2, through the installed `qkv`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

QKV = str(Path(sys.executable).parent / "qkv")

TINY_LLAMA = {
    "model_type": "llama", "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096, "max_position_embeddings": 1024,
}


def qkv(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QKV_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([QKV, *args], capture_output=True, text=True, env=env, timeout=120)


def assert_one_line_error(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert out.stdout == ""
    assert out.stderr.startswith("qkv: error:") and out.stderr.count("\n") == 1, out.stderr
    assert "Traceback" not in out.stderr and "Error:" not in out.stderr.removeprefix("qkv: error:")
    for needle in needles:
        assert needle in out.stderr, (needle, out.stderr)


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("configs")
    for name, change in [("zero-heads", {"hidden_size": 0, "num_attention_heads": 0}),
                         ("zero-kv-heads", {"num_key_value_heads": 0}),
                         ("odd-width", {"hidden_size": 250}),
                         ("string-width", {"hidden_size": "256"})]:
        (folder / name).mkdir()
        (folder / name / "config.json").write_text(json.dumps({**TINY_LLAMA, **change}))
    return folder


@pytest.mark.parametrize(("command", "config", "needle"), [
    (["profile"], "zero-heads", "config field 'hidden_size' is 0"),
    (["params"], "zero-heads", "config field 'hidden_size' is 0"),
    (["vram", "--seq", "512"], "zero-heads", "config field 'hidden_size' is 0"),
    (["context", "--tokens", "4096"], "zero-heads", "config field 'hidden_size' is 0"),
    (["profile"], "zero-kv-heads", "config field 'num_key_value_heads' is 0"),
    (["profile"], "odd-width", "hidden_size 250 is not divisible by num_attention_heads 4"),
    (["params"], "string-width", "config field 'hidden_size' is '256'"),
])
def test_impossible_config_is_one_line(configs, qkv_home, command, config, needle):
    model = str(configs / config / "config.json")
    out = qkv(command[0], model, *command[1:], "--json", home=qkv_home)
    assert_one_line_error(out, needle, "expected")
    # the same config fixed: the command works
    (configs / "fixed").mkdir(exist_ok=True)
    (configs / "fixed" / "config.json").write_text(json.dumps(TINY_LLAMA))
    assert qkv(command[0], str(configs / "fixed" / "config.json"), *command[1:], "--json",
               home=qkv_home).returncode == 0


def test_eval_on_a_binary_file_is_one_line(tmp_path, qkv_home):
    binary = tmp_path / "random.bin"
    binary.write_bytes(bytes(range(256)) * 4)  # byte 128 (0x80) cannot start a UTF-8 character
    text = tmp_path / "refs.txt"
    text.write_text("the cat sat on the mat\n")
    for args in (["-p", str(binary), "-r", str(binary)], ["-p", str(text), "-r", str(binary)],
                 ["-p", str(binary), "-r", str(binary), "--json"]):
        assert_one_line_error(qkv("eval", *args, home=qkv_home), "random.bin is not UTF-8 text at byte 128",
                              "expected a UTF-8 text file")
    if Path("/bin/ls").is_file():  # the first-use report's reproduction
        assert_one_line_error(qkv("eval", "-p", "/bin/ls", "-r", "/bin/ls", home=qkv_home), "is not UTF-8 text at byte")
    assert qkv("eval", "-p", str(text), "-r", str(text), "--json", home=qkv_home).returncode == 0


def test_out_of_range_counts_are_errors_or_notes_not_tracebacks(tmp_path):
    # A stated GPU count beyond what the planner takes is refused up front with the bound.
    assert_one_line_error(qkv("design", "serve llama-3.1-8b-instruct on h100-sxm", "--llm", "none", "--gpus",
                              "99999", home=tmp_path), "--gpus", "1024")
    # A load in the words beyond the serving planner's range still designs; the report says why there is no plan.
    out = qkv("design", "serve llama-3.1-8b on H100s with 1000000000 concurrent users", "--llm", "none", "--json",
              home=tmp_path)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-800:]
    notes = json.loads(out.stdout)["inference"]["notes"]
    assert any(n.startswith("serving plan: not computed (concurrency") for n in notes), notes
