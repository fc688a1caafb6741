"""The `qkv` command as a user runs it: real subprocesses, real files, exit codes and output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PY = sys.executable


def qkv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "qkv.agent.cli", *args], capture_output=True, text=True, timeout=120)


def test_vram_worked_example_imports_no_torch():
    code = (
        "import sys; sys.argv = ['qkv', 'vram', 'llama-2-7b', '--method', 'qlora', '--gpu', 'rtx-4090']\n"
        "from qkv.agent.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'bitsandbytes', 'peft', 'llama_cpp') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "rtx-4090: fits" in out.stdout
    assert "qlora" in out.stdout and "recommended" in out.stdout


def test_vram_json_is_the_pydantic_schema():
    out = qkv("vram", "llama-2-7b", "--method", "qlora", "--gpu", "rtx-4090", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    from qkv.tools.memory.verdict import FitReport

    report = FitReport.model_validate(data)
    est = report.estimate
    assert est.allocated_bytes == sum(t.bytes for t in est.terms)
    assert est.total_bytes == est.allocated_bytes + sum(t.bytes for t in est.overhead)
    assert est.fit.fits and report.max_batch >= 1 and report.recommended
    assert all(t.provenance in ("analytic", "measured", "cited", "traced") for t in est.terms)


def test_params_models_gpus_json():
    p = json.loads(qkv("params", "gpt2", "--json").stdout)
    assert p["total"] == 124_439_808
    models = json.loads(qkv("models", "--json").stdout)
    assert {"name": "llama-2-7b"}.items() <= next(m for m in models if m["name"] == "llama-2-7b").items()
    gpus = json.loads(qkv("gpus", "--json").stdout)
    assert len(gpus) >= 20 and all("source" in g for g in gpus)


def test_doctor_reports_torch_and_bundled_model():
    out = qkv("doctor", "--json")
    assert out.returncode == 0, out.stderr
    checks = {c["name"]: c for c in json.loads(out.stdout)["checks"]}
    assert checks["torch"]["ok"] and "CPU" in checks["torch"]["detail"]
    assert checks["Gemma 3 270M GGUF"]["ok"]


@pytest.fixture
def bad_files(tmp_path, gemma_gguf):
    malformed = tmp_path / "malformed" / "config.json"
    malformed.parent.mkdir()
    malformed.write_text("{ not json")
    partial = tmp_path / "partial" / "config.json"
    partial.parent.mkdir()
    partial.write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(gemma_gguf.read_bytes()[:4096])
    return {"malformed": malformed, "partial": partial, "corrupt": corrupt, "truncated": truncated}


BAD = [
    (["vram", "llama-2-8b"], "unknown model 'llama-2-8b'", "llama-2-7b"),
    (["vram", "llama-2-7b", "--gpu", "rtx-4900"], "unknown GPU 'rtx-4900'", "rtx-4090"),
    (["vram", "llama-2-7b", "--batch", "0"], "--batch is 0", "positive integer"),
    (["vram", "llama-2-7b", "--seq", "-5"], "--seq is -5", "positive integer"),
    (["vram", "llama-2-7b", "--seq", "8192"], "exceeds llama-2-7b's 4,096-token context window", "yarn"),
    (["vram", "gpt2", "--seq", "2048", "--context-extension", "yarn"], "learned position table", "1,024"),
    (["vram", "llama-2-7b", "--method", "dora"], "--method", "'qlora'"),
    (["vram", "llama-2-7b", "--method", "lora", "--lora-targets", "query"], "LoRA target 'query'", "q_proj"),
    (["params", "phi-3-mini", "--exact", "--online"], None, None),  # valid: must succeed offline too
]


@pytest.mark.parametrize(("args", "what", "hint"), BAD)
def test_bad_input_is_one_clear_line_and_exit_2(args, what, hint):
    out = qkv(*args)
    if what is None:
        assert out.returncode == 0, out.stderr
        return
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert what in lines[0] and hint in lines[0], lines[0]


@pytest.mark.parametrize(("kind", "what"), [
    ("malformed", "is not valid JSON"), ("partial", "lacks 'num_attention_heads'"),
    ("corrupt", "is not a readable GGUF file"), ("truncated", "is not a readable GGUF file"),
])
def test_bad_files_are_clear_errors(bad_files, kind, what):
    out = qkv("vram", str(bad_files[kind]))
    assert out.returncode == 2, out.stdout
    assert "Traceback" not in out.stderr and what in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_missing_file_path_is_a_clear_error(tmp_path):
    out = qkv("params", str(tmp_path / "nope" / "config.json"))
    assert out.returncode == 2 and "no such file" in out.stderr


def test_gguf_model_memory_uses_the_file_size(gemma_gguf):
    out = qkv("vram", str(gemma_gguf), "--method", "inference", "--seq", "4096", "--json")
    assert out.returncode == 0, out.stderr
    est = json.loads(out.stdout)["estimate"]
    weights = next(t for t in est["terms"] if t["name"] == "weights")
    assert weights["bytes"] == gemma_gguf.stat().st_size and weights["provenance"] == "measured"
    kv = next(t for t in est["terms"] if t["name"] == "KV cache")
    # 18 layers, 1 KV head × 256: 3 global layers hold 4,096 tokens, 15 sliding layers hold 512.
    assert kv["bytes"] == 2 * 256 * 2 * (3 * 4096 + 15 * 512)


def test_help_teaches():
    out = qkv("vram", "--help")
    assert out.returncode == 0
    assert "qlora" in out.stdout and "Example" in out.stdout


def test_schema_command_prints_the_json_schema():
    out = qkv("schema", "vram")
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    assert "estimate" in schema["properties"] and "MemoryTerm" in schema["$defs"]
    bad = qkv("schema", "vramm")
    assert bad.returncode == 2 and "vram" in bad.stderr


@pytest.mark.parametrize("args", [["vram"], ["vram", "llama-2-7b", "--batch", "abc"], ["vram", "gpt2", "--bogus"]])
def test_usage_errors_exit_2_without_traceback(args):
    out = qkv(*args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "Error:" in out.stderr


@pytest.mark.slow
def test_vram_trace_side_by_side_json():
    out = qkv("vram", "smollm2-135m", "--method", "lora", "--seq", "256", "--trace", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    rows = {r["category"]: r for r in data["rows"]}
    assert set(rows) == {"parameters", "gradients", "optimizer state", "activations", "KV cache", "temporaries"}
    assert all(r["difference_bytes"] == r["analytic_bytes"] - r["traced_bytes"] for r in rows.values())
    assert data["traced"]["provenance"] == "traced"
    assert data["traced"]["reserved_bytes"] >= data["traced"]["allocated_bytes"] >= data["traced"]["peak_bytes"]
    assert abs(data["relative_error"]) < 0.05


def test_vram_trace_of_an_unbuildable_setting_is_a_clear_error():
    out = qkv("vram", "gemma-2-2b", "--method", "lora", "--seq", "128", "--trace")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and "--attention eager" in out.stderr


def test_bare_qkv_takes_the_chat_options():
    """`qkv` alone is the chat, so `qkv --llm none …` is `qkv chat --llm none …` (it was "No such option")."""
    out = qkv("--llm", "none", "--help")
    assert out.returncode == 0, out.stderr
    assert "chat [OPTIONS]" in out.stdout and "--resume" in out.stdout
    listed = qkv("--list", "--json")  # a chat option that needs no terminal
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.lstrip().startswith("[")
    bad = qkv("--no-such-option")
    assert bad.returncode == 2 and "No such option" in bad.stderr


def test_models_table_never_cuts_a_name():
    out = subprocess.run([PY, "-m", "qkv.agent.cli", "models"], capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, "COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    from qkv.tools.catalog.models import list_models

    names = {line.split()[0] for line in out.stdout.splitlines()[2:] if line.strip()}
    assert names == {m.name for m in list_models()}
    assert max(len(line) for line in out.stdout.splitlines()) <= 80


def test_vram_why_names_the_loss_first_and_ends_with_a_plan_that_fits():
    out = qkv("vram", "llama-3.1-8b", "--method", "qlora", "--seq", "8192", "--gpu", "rtx-3060-12gb", "--why",
              "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["ranked"][0]["name"].startswith("loss") and not d["fits"]
    assert d["plan_fits"] and all(step["saving_gib"] > 0 for step in d["plan"])


def test_chat_list_shows_whole_thread_ids_at_80_columns(tmp_path):
    from qkv.tui.sessions import SessionStore

    store = SessionStore(tmp_path / "sessions.sqlite")
    tid = "20261206-214500-abcdef"
    store.ensure(tid, "fine-tune a 7B model for legal summarisation on one 24 GB GPU " * 2, "none")
    env = {**__import__("os").environ, "QKV_HOME": str(tmp_path), "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-m", "qkv.agent.cli", "chat", "--list"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert tid in out.stdout and all(len(line) <= 80 for line in out.stdout.splitlines())
