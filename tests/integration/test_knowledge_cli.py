"""`qkv scale | size | hparams | context | sampling | profile` as a user runs them: the real entry
point (`qkv.agent.cli:main`), exit codes, JSON that validates against the documented models."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from qkv.agent.cli import main
from qkv.tools.knowledge.context_rules import ContextPlan
from qkv.tools.knowledge.hparams import HparamPlan
from qkv.tools.knowledge.layer_profile import LayerProfile
from qkv.tools.knowledge.sampling_rules import SamplingCheck, SamplingRecommendation
from qkv.tools.knowledge.scaling import ScaleReport
from qkv.tools.knowledge.schema import figures
from qkv.tools.knowledge.sizing import ArchitectureProposal
from qkv.tools.knowledge.sources import SOURCES


def run(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """Run `qkv ARGS` through the real entry point in this process; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["qkv", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(("args", "model"), [
    (["scale", "--flops", "1e21", "--gpu", "H100", "--gpus", "8", "--mfu", "0.4"], ScaleReport),
    (["scale", "--params", "7e9", "--inference-tokens", "1e12", "--fit", "hoffmann"], ScaleReport),
    (["size", "--params", "1e9"], ArchitectureProposal),
    (["hparams", "llama-2-7b", "--method", "qlora", "--tokens", "1e8"], HparamPlan),
    (["hparams", "--params", "70e9", "--method", "pretrain"], HparamPlan),
    (["context", "llama-2-7b", "--tokens", "16000"], ContextPlan),
    (["sampling", "code"], SamplingRecommendation),
    (["profile", "gemma-3-270m", "--seq", "8192"], LayerProfile),
])
def test_json_is_the_pydantic_schema_with_sources(capsys, monkeypatch, args, model):
    code, out, err = run(capsys, monkeypatch, *args, "--json")
    assert code == 0, err
    result = model.model_validate(json.loads(out))
    assert result.sources and set(result.sources) <= set(SOURCES)
    for fig in figures(result):
        assert fig.provenance in ("analytic", "cited")
        assert fig.sources or fig.provenance == "analytic"


@pytest.mark.parametrize(("args", "shown"), [
    (["scale", "--flops", "1e21", "--gpu", "H100", "--gpus", "8"], ["parameters N", "days", "Approach-3"]),
    (["size", "--params", "7e9"], ["d_model", "llama-2-7b", "exact parameters"]),
    (["hparams", "--params", "7e9", "--method", "lora"], ["learning rate", "cited: dettmers2023", "LoRA r"]),
    (["context", "llama-2-7b", "--tokens", "16000"], ["rope_scaling", "yarn", "Lost in the middle"]),
    (["sampling"], ["summarisation", "translation", "chen2021"]),
    (["profile", "llama-3.1-8b", "--seq", "4096"], ["GQA", "attention dominates from"]),
])
def test_tables_show_the_figures(capsys, monkeypatch, args, shown):
    code, out, err = run(capsys, monkeypatch, *args)
    assert code == 0, err
    for text in shown:
        assert text in out, text


@pytest.mark.parametrize(("args", "what"), [
    (["scale", "--flops", "0"], "--flops is 0"),
    (["scale", "--flops", "-1e21"], "finite positive"),
    (["scale", "--flops", "1e21", "--mfu", "0"], "MFU is 0"),
    (["scale", "--flops", "1e21", "--mfu", "1.2"], "(0, 1]"),
    (["scale"], "exactly one of"),
    (["size", "--params", "-5"], "--params"),
    (["hparams", "--params", "7e9", "--method", "dpo"], "--method"),
    (["hparams"], "exactly one"),
    (["context", "llama-2-7b", "--tokens", "10000000", "--need-full-attention"], "exceed"),
    (["context", "llama-2-7b", "--tokens", "0"], "--tokens is 0"),
    (["sampling", "poetry-slam"], "no decoding preset"),
    (["profile", "gpt2", "--seq", "0"], "--seq is 0"),
    (["profile", "lama-2-7b"], "llama-2-7b"),
])
def test_impossible_inputs_are_one_line_and_exit_2(capsys, monkeypatch, args, what):
    code, out, err = run(capsys, monkeypatch, *args)
    assert code == 2 and not out
    assert err.startswith("qkv: error:") and what in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_sampling_check_exits_1_on_an_unbounded_policy(capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, "sampling", "--check", "--temperature", "1.0", "--top-p", "1.0",
                       "--top-k", "0", "--json")
    assert code == 1
    check = SamplingCheck.model_validate(json.loads(out))
    assert check.status == "fail" and not check.bounded
    code, out, _ = run(capsys, monkeypatch, "sampling", "qa", "--check", "--temperature", "0")
    assert code == 0 and out.startswith("pass")


def test_size_saves_a_config_that_qkv_params_counts_identically(capsys, monkeypatch, tmp_path):
    path = tmp_path / "my-1b" / "config.json"
    code, out, err = run(capsys, monkeypatch, "size", "--params", "1e9", "--save-config", str(path), "--json")
    assert code == 0, err
    proposal = json.loads(out)
    assert json.loads(path.read_text()) == proposal["config"] and not list(path.parent.glob("*.tmp"))
    code, out, err = run(capsys, monkeypatch, "params", str(path), "--json")
    assert code == 0, err
    assert json.loads(out)["total"] == proposal["params"]


def test_help_teaches_and_schemas_are_registered(capsys, monkeypatch):
    for command in ("scale", "size", "hparams", "context", "sampling", "profile"):
        code, out, _ = run(capsys, monkeypatch, command, "--help")
        assert code == 0 and "Example" in out, command
    code, out, _ = run(capsys, monkeypatch, "schema", "scale")
    assert code == 0 and "ScaleRequest" in json.loads(out)["$defs"]


def test_knowledge_commands_import_no_heavy_library():
    code = (
        "import sys\n"
        "from qkv.agent.cli import main\n"
        "runs = [['scale', '--flops', '1e21', '--gpu', 'H100'], ['size', '--params', '7e9'],\n"
        "        ['hparams', 'llama-2-7b', '--method', 'qlora'], ['context', 'llama-2-7b', '--tokens', '16000'],\n"
        "        ['sampling', 'chat'], ['profile', 'mixtral-8x7b']]\n"
        "for args in runs:\n"
        "    sys.argv = ['qkv', *args, '--json']\n"
        "    try:\n        main()\n    except SystemExit as e:\n        assert not e.code, (args, e.code)\n"
        "heavy = [m for m in ('torch', 'transformers', 'bitsandbytes', 'peft', 'llama_cpp') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
