"""`qkv mcp` as a desktop agent runs it: a subprocess on stdio, driven by the SDK's stdio client."""

from __future__ import annotations

import pytest
from mcp import StdioServerParameters
from mcp.shared.exceptions import MCPError

from .conftest import QKV, cli_env, cli_json, run_client


@pytest.fixture(scope="module")
def stdio_params(mcp_root, qkv_home) -> StdioServerParameters:
    # cwd is elsewhere on purpose: relative paths resolve against --root, as a desktop agent needs.
    return StdioServerParameters(command=QKV, args=["mcp", "--root", str(mcp_root)], env=cli_env(qkv_home),
                                 cwd=str(mcp_root.parent))


def test_stdio_session_lists_calls_and_survives_errors(stdio_params, qkv_home, mcp_root):
    async def body(c):
        names = [t.name for t in (await c.list_tools()).tools]
        params = await c.call_tool("params", {"model": "gemma-3-270m"})
        folder = await c.call_tool("params", {"model": "tiny-llama"})
        vram = await c.call_tool("vram", {"model": "qwen2.5-7b", "method": "lora", "gpu": "a100-40gb"})
        errors = [await c.call_tool("vram", {"model": ["not", "a", "string"]}),
                  await c.call_tool("params", {"model": ""}),
                  await c.call_tool("params", {"model": "../outside/config.json"}),
                  await c.call_tool("params", {"model": "y" * 100_000})]
        try:  # an unknown tool is a protocol error (JSON-RPC -32602), not a tool result
            await c.call_tool("nope", {})
            unknown = None
        except MCPError as exc:
            unknown = exc
        after = await c.call_tool("params", {"model": "gpt2"})
        gpus = (await c.read_resource("qkv://catalog/gpus")).contents[0].text
        return names, params, folder, vram, errors, unknown, after, gpus

    names, params, folder, vram, errors, unknown, after, gpus = run_client(stdio_params, body)
    assert {"params", "vram", "vram_trace", "doctor"} <= set(names)
    assert params.structured_content == cli_json("params", "gemma-3-270m", home=qkv_home)
    assert folder.structured_content == cli_json("params", str(mcp_root / "tiny-llama"), home=qkv_home)
    assert vram.structured_content == cli_json("vram", "qwen2.5-7b", "--method", "lora", "--gpu", "a100-40gb",
                                               home=qkv_home)
    assert all(e.is_error for e in errors)
    assert "model is missing" in errors[1].content[0].text
    assert "outside the allowed roots" in errors[2].content[0].text
    assert unknown is not None and unknown.code == -32602 and "Unknown tool: nope" in unknown.message
    assert "100,000 characters" in errors[3].content[0].text
    assert not after.is_error and after.structured_content == cli_json("params", "gpt2", home=qkv_home)
    import json

    assert json.loads(gpus) == cli_json("gpus", home=qkv_home)


def test_stdout_carries_only_protocol_and_logs_go_to_stderr(mcp_root, qkv_home):
    """Raw JSON-RPC over the pipe with INFO logging on: every stdout line is a protocol message."""
    import json
    import subprocess

    msgs = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "raw-test", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "params", "arguments": {"model": 3}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "params", "arguments": {"model": "gpt2"}}},
    ]
    proc = subprocess.Popen([QKV, "mcp", "--root", str(mcp_root), "--log-level", "INFO"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(qkv_home))
    proc.stdin.write("".join(json.dumps(m) + "\n" for m in msgs))
    proc.stdin.flush()
    replies = []
    while not any(r.get("id") == 3 for r in replies):  # a client keeps stdin open until its replies arrive
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        replies.append(json.loads(line))  # fails on any stray print: stdout is the protocol
    proc.stdin.close()
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.wait(timeout=60)
    by_id = {r["id"]: r for r in replies if "id" in r}
    assert by_id[2]["result"]["isError"] is True
    assert by_id[3]["result"]["structuredContent"]["total"] == 124_439_808
    assert "qkv-mcp INFO" in stderr and "rejected arguments" in stderr
