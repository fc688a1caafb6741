"""Protocol edges the server decides: an unknown tool or prompt is JSON-RPC -32602; on stdio a line that is
not JSON-RPC gets -32700 / -32600 (id null) instead of silence; over HTTP the bearer scheme is
case-insensitive, idle sessions expire, and a cancelled call ends its worker. A valid call follows each."""

from __future__ import annotations

import json
import subprocess
import time

import anyio
import httpx
import psutil
import pytest
from mcp.shared.exceptions import MCPError

from .conftest import QKV, cli_env, run_client, wait_for_http
from .test_mcp_http import free_port

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def test_unknown_tool_and_prompt_are_invalid_params(server):
    async def body(c):
        errors = []
        for call in (lambda: c.call_tool("vram_trac", {}), lambda: c.call_tool("", {}),
                     lambda: c.get_prompt("nope", {}), lambda: c.get_prompt("researcher", {})):
            try:
                await call()
                errors.append(None)
            except MCPError as exc:
                errors.append(exc)
            errors.append(await c.call_tool("params", {"model": "gpt2"}))  # a valid call after each
        return errors

    out = run_client(server, body)
    errors, goods = out[0::2], out[1::2]
    assert all(e is not None and e.code == -32602 for e in errors), errors
    assert "Unknown tool: vram_trac; did you mean: vram_trace" in errors[0].message
    assert errors[0].data["tools"][:2] == ["params", "vram"]
    assert errors[2].message == "Unknown prompt: nope"
    assert "prompt researcher" in errors[3].message and "task" in errors[3].message
    assert all(not g.is_error for g in goods)


def test_stdio_answers_lines_that_are_not_json_rpc(mcp_root, qkv_home):
    """Raw lines over the pipe: each unreadable one gets an error with id null, and the server keeps serving."""
    garbage = [
        ("{not json", -32700),
        (json.dumps([{"jsonrpc": "2.0", "id": 7, "method": "ping"}]), -32600),  # a batch
        ('{"jsonrpc": "2.0", "id": ' + "9" * 5000 + ', "method": "ping"}', -32700),  # a 5,000-digit integer
        ("[" * 2000 + "]" * 2000, -32700),  # nested 2,000 deep
        ('{"jsonrpc": "2.0", "id": 8}', -32600),  # neither request nor response
    ]
    proc = subprocess.Popen([QKV, "mcp", "--root", str(mcp_root)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(qkv_home))
    try:
        def send(line: str) -> None:
            proc.stdin.write(line + "\n")
            proc.stdin.flush()

        def reply() -> dict:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            return json.loads(line)

        send(json.dumps(INIT))
        assert reply()["id"] == 1
        send(json.dumps(INITIALIZED))
        for n, (line, code) in enumerate(garbage):
            start = time.monotonic()
            send(line)
            err = reply()
            assert err["id"] is None and err["error"]["code"] == code, (line[:40], err)
            assert time.monotonic() - start < 10
            send(json.dumps({"jsonrpc": "2.0", "id": 100 + n, "method": "tools/call",
                             "params": {"name": "params", "arguments": {"model": "gpt2"}}}))
            ok = reply()
            assert ok["id"] == 100 + n and ok["result"]["structuredContent"]["total"] == 124_439_808
        send(json.dumps({"jsonrpc": "2.0", "id": 200, "method": "tools/call", "params": {"name": "nope"}}))
        unknown = reply()
        assert unknown["id"] == 200 and unknown["error"]["code"] == -32602
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()


@pytest.fixture(scope="module")
def http_idle(mcp_root, qkv_home):
    """An HTTP server whose idle sessions expire after 1 s."""
    port = free_port()
    proc = subprocess.Popen([QKV, "mcp", "--transport", "http", "--port", str(port), "--root", str(mcp_root),
                             "--session-idle-timeout", "1"],
                            env={**cli_env(qkv_home), "QKV_MCP_TOKEN": "s3cret"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    wait_for_http(url, proc)
    yield url, proc
    proc.terminate()
    proc.wait(timeout=30)
    proc.stderr.close()


HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def post(url: str, body, auth: str = "Bearer s3cret", session: str | None = None, raw: str | None = None):
    headers = {**HEADERS, "Authorization": auth}
    if session:
        headers |= {"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    return httpx.post(url, content=raw if raw is not None else json.dumps(body), headers=headers, timeout=30)


def rpc(response: httpx.Response) -> dict:
    """The JSON-RPC message of a response (plain JSON or one SSE event)."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
        return json.loads(data[-1])
    return response.json()


def test_bearer_scheme_is_case_insensitive(http_idle):
    url, _ = http_idle
    for auth, status in (("bearer s3cret", 200), ("BEARER s3cret", 200), ("Bearer  s3cret", 200),
                         ("Basic s3cret", 401), ("bearer nope", 401), ("s3cret", 401),
                         ("Bearer", 401)):
        assert post(url, INIT, auth=auth).status_code == status, auth


def test_idle_http_sessions_expire(http_idle):
    url, _ = http_idle
    opened = post(url, INIT)
    session = opened.headers["mcp-session-id"]
    assert post(url, INITIALIZED, session=session).status_code == 202
    listed = post(url, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session=session)
    assert listed.status_code == 200 and rpc(listed)["result"]["tools"]
    time.sleep(2.5)  # past the 1 s idle limit
    expired = post(url, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, session=session)
    assert expired.status_code == 404
    fresh = post(url, INIT)  # a new session works
    assert fresh.status_code == 200 and fresh.headers["mcp-session-id"] != session


def test_http_malformed_bodies_get_json_rpc_errors(http_idle):
    """What the SDK's HTTP transport answers by itself (documented in docs/mcp.md)."""
    url, _ = http_idle
    bad_json = post(url, None, raw="{not json")
    assert bad_json.status_code == 400 and rpc(bad_json)["error"]["code"] == -32700
    batch = post(url, [INIT])
    assert batch.status_code == 400 and rpc(batch)["error"]["code"] == -32602  # the SDK's choice for a batch
    huge = post(url, None, raw='{"jsonrpc": "2.0", "id": ' + "9" * 5000 + ', "method": "ping"}')
    assert huge.status_code == 400 and rpc(huge)["error"]["code"] == -32700
    assert post(url, INIT).status_code == 200


@pytest.mark.slow
def test_a_cancelled_http_call_ends_its_worker(http_idle, mcp_root):
    url, proc = http_idle

    def workers() -> set[int]:
        return {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}

    async def main():
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        async with (httpx2.AsyncClient(headers={"Authorization": "bearer s3cret"}, timeout=60) as http,
                    Client(streamable_http_client(url, http_client=http)) as c):
            before = workers()
            scope = anyio.CancelScope()

            async def call():
                with scope:
                    await c.call_tool("vram_trace", {"model": "llama-3.1-70b", "method": "lora", "seq": 4096})

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                start = time.monotonic()
                while not workers() - before:
                    assert time.monotonic() - start < 30
                    await anyio.sleep(0.05)
                started = workers() - before
                await anyio.sleep(1.0)
                scope.cancel()
                cancelled = time.monotonic()
                while workers() & started:
                    assert time.monotonic() - cancelled < 10
                    await anyio.sleep(0.02)
                gone = time.monotonic() - cancelled
            after = await c.call_tool("params", {"model": "gpt2"})
            return gone, after

    gone, after = anyio.run(main)
    assert gone < 2.0, gone
    assert not after.is_error
