"""`qkv mcp --list`: the tools and their schemas, exactly as a connecting client sees them."""

from __future__ import annotations

import json
import subprocess

from qkv.agent.mcp_tools import bound_tools

from .conftest import QKV, cli_env


def test_list_json_prints_tools_and_schemas(qkv_home, mcp_root):
    out = subprocess.run([QKV, "mcp", "--list", "--json", "--root", str(mcp_root)], capture_output=True,
                         text=True, env=cli_env(qkv_home), timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    ready = bound_tools()
    by_name = {t["name"]: t for t in doc["tools"]}
    assert list(by_name) == [b.spec.name for b in ready]
    for b in ready:
        assert by_name[b.spec.name]["output_schema"] == b.result.model_json_schema(mode="serialization")
        if b.request is not None:
            assert by_name[b.spec.name]["input_schema"] == b.request.model_json_schema()
    assert [r["uri"] for r in doc["resources"]] == ["qkv://catalog/models", "qkv://catalog/gpus"]
    assert doc["prompts"][0]["name"] == "researcher" and "pending" not in doc


def test_list_table_and_bad_options(mcp_root):
    """In process (typer's runner): the table view and the usage errors main() turns into exit 2."""
    from typer.testing import CliRunner

    from qkv.agent.cli import app
    from qkv.tools.errors import BadInput

    runner = CliRunner()
    out = runner.invoke(app, ["mcp", "--list", "--root", str(mcp_root)])
    assert out.exit_code == 0, out.output
    assert "vram_trace" in out.output and "lora_targets" in out.output and "qkv://catalog/gpus" in out.output
    bad = runner.invoke(app, ["mcp", "--transport", "sse"])
    assert isinstance(bad.exception, BadInput) and "expected stdio or http" in str(bad.exception)
    assert bad.exception.exit_code == 2
    missing = runner.invoke(app, ["mcp", "--root", "/no/such/dir", "--list"])
    assert isinstance(missing.exception, BadInput) and "not an existing folder" in str(missing.exception)
