"""Long tools run in a worker process that a cancelled, timed-out or failed call ends: the process is gone
within 2 s, the one-long-tool slot is free again, and the next call works (in memory and over stdio)."""

from __future__ import annotations

import os
import signal
import time

import anyio
import psutil
import pytest
from mcp import Client, StdioServerParameters

from qkv.agent.mcp_safety import Sandbox
from qkv.agent.mcp_server import build_server
from qkv.tools.errors import BadInput

from .conftest import QKV, cli_env

# A trace that runs for many seconds even on a warm worker (10 s on a quiet 2-core machine).
LONG_TRACE = {"model": "llama-3.1-70b", "method": "lora", "seq": 4096}
SCORE = {"predictions": "preds.txt", "references": "refs.txt", "task": "classification"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mcp-process")
    (folder / "preds.txt").write_text("yes\nno\nyes\n")
    (folder / "refs.txt").write_text("yes\nno\nno\n")
    return folder


def descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


async def wait_for(predicate, timeout: float) -> float:
    """Seconds until predicate() holds (polled every 20 ms); fails after `timeout`."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, f"not within {timeout} s"
        await anyio.sleep(0.02)
    return time.monotonic() - start


async def cancel_running_trace(client: Client, before: set[int]) -> tuple[set[int], float, list[str]]:
    """Start a long vram_trace, wait until its worker process runs and a heartbeat arrived, cancel the call
    (the SDK client's own cancellation), and measure how long the worker takes to disappear."""
    messages: list[str] = []

    async def on_progress(progress, total, message):
        messages.append(message or "")

    scope = anyio.CancelScope()

    async def call():
        with scope:
            await client.call_tool("vram_trace", LONG_TRACE, progress_callback=on_progress)
        assert scope.cancelled_caught, "the trace finished before it was cancelled"

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await wait_for(lambda: descendants() - before, 30)
        workers = descendants() - before
        await wait_for(lambda: any("running" in m for m in messages), 10)  # heartbeats flow meanwhile
        scope.cancel()
        gone = await wait_for(lambda: not (descendants() & workers), 10)
    return workers, gone, messages


@pytest.mark.slow
def test_cancelled_trace_ends_its_worker_in_memory(root):
    server = build_server(Sandbox.from_dirs([root]))

    async def main():
        before = descendants()
        async with Client(server, read_timeout_seconds=120) as c:
            workers, gone, messages = await cancel_running_trace(c, before)
            after = await c.call_tool("evaluate", SCORE)  # the slot is free: the next long call runs at once
            return workers, gone, messages, after, descendants() - before

    workers, gone, messages, after, left = anyio.run(main)
    assert len(workers) == 1 and gone < 2.0, gone
    assert messages[0] == "vram_trace: started"
    assert not after.is_error, after.content[0].text
    assert after.structured_content["metrics"]
    assert len(left) == 1 and not left & workers  # one fresh worker, warm for the next call


@pytest.mark.slow
def test_cancelled_trace_ends_its_worker_over_stdio(root, qkv_home):
    params = StdioServerParameters(command=QKV, args=["mcp", "--root", str(root)], env=cli_env(qkv_home))

    async def main():
        async with Client(params, read_timeout_seconds=120) as c:
            await c.call_tool("params", {"model": "gpt2"})
            before = descendants()  # the server process itself
            _, gone, _ = await cancel_running_trace(c, before)
            after = await c.call_tool("evaluate", SCORE)
            return gone, after

    gone, after = anyio.run(main)
    assert gone < 2.0, gone
    assert not after.is_error, after.content[0].text


@pytest.mark.slow
def test_timed_out_call_is_a_tool_error_and_frees_the_slot(root):
    server = build_server(Sandbox.from_dirs([root]), tool_timeouts={"vram_trace": 1.0})

    async def main():
        before = descendants()
        async with Client(server, read_timeout_seconds=120) as c:
            start = time.monotonic()
            timed_out = await c.call_tool("vram_trace", LONG_TRACE)
            took = time.monotonic() - start
            left = descendants() - before
            after = await c.call_tool("evaluate", SCORE)  # evaluate keeps the default limit (600 s)
            return timed_out, took, left, after

    timed_out, took, left, after = anyio.run(main)
    assert timed_out.is_error
    assert "stopped after 1 s" in timed_out.content[0].text and "--tool-timeout" in timed_out.content[0].text
    assert took < 5.0 and not left
    assert not after.is_error, after.content[0].text


@pytest.mark.slow
def test_a_worker_that_dies_is_a_tool_error_and_the_next_call_works(root):
    server = build_server(Sandbox.from_dirs([root]))

    async def main():
        before = descendants()
        async with Client(server, read_timeout_seconds=120) as c:
            async with anyio.create_task_group() as tg:
                result = {}

                async def call():
                    result["trace"] = await c.call_tool("vram_trace", LONG_TRACE)

                tg.start_soon(call)
                await wait_for(lambda: descendants() - before, 30)
                for pid in descendants() - before:
                    os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
            after = await c.call_tool("evaluate", SCORE)
            return result["trace"], after

    died, after = anyio.run(main)
    assert died.is_error and "worker process ended unexpectedly (killed by signal 9" in died.content[0].text
    assert not after.is_error, after.content[0].text


@pytest.mark.slow
def test_a_queued_long_call_gets_heartbeats_and_runs_when_the_slot_frees(root):
    server = build_server(Sandbox.from_dirs([root]))

    async def main():
        before = descendants()
        waiting: list[str] = []

        async def on_progress(progress, total, message):
            waiting.append(message or "")

        async with Client(server, read_timeout_seconds=120) as c:
            trace_scope = anyio.CancelScope()
            result = {}

            async def trace():
                with trace_scope:
                    await c.call_tool("vram_trace", LONG_TRACE)

            async def score():
                result["score"] = await c.call_tool("evaluate", SCORE, progress_callback=on_progress)

            async with anyio.create_task_group() as tg:
                tg.start_soon(trace)
                await wait_for(lambda: descendants() - before, 30)
                tg.start_soon(score)
                await wait_for(lambda: len(waiting) >= 3, 10)  # queued behind the trace, still heartbeating
                assert "score" not in result
                trace_scope.cancel()
            return result["score"], waiting

    score, waiting = anyio.run(main)
    assert not score.is_error, score.content[0].text
    assert waiting[0] == "evaluate: started" and waiting[-1] == "evaluate: done"


def test_tool_timeout_option_parsing():
    from qkv.agent.commands.mcp import parse_timeouts

    assert parse_timeouts(["30", "design=900", "audit=0"]) == {"*": 30.0, "design": 900.0, "audit": None}
    for bad, text in (("params=5", "not a long tool"), ("-1", "finite number"), ("x", "finite number"),
                      ("inf", "finite number")):
        with pytest.raises(BadInput, match=text):
            parse_timeouts([bad])
