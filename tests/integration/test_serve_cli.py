"""`qkv serve` as a user runs it: a real subprocess, JSON that is the pydantic schema, one-line errors, and
no torch on the path."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PY = sys.executable
ACCEPT = ["serve", "llama-3.1-70b", "--gpu", "h100-sxm", "--gpus", "4", "--concurrency", "50", "--context", "8192",
          "--tpot-ms", "50"]


def qkv(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "qkv.agent.cli", *args], capture_output=True, text=True, timeout=120)


def test_serve_imports_no_torch_and_prints_the_plan():
    code = (
        f"import sys; sys.argv = ['qkv', *{ACCEPT!r}]\n"
        "from qkv.agent.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'bitsandbytes', 'peft', 'llama_cpp') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "TP 4" in out.stdout and "fits" in out.stdout and "target tpot_ms 50" in out.stdout
    assert "None GiB" not in out.stdout


def test_serve_json_is_the_pydantic_schema():
    out = qkv(*ACCEPT, "--json")
    assert out.returncode == 0, out.stderr
    from qkv.tools.serve.schema import ServingPlan

    plan = ServingPlan.model_validate(json.loads(out.stdout))
    assert plan.fits and plan.tensor_parallel == 4 and plan.kv.max_concurrency >= 50
    assert all(m.provenance in ("analytic", "measured", "cited", "assumed") for m in plan.per_gpu)


@pytest.mark.parametrize(("args", "words"), [
    (["--gpu", "h100-sxm", "--engine", "vlm"], ["--engine", "vllm"]),
    (["--gpu", "h100-sxm", "--weights", "int3"], ["--weights", "fp8"]),
    (["--gpu", "h1000"], ["unknown GPU", "h100"]),
    (["--gpu", "h100-sxm", "--context", "100", "--output-tokens", "200"], ["--output-tokens", "--context"]),
    (["--gpu", "m3-max-128gb"], ["needs a CUDA or ROCm GPU", "llama.cpp"]),
])
def test_bad_input_is_one_line_with_choices(args, words):
    out = qkv("serve", "llama-3.1-8b", *args)
    assert out.returncode == 2
    line = out.stderr.strip()
    assert line.count("\n") == 0 and "Traceback" not in line
    assert all(w in line for w in words), line


def test_mcp_serve_plan_equals_the_function_and_refuses_unknown_keys(tmp_path):
    import anyio
    from mcp import Client

    from qkv.agent.mcp_safety import Sandbox
    from qkv.agent.mcp_server import build_server
    from qkv.tools.serve import ServingRequest, plan_serving

    server = build_server(Sandbox.from_dirs([tmp_path]))
    args = {"model": "llama-3.1-70b", "gpu": "h100-sxm", "gpus": 4, "concurrency": 50, "context": 8192,
            "tpot_ms": 50}

    async def body(c):
        return (await c.call_tool("serve_plan", args),
                await c.call_tool("serve_plan", {**args, "tp_size": 4}),
                await c.call_tool("serve_plan", {**args, "concurrency": True}))

    async def main():
        async with Client(server, read_timeout_seconds=120) as client:
            return await body(client)

    good, unknown, boolean = anyio.run(main)
    assert not good.is_error
    assert good.structured_content == plan_serving(ServingRequest(**args)).model_dump(mode="json")
    for bad in (unknown, boolean):
        assert bad.is_error and "\n" not in bad.content[0].text
    assert "tp_size" in unknown.content[0].text and "serve_plan takes:" in unknown.content[0].text
