"""Fixtures for the MCP tests: an allowed root with real files, the in-memory server, and the CLI's --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client

from qkv.agent.mcp_limits import Limits
from qkv.agent.mcp_safety import Sandbox
from qkv.agent.mcp_server import build_server

QKV = str(Path(sys.executable).parent / "qkv")

# A small Llama-shaped config.json (HF field names) that the resolver reads from disk.
TINY_LLAMA = {
    "model_type": "llama", "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096, "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
}


def cli_env(home: Path) -> dict[str, str]:
    return {**os.environ, "QKV_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def cli_json(*args: str, home: Path, cwd: Path | None = None) -> object:
    """Run the real `qkv ... --json` and parse its stdout."""
    out = subprocess.run([QKV, *args, "--json"], capture_output=True, text=True, env=cli_env(home), cwd=cwd,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def mcp_root(tmp_path_factory) -> Path:
    """An allowed root holding a model folder, a config file, and a file outside it to escape to."""
    base = tmp_path_factory.mktemp("mcp")
    root = base / "root"
    (root / "tiny-llama").mkdir(parents=True)
    (root / "tiny-llama" / "config.json").write_text(json.dumps(TINY_LLAMA))
    (base / "outside").mkdir()
    (base / "outside" / "config.json").write_text(json.dumps(TINY_LLAMA))
    return root


@pytest.fixture(scope="session")
def sandbox(mcp_root: Path) -> Sandbox:
    # Small string ceiling so the oversized-input tests stay cheap; file limits as shipped.
    return Sandbox.from_dirs([mcp_root], limits=Limits(max_string=2048))


@pytest.fixture(scope="session")
def server(sandbox: Sandbox):
    return build_server(sandbox)


def run_client(server_or_params, body):
    """Open a real SDK client (in memory for an MCPServer, a subprocess for StdioServerParameters) and run
    `body(client)` in a fresh event loop."""

    async def main():
        async with Client(server_or_params, read_timeout_seconds=120) as client:
            return await body(client)

    return anyio.run(main)


def wait_for_http(url: str, proc) -> None:
    """Until the server at `url` listens (Python start-up and imports take seconds); fail if it exits."""
    import time

    import httpx

    for _ in range(300):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.1)
