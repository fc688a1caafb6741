"""The researcher-knowledge tools, the tokenizer audit and the full design report through the in-memory
client: structured results equal the CLI's --json or the tool function's own output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from qkv.agent.mcp_safety import Sandbox
from qkv.agent.mcp_server import build_server

from .conftest import cli_json, run_client


def call(server, name: str, args: dict | None = None, **kw):
    return run_client(server, lambda c: c.call_tool(name, args or {}, **kw))


def ok(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def test_knowledge_tools_equal_cli_json(server, qkv_home):
    assert ok(call(server, "profile", {"model": "gemma-3-270m", "seq": 8192})) == \
        cli_json("profile", "gemma-3-270m", "--seq", "8192", home=qkv_home)
    assert ok(call(server, "scale", {"flops": 1e21, "gpu": "h100-sxm", "gpus": 8})) == \
        cli_json("scale", "--flops", "1e21", "--gpu", "h100-sxm", "--gpus", "8", home=qkv_home)
    assert ok(call(server, "context", {"model": "llama-2-7b", "tokens": 16000})) == \
        cli_json("context", "llama-2-7b", "--tokens", "16000", home=qkv_home)
    assert ok(call(server, "sampling", {"task": "code"})) == cli_json("sampling", "code", home=qkv_home)


def test_knowledge_tools_equal_functions(server):
    from qkv.tools.knowledge.hparams import HparamRequest, recommend_hparams
    from qkv.tools.knowledge.sampling_rules import check_sampling
    from qkv.tools.knowledge.sizing import SizeRequest, size_architecture
    from qkv.tools.sampling import SamplingPolicy

    def same(name, args, expected):
        assert ok(call(server, name, args)) == json.loads(expected.model_dump_json())

    same("hparams", {"model": "llama-2-7b", "method": "qlora"},
         recommend_hparams(HparamRequest(model="llama-2-7b", method="qlora")))
    same("size", {"params": 1e9}, size_architecture(SizeRequest(params=1e9)))
    unbounded = {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "max_new_tokens": None}
    same("sampling_check", {"policy": unbounded, "task": "chat"},
         check_sampling(SamplingPolicy(**unbounded), "chat"))
    assert ok(call(server, "sampling_check", {"policy": unbounded}))["status"] == "fail"  # hard rule 3
    bad = call(server, "sampling_check", {"policy": {"top_p": 3}, "taks": "chat"})
    assert bad.is_error and "taks" in bad.content[0].text
    assert ok(call(server, "scale", {"params": 7e9}))  # still serving


@pytest.fixture(scope="module")
def corpus_root(mcp_root):
    """Real legal prose (the GPL and Apache licence texts) inside the allowed root."""
    folder = mcp_root / "corpus"
    folder.mkdir(exist_ok=True)
    for name in ("GPL-3", "Apache-2.0"):
        shutil.copy(f"/usr/share/common-licenses/{name}", folder / f"{name}.txt")
    return folder


def test_audit_equals_function_and_reports_progress(server, corpus_root, mcp_root):
    from qkv.tools.tokenizer.audit import audit
    from qkv.tools.tokenizer.schema import AuditRequest

    updates: list[float] = []

    async def on_progress(progress, total, message):
        updates.append(progress)

    args = {"tokenizers": ["gpt2"], "corpus": ["corpus/*.txt"], "extend": False, "top_words": 5}
    got = ok(call(server, "audit", args, progress_callback=on_progress))
    files = sorted(str(p) for p in corpus_root.glob("*.txt"))
    expected = audit(AuditRequest(**{**args, "corpus": files}))
    assert got == json.loads(expected.model_dump_json())
    assert got["corpus"]["sources"] == files  # the glob was expanded inside the root
    assert updates and updates == sorted(updates)
    stdin = call(server, "audit", {**args, "corpus": ["-"]})
    assert stdin.is_error and "stdin" in stdin.content[0].text
    escape = call(server, "audit", {**args, "corpus": ["../outside/*"]})
    assert escape.is_error and "outside the allowed roots" in escape.content[0].text


@pytest.mark.slow
def test_design_report_equals_cli_json(mcp_root, qkv_home):
    server = build_server(Sandbox.from_dirs([mcp_root]))
    task = "fine-tune a 7B model for legal summarisation on one 24 GB GPU"
    got = ok(call(server, "design", {"task": task, "gpu": "rtx-4090"}))
    assert got == cli_json("design", task, "--gpu", "rtx-4090", home=qkv_home)
    assert len(got["checks"]) == 4  # the three hard rules and the stated constraints, each with a status
    refused = call(server, "design", {"task": task, "llm": "http://10.0.0.1:8080/v1"})
    assert refused.is_error and "URL" in refused.content[0].text


@pytest.fixture(scope="module")
def eval_files(mcp_root):
    """Two systems' outputs and references (one per line) inside the root."""
    folder = mcp_root / "eval"
    folder.mkdir(exist_ok=True)
    (folder / "preds.txt").write_text("the cat sat on the mat\nthe contract ends in May\n")
    (folder / "refs.txt").write_text("the cat sat on a mat\nthe agreement ends in May\n")
    (folder / "text.txt").write_text(Path("/usr/share/common-licenses/Apache-2.0").read_text()[:600])
    return folder


def test_evaluate_equals_cli_json(server, eval_files, qkv_home):
    got = ok(call(server, "evaluate", {"predictions": "eval/preds.txt", "references": "eval/refs.txt",
                                       "task": "translation"}))
    assert got == cli_json("eval", "-p", str(eval_files / "preds.txt"), "-r", str(eval_files / "refs.txt"),
                           "--task", "translation", home=qkv_home)
    assert {m["name"] for m in got["metrics"]} >= {"bleu", "chrf"}
    bad = call(server, "evaluate", {"predictions": "eval/preds.txt", "references": "/etc/hostname"})
    assert bad.is_error and "outside the allowed roots" in bad.content[0].text


@pytest.mark.slow
@pytest.mark.llm
def test_perplexity_on_the_bundled_gguf_equals_function(server, eval_files, qkv_home, monkeypatch):
    from qkv.tools.evaluate.api import evaluate_perplexity
    from qkv.tools.evaluate.schema import PerplexityRequest

    monkeypatch.setenv("QKV_HOME", str(qkv_home))  # the bundled GGUF is assembled there, not in ~/.local
    updates: list[float] = []

    async def on_progress(progress, total, message):
        updates.append(progress)

    args = {"model": "gemma3-270m", "text_file": "eval/text.txt", "window": 64}
    got = ok(call(server, "perplexity", args, progress_callback=on_progress))
    expected = evaluate_perplexity(PerplexityRequest(**{**args, "text_file": str(eval_files / "text.txt")}))
    assert got == json.loads(expected.model_dump_json())
    assert got["backend"] == "llama-cpp" and got["tokens"] > 50
    assert updates and updates == sorted(updates)
