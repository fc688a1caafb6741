"""Safe by default: no serving `/` or the home folder without saying so, the client's MCP roots narrow the
allowed roots, an empty model name is a missing value, and a file read back word for word (the audit's
terms) cannot carry a secret out. Each refusal is followed by a valid call."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from qkv.agent.mcp_limits import BroadRoot, looks_like_term
from qkv.agent.mcp_safety import Sandbox
from qkv.agent.mcp_server import build_server

from .conftest import QKV, TINY_LLAMA, cli_env, run_client

CANARY = "sk-canary-7f3a9c0d1e2b4a5f"


def test_started_in_the_filesystem_root_without_root_it_refuses_quickly(qkv_home):
    start = time.monotonic()
    out = subprocess.run([QKV, "mcp"], cwd="/", capture_output=True, text=True, env=cli_env(qkv_home),
                         stdin=subprocess.DEVNULL, timeout=60)
    took = time.monotonic() - start
    assert out.returncode == 2, out.stderr
    assert "without --root in / (the filesystem root)" in out.stderr
    assert "--root FOLDER" in out.stderr and "--allow-broad-root" in out.stderr
    assert out.stdout == ""  # nothing on the protocol stream
    assert took < 10, took


def test_home_folder_and_explicit_broad_roots_are_refused(qkv_home, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**cli_env(qkv_home), "HOME": str(home)}
    implicit = subprocess.run([QKV, "mcp"], cwd=home, capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=60)
    assert implicit.returncode == 2 and "(your home folder)" in implicit.stderr
    for root in ("/", str(home), str(tmp_path)):  # tmp_path holds the home folder
        explicit = subprocess.run([QKV, "mcp", "--root", root], capture_output=True, text=True, env=env,
                                  stdin=subprocess.DEVNULL, timeout=60)
        assert explicit.returncode == 2 and f"--root {root} is" in explicit.stderr, explicit.stderr
    listing = subprocess.run([QKV, "mcp", "--list", "--json"], cwd=home, capture_output=True, text=True, env=env,
                             timeout=120)  # a listing reads no file: it runs anywhere
    assert listing.returncode == 0 and json.loads(listing.stdout)["tools"]


def test_allow_broad_root_serves_it_when_asked(qkv_home):
    with pytest.raises(BroadRoot):
        Sandbox.from_dirs(["/"])
    assert Sandbox.from_dirs(["/"], allow_broad=True).roots == (Path("/"),)
    params = StdioServerParameters(command=QKV, args=["mcp", "--root", "/", "--allow-broad-root"],
                                   env=cli_env(qkv_home), cwd="/")
    result = run_client(params, lambda c: c.call_tool("params", {"model": "gpt2"}))
    assert not result.is_error and result.structured_content["total"] == 124_439_808


def test_empty_model_names_are_missing_values(server):
    async def body(c):
        seen = []
        for name, args in [("params", {"model": ""}), ("params", {"model": "  "}), ("params", {"model": "."}),
                           ("params", {"model": "./"}), ("vram", {"model": "", "method": "lora"}),
                           ("audit", {"tokenizers": [""], "corpus": ["x.txt"]}),
                           ("audit", {"tokenizers": ["gpt2"], "corpus": ["."]}),
                           ("evaluate", {"predictions": " ", "references": "x"})]:
            bad = await c.call_tool(name, args)
            good = await c.call_tool("params", {"model": "llama-2-7b"})
            seen.append((args, bad, good))
        return seen

    for args, bad, good in run_client(server, body):
        text = bad.content[0].text
        assert bad.is_error and " is missing (got " in text, (args, text)
        assert "FIFO" not in text and "pipe" not in text  # the root folder was not walked
        assert not good.is_error


@pytest.fixture(scope="module")
def terms_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mcp-terms")
    (root / "contract.txt").write_text("The lessee shall indemnify the lessor. Force majeure applies.\n" * 30)
    (root / ".env").write_text(f"# local settings\nOPENAI_API_KEY={CANARY}\nDEBUG=1\n")
    (root / "tokens.txt").write_text(f"force majeure\n{CANARY}\n")
    (root / "terms.txt").write_text("# terms of art\nforce majeure\nindemnify\nlessee\n5-fluorouracil\n")
    return root


def test_a_terms_file_never_echoes_secrets(terms_root):
    server = build_server(Sandbox.from_dirs([terms_root]))
    base = {"tokenizers": ["gpt2"], "corpus": ["contract.txt"], "extend": False, "top_words": 3}

    async def body(c):
        env = await c.call_tool("audit", {**base, "terms": ".env"})
        key = await c.call_tool("audit", {**base, "terms": "tokens.txt"})
        good = await c.call_tool("audit", {**base, "terms": "terms.txt"})
        return env, key, good

    env, key, good = run_client(server, body)
    for bad, line in ((env, 2), (key, 2)):
        text = bad.content[0].text
        assert bad.is_error and f"terms: line {line} does not look like a term of art" in text, text
        assert CANARY not in text and "OPENAI" not in text
    assert not good.is_error, good.content[0].text
    terms = good.structured_content["tokenizers"][0]["terms"]["terms"]
    assert [t["term"] for t in terms] == ["force majeure", "indemnify", "lessee", "5-fluorouracil"]


def test_what_looks_like_a_term():
    for term in ("force majeure", "GQA", "5-fluorouracil", "Lloyd's", "and/or", "immunohistochemistry"):
        assert looks_like_term(term), term
    for line in ("OPENAI_API_KEY=sk-abc", "user:hunter2", CANARY, "ghp_0123456789abcdefABCDEF0123456789abcd",
                 "a b c d e f", "x" * 41, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "{\"key\": 1}"):
        assert not looks_like_term(line), line


@pytest.fixture(scope="module")
def roots_base(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("mcp-roots")
    for folder in ("project", "other"):
        (base / folder / "tiny").mkdir(parents=True)
        (base / folder / "tiny" / "config.json").write_text(json.dumps(TINY_LLAMA))
    (base.parent / f"{base.name}-elsewhere").mkdir(exist_ok=True)
    return base


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28 (input-required round) and 2025-11-25
def test_client_roots_narrow_the_allowed_roots(roots_base, mode):
    server = build_server(Sandbox.from_dirs([roots_base]))
    asked: list[int] = []

    def client_roots(*folders: Path):
        async def callback(context) -> types.ListRootsResult:
            asked.append(1)
            return types.ListRootsResult(roots=[types.Root(uri=f.as_uri(), name=f.name) for f in folders])
        return callback

    async def calls(callback):
        async with Client(server, mode=mode, list_roots_callback=callback, read_timeout_seconds=60) as c:
            inside = await c.call_tool("params", {"model": "./tiny"})  # relative: against the client's root
            other = await c.call_tool("params", {"model": str(roots_base / "other" / "tiny")})
            catalog = await c.call_tool("params", {"model": "gpt2"})  # a name: no roots asked
            return inside, other, catalog

    inside, other, catalog = anyio.run(calls, client_roots(roots_base / "project"))
    assert not inside.is_error, inside.content[0].text
    assert inside.structured_content["total"] > 0
    assert other.is_error and "outside the allowed roots" in other.content[0].text
    assert not catalog.is_error and len(asked) == 2

    elsewhere = roots_base.parent / f"{roots_base.name}-elsewhere"
    inside, other, catalog = anyio.run(calls, client_roots(elsewhere))  # no overlap: no file may be read
    assert inside.is_error and "none is left" in inside.content[0].text
    assert other.is_error and not catalog.is_error
