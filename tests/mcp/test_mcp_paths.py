"""Globs and paths: a pattern is checked against the allowed roots before anything is listed, expansion never
enters a directory symlink (a link loop answers at once), stops at a stated number of matches, and no
error names a file outside the roots. Each bad call is followed by a valid one."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from mcp import Client

from qkv.agent.mcp_limits import InputTooLarge, Limits, PathRefused
from qkv.agent.mcp_safety import Sandbox
from qkv.agent.mcp_server import build_server

AUDIT = {"tokenizers": ["gpt2"], "extend": False, "top_words": 3}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("mcp-paths")
    root = base / "root"
    (root / "docs" / "sub").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("The lessee shall indemnify the lessor against all claims.\n" * 20)
    (root / "docs" / "sub" / "b.txt").write_text("Force majeure suspends the obligations of both parties.\n" * 20)
    (root / "docs" / ".env").write_text("OPENAI_API_KEY=sk-canary-0000\n")
    (root / "loop").mkdir()
    (root / "loop" / "again").symlink_to(root / "loop")  # a directory symlink loop
    (root / "loop" / "up").symlink_to(root)  # and one back up to the root
    (root / "linked").symlink_to(root / "docs")  # a symlinked folder: never entered by a glob
    (root / "many").mkdir()
    for i in range(300):
        (root / "many" / f"f{i:03d}.txt").write_text(f"document {i}\n")
    (base / "outside").mkdir()
    (base / "outside" / "secret-name.txt").write_text("not yours\n")
    return root


@pytest.fixture(scope="module")
def server(root):
    return build_server(Sandbox.from_dirs([root]))


def run(server, body):
    async def main():
        async with Client(server, read_timeout_seconds=120) as c:
            return await body(c)

    return anyio.run(main)


def test_a_glob_over_a_symlink_loop_answers_within_2_s_with_an_error(server):
    async def body(c):
        start = time.monotonic()
        looped = await c.call_tool("audit", {**AUDIT, "corpus": ["loop/**/*.txt"]})
        took = time.monotonic() - start
        good = await c.call_tool("audit", {**AUDIT, "corpus": ["docs/**/*.txt"]})
        return looped, took, good

    looped, took, good = run(server, body)
    assert took < 2.0, took
    assert looped.is_error and "no file inside the allowed roots matches loop/**/*.txt" in looped.content[0].text
    assert not good.is_error, good.content[0].text
    sources = good.structured_content["corpus"]["sources"]
    assert [Path(s).name for s in sources] == ["a.txt", "b.txt"]  # not linked/…, not .env


def test_patterns_reaching_outside_are_refused_before_expansion(server, root):
    patterns = ["/etc/[a-m]*", "~/.*", "../*", "../outside/*", "/usr/**/*", "loop/../../outside/*"]

    async def body(c):
        out = []
        for pattern in patterns:
            start = time.monotonic()
            bad = await c.call_tool("audit", {**AUDIT, "corpus": [pattern]})
            out.append((pattern, bad, time.monotonic() - start))
        # '..' is folded lexically before the check: through a link back to the root it stays inside
        folded = await c.call_tool("audit", {**AUDIT, "corpus": ["loop/up/../../outside/*"]})
        good = await c.call_tool("audit", {**AUDIT, "corpus": ["docs/*.txt"]})
        return out, folded, good

    out, folded, good = run(server, body)
    for pattern, bad, took in out:
        text = bad.content[0].text
        assert bad.is_error and text.startswith(f"audit: corpus[0]: {pattern} is outside the allowed roots or does "
                                                "not exist"), text
        assert "adduser" not in text and "secret-name" not in text and "passwd" not in text  # nothing was listed
        assert took < 2.0, (pattern, took)
    assert folded.is_error and "no file inside the allowed roots matches" in folded.content[0].text
    assert not good.is_error, good.content[0].text


def test_a_glob_stops_at_the_stated_number_of_matches(server):
    async def body(c):
        many = await c.call_tool("audit", {**AUDIT, "corpus": ["many/*.txt"]})
        fewer = await c.call_tool("audit", {**AUDIT, "corpus": ["many/f00*.txt"]})
        return many, fewer

    many, fewer = run(server, body)
    assert many.is_error and "many/*.txt matches more than 256 files" in many.content[0].text
    assert not fewer.is_error and fewer.structured_content["corpus"]["documents"] == 10


def test_expansion_does_not_follow_directory_symlinks_or_list_hidden_files(root):
    box = Sandbox.from_dirs([root], limits=Limits(max_list=1000))
    got = [Path(p).relative_to(root).as_posix() for p in box.expand_glob("**/*.txt") if "many" not in p]
    assert got == ["docs/a.txt", "docs/sub/b.txt"]
    assert box.expand_glob("docs/.*") == [str(root / "docs" / ".env")]  # hidden only when asked for
    assert box.expand_glob("*") == sorted(str(root / n) for n in ("docs", "linked", "loop", "many"))
    # A symlinked folder named before the wildcard is resolved and checked like any path.
    assert box.expand_glob("linked/*.txt") == [str(root / "docs" / "a.txt")]


def test_the_walk_itself_is_bounded(root, tmp_path):
    small = Sandbox.from_dirs([root], limits=Limits(max_glob_scan=50))
    with pytest.raises(InputTooLarge, match="looks at more than 50 entries"):
        small.expand_glob("**/*.md")
    (tmp_path / "out").symlink_to(root.parent / "outside")
    box = Sandbox.from_dirs([tmp_path])
    with pytest.raises(PathRefused) as info:  # a link on the fixed part of the pattern pointing out
        box.expand_glob("out/*")
    assert "outside the allowed roots or does not exist" in str(info.value) and "secret" not in str(info.value)


def test_errors_never_name_a_file_outside_the_roots(server, root):
    (root / "docs" / "leak.txt").symlink_to(root.parent / "outside" / "secret-name.txt")

    async def body(c):
        results = [await c.call_tool("evaluate", {"predictions": "docs/leak.txt", "references": "docs/a.txt"}),
                   await c.call_tool("audit", {**AUDIT, "corpus": ["docs/*.txt"]}),
                   await c.call_tool("params", {"model": "../outside/secret-name.txt"}),
                   await c.call_tool("params", {"model": "../outside/no-such-file.txt"})]
        good = await c.call_tool("params", {"model": "gpt2"})
        return results, good

    try:
        results, good = run(server, body)
    finally:
        (root / "docs" / "leak.txt").unlink()
    texts = [r.content[0].text for r in results]
    assert all(r.is_error for r in results)
    assert "docs/leak.txt is a symlink that escapes the allowed roots" in texts[0]
    assert "leak.txt is a symlink that escapes" in texts[1]
    assert all(str(root.parent / "outside") not in t for t in texts)  # no target shown
    # existing and missing files outside get the same answer
    assert texts[2].replace("secret-name.txt", "X") == texts[3].replace("no-such-file.txt", "X")
    assert not good.is_error
