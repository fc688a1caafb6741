"""`qkv eval` as a user runs it: real subprocesses, real files, exit codes, JSON that is the pydantic schema."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from qkv.tools.evaluate.schema import MetricPlan, PerplexityResult, ScoreReport

PY = sys.executable
DATA = Path(__file__).resolve().parents[1] / "data" / "eval"


def qkv(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "qkv.agent.cli", *args], capture_output=True, text=True, timeout=timeout)


def test_score_translation_json_and_no_torch_import():
    code = (
        "import sys; sys.argv = ['qkv', 'eval', '-p', sys.argv[1], '-r', sys.argv[2], '--task', 'translation', "
        "'--json']\nfrom qkv.agent.cli import main\nmain()\n"
        "heavy = [m for m in ('torch', 'transformers', 'llama_cpp') if m in sys.modules]\n"
        "assert not heavy, heavy\n")
    out = subprocess.run([PY, "-c", code, str(DATA / "sacrebleu_readme_sys.txt"),
                          str(DATA / "sacrebleu_readme_refs.jsonl")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = ScoreReport.model_validate(json.loads(out.stdout))
    assert round(report.metric("bleu").value, 2) == 48.53
    assert "tok:13a" in report.metric("bleu").signature


def test_table_output_and_plan():
    out = qkv("eval", "-p", str(DATA / "squad_facts.jsonl"), "-r", str(DATA / "squad_facts.jsonl"), "--task", "qa")
    assert out.returncode == 0, out.stderr
    assert "exact_match" in out.stdout and "0.6667" in out.stdout
    out = qkv("eval", "--plan", "--task", "translation", "--json")
    plan = MetricPlan.model_validate(json.loads(out.stdout))
    assert [m.name for m in plan.metrics][1:] == ["BLEU", "chrF"]


@pytest.mark.parametrize("args, message", [
    (["-p", "{short}", "-r", "{refs}", "--task", "translation"], "1 predictions but"),
    (["-p", "{empty}", "-r", "{refs}"], "is empty"),
    (["--task", "summarization", "-p", "{refs}", "-r", "{refs}"], "did you mean: summarisation"),
    ([], "nothing to evaluate"),
    (["-m", "/no/such/model", "--text", "{refs}"], "cannot load weights"),
])
def test_bad_inputs_exit_2_with_one_line(tmp_path, args, message):
    files = {"short": tmp_path / "short.txt", "empty": tmp_path / "empty.txt", "refs": tmp_path / "refs.txt"}
    files["short"].write_text("only one\n")
    files["empty"].write_text("")
    files["refs"].write_text("first\nsecond\n")
    out = qkv("eval", *[a.format(**{k: str(v) for k, v in files.items()}) for a in args])
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_review_sheet_round_trip_through_the_cli(tmp_path):
    f = str(DATA / "summaries.jsonl")
    sys_b = tmp_path / "short.txt"
    sys_b.write_text("".join(line[:40] + "\n" for line in (DATA / "summaries.jsonl").read_text().splitlines()))
    out = qkv("eval", "-p", f, "-p", str(sys_b), "-r", f, "--source", f, "--review", str(tmp_path / "rev"), "--json")
    assert out.returncode == 0, out.stderr
    sheet = json.loads(out.stdout)
    rows = list(csv.DictReader(Path(sheet["sheet_csv"]).read_text().splitlines()))
    for r in rows:
        r["faithfulness_1to5"], r["quality_1to5"] = "3", "4"
    with open(sheet["sheet_csv"], "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = qkv("eval", "--read-review", sheet["sheet_csv"], "--key", sheet["key_file"])
    assert out.returncode == 0, out.stderr
    assert "6/6 rows rated" in out.stdout and "summaries" in out.stdout and "short" in out.stdout


def test_schemas_are_registered():
    out = qkv("schema", "eval-perplexity")
    assert out.returncode == 0, out.stderr
    assert "bits_per_byte" in json.loads(out.stdout)["properties"]


@pytest.mark.llm
def test_perplexity_of_the_bundled_gguf_via_llama_cpp():
    out = qkv("eval", "-m", "gemma3-270m", "--text", str(DATA / "apache2_excerpt.txt"), "--window", "64",
              "--max-tokens", "129", "--json", timeout=300)
    assert out.returncode == 0, out.stderr
    r = PerplexityResult.model_validate(json.loads(out.stdout))
    assert r.backend == "llama-cpp" and r.tokens == 128 and r.stride == 32 and r.windows == 3
    assert 1 < r.token_ppl < 1000 and 0 < r.bits_per_byte < 8
