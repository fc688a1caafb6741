"""Streamable HTTP on 127.0.0.1 with a bearer token: 401 without it, a working session with it."""

from __future__ import annotations

import socket
import subprocess

import httpx
import pytest

from .conftest import QKV, cli_env, cli_json, wait_for_http


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def http_server(mcp_root, qkv_home):
    port = free_port()
    proc = subprocess.Popen([QKV, "mcp", "--transport", "http", "--port", str(port), "--root", str(mcp_root)],
                            env={**cli_env(qkv_home), "QKV_MCP_TOKEN": "s3cret"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    wait_for_http(url, proc)
    yield url
    proc.terminate()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, -15), err.decode()


def test_without_token_is_401(http_server):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    assert httpx.post(http_server, json=body, timeout=10).status_code == 401
    wrong = httpx.post(http_server, json=body, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401


def test_with_token_calls_tools(http_server, qkv_home):
    import anyio
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def main():
        async with (httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}, timeout=60) as http,
                    Client(streamable_http_client(http_server, http_client=http)) as c):
            names = [t.name for t in (await c.list_tools()).tools]
            bad = await c.call_tool("params", {"model": "/etc/passwd"})
            good = await c.call_tool("params", {"model": "llama-2-13b"})
            return names, bad, good

    names, bad, good = anyio.run(main)
    assert "vram" in names
    assert bad.is_error and "outside the allowed roots" in bad.content[0].text
    assert good.structured_content == cli_json("params", "llama-2-13b", home=qkv_home)
