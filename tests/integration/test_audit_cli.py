"""`qkv audit` as a user runs it: real subprocesses, real tokenizers, real files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

LEGAL = "/usr/share/common-licenses"
PY = sys.executable


def qkv(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run([PY, "-m", "qkv.agent.cli", *args], capture_output=True, text=True, timeout=300,
                          input=stdin, env=env)


def test_json_is_the_audit_report_schema(tmp_path):
    terms = tmp_path / "terms.txt"
    terms.write_text("sublicense\nindemnification\nmerchantability\n")
    out = qkv("audit", "gpt2", "bert-base-uncased", "--corpus", LEGAL, "--sample", "4", "--terms", str(terms),
              "--max-new-tokens", "50", "--json")
    assert out.returncode == 0, out.stderr
    from qkv.tools.tokenizer.schema import AuditReport

    report = AuditReport.model_validate(json.loads(out.stdout))
    assert report.corpus.documents == 4 and report.corpus.sampled
    assert [m.name for m in report.tokenizers] == ["gpt2", "bert-base-uncased"]
    assert all(m.terms.n_terms == 3 for m in report.tokenizers)
    assert report.recommendation.tokenizer == "gpt2" and report.recommendation.action in ("keep", "extend", "adapter")
    assert set(report.plot) >= {"tokenizers", "fertility", "pcw", "inflation", "tokens_after_extension"}


def test_tables_and_recommendation_from_stdin():
    text = ("The licensee shall indemnify the licensor. Indemnification survives termination. " * 30 + "\n") * 5
    out = qkv("audit", "qwen2.5-0.5b", "gpt2", "-c", "-", "--min-count", "3", stdin=text)
    assert out.returncode == 0, out.stderr
    for needle in ("side by side", "most fragmented frequent words", "vocabulary extension", "qwen2.5-0.5b ->",
                   "Rust et al. 2021", "context"):
        assert needle in out.stdout, needle
    assert "Traceback" not in out.stderr


@pytest.mark.slow  # four subprocesses (unknown names and the rest are covered in tests/unit)
def test_bad_inputs_exit_2_with_one_line(tmp_path):
    bad_tok = tmp_path / "tokenizer.json"
    bad_tok.write_text("{not json")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cases = [
        (["audit", "gpt2", "-c", str(tmp_path / "missing")], "no such file or folder"),
        (["audit", str(bad_tok), "-c", LEGAL], "cannot read tokenizer"),
        (["audit", "gpt2", "-c", str(empty)], "holds no text"),
        (["audit", "gpt2", "-c", LEGAL, "--sample", "0"], "--sample"),
    ]
    for args, needle in cases:
        out = qkv(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert needle in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.strip().count("\n") == 0 and out.stderr.startswith("qkv: error:")


def test_command_module_stays_light_and_schema_is_published():
    code = ("import sys; import qkv.agent.commands.audit\n"
            "heavy = [m for m in ('tiktoken', 'tokenizers', 'transformers', 'numpy', 'torch') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    assert subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60).returncode == 0
    out = qkv("schema", "audit")
    assert out.returncode == 0 and "AuditReport" in out.stdout and "fertility" in out.stdout
