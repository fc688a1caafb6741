"""Load on `qkv mcp --transport http`: N tool calls, C concurrent client sessions, on 127.0.0.1.

    python bench/mcp_load.py [--calls 500] [--concurrency 50] [--warmup 100]

Starts the real server as a subprocess (with a bearer token), warms it up, reads its RSS, sends the calls
(a mix of `params` and analytic `vram`, the tools agents call most), reads the RSS again, and prints:
errors (must be 0), p50/p99 latency per call, throughput, server and client CPU per call, the RSS growth
(must stay within 10%), and ratios against the same calls made in-process in the same run (the baseline):
server CPU per call / in-process time is what the protocol, HTTP and session layers add; MCP p50 /
in-process p50 is dominated by queueing when 50 sessions share a small machine."""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import anyio

QKV = str(Path(sys.executable).with_name("qkv"))
REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"

# (tool, arguments): cheap analytic calls; each is also timed in-process as the baseline.
CALLS = [
    ("params", {"model": "llama-2-7b"}),
    ("vram", {"model": "llama-2-7b", "method": "qlora", "gpu": "rtx-4090", "seq": 2048}),
    ("vram", {"model": "mistral-7b", "method": "inference", "weights": "Q4_K_M", "seq": 8192, "gpu": "rtx-3060-12gb"}),
    ("params", {"model": "qwen2.5-7b"}),
    ("vram", {"model": "qwen2.5-7b", "method": "lora", "gpu": "a100-40gb", "batch": 4}),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def cpu_seconds(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


async def run_load(url: str, calls: int, concurrency: int) -> tuple[list[float], list[float], list[str]]:
    """`concurrency` client sessions share `calls` calls; returns per-call latencies (s), those of calls
    after each session's first (the first also carries the client's tools/list), and error texts."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    latencies: list[float] = []
    steady: list[float] = []
    errors: list[str] = []
    counter = iter(range(calls))

    async def session() -> None:
        try:
            async with (httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as http,
                        Client(streamable_http_client(url, http_client=http), cache=None) as client):
                for n, i in enumerate(counter):
                    name, args = CALLS[i % len(CALLS)]
                    start = time.perf_counter()
                    try:
                        result = await client.call_tool(name, args)
                    except Exception as exc:  # a transport or protocol failure counts as an error
                        errors.append(f"{name}: {type(exc).__name__}: {exc}")
                        continue
                    latencies.append(time.perf_counter() - start)
                    if n:
                        steady.append(latencies[-1])
                    if result.is_error or result.structured_content is None:
                        errors.append(f"{name}: {result.content[0].text if result.content else 'no content'}")
        except Exception as exc:
            errors.append(f"session: {type(exc).__name__}: {exc}")

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(session)
    return latencies, steady, errors


def baseline_seconds(repeats: int) -> tuple[float, float]:
    """The same calls in-process (the functions the MCP tools wrap): median wall seconds per call and mean
    CPU seconds per call (CPU is what compares with the server's CPU per call on a shared machine)."""
    from qkv.tools.memory.schema import MemoryRequest
    from qkv.tools.memory.verdict import fit_report
    from qkv.tools.params import ParamCountRequest, param_count

    run = {"params": lambda a: param_count(ParamCountRequest(**a)), "vram": lambda a: fit_report(MemoryRequest(**a))}
    times = []
    cpu_start = time.process_time()
    for i in range(repeats):
        name, args = CALLS[i % len(CALLS)]
        start = time.perf_counter()
        run[name](args)
        times.append(time.perf_counter() - start)
    return statistics.median(times), (time.process_time() - cpu_start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    env = {**os.environ, "QKV_MCP_TOKEN": TOKEN}
    # An explicit root: `qkv mcp` refuses to serve the working directory when that is / or the home folder.
    proc = subprocess.Popen([QKV, "mcp", "--transport", "http", "--port", str(port), "--root", str(REPO)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import httpx

        for _ in range(600):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None:
                    sys.exit(f"server exited: {proc.stderr.read().decode()}")
                time.sleep(0.1)
        # Warm-up: imports, caches and the allocator settle before the RSS baseline is taken.
        _, _, warm_errors = anyio.run(run_load, url, args.warmup, args.concurrency)
        rss_before = rss_mib(proc.pid)
        cpu_before, own_before = cpu_seconds(proc.pid), time.process_time()
        start = time.perf_counter()
        latencies, steady, errors = anyio.run(run_load, url, args.calls, args.concurrency)
        wall = time.perf_counter() - start
        rss_after = rss_mib(proc.pid)
        server_cpu, client_cpu = cpu_seconds(proc.pid) - cpu_before, time.process_time() - own_before
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    base, base_cpu = baseline_seconds(200)
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    growth = rss_after / rss_before - 1
    print(f"calls {args.calls}, concurrency {args.concurrency} sessions, HTTP on 127.0.0.1 (bearer token)")
    print(f"errors            {len(errors)} (warm-up errors {len(warm_errors)})")
    for e in errors[:5]:
        print(f"  {e}")
    print(f"latency p50       {p50 * 1e3:8.1f} ms")
    print(f"latency p99       {p99 * 1e3:8.1f} ms")
    s50, s99 = percentile(steady, 0.50), percentile(steady, 0.99)
    print(f"  after 1st call  {s50 * 1e3:8.1f} ms p50, {s99 * 1e3:.1f} ms p99 "
          "(a session's first call also fetches tools/list, ~100 KB of schemas)")
    print(f"throughput        {len(latencies) / wall:8.1f} calls/s  ({wall:.1f} s wall)")
    load = os.getloadavg()[0]
    print(f"CPU per call      {server_cpu / args.calls * 1e3:8.1f} ms server, "
          f"{client_cpu / args.calls * 1e3:.1f} ms client (load average {load:.1f} on {os.cpu_count()} cores)")
    print(f"in-process        {base * 1e3:8.2f} ms p50 wall, {base_cpu * 1e3:.2f} ms CPU per call "
          "(same calls, no protocol: the baseline)")
    print(f"ratio             {server_cpu / args.calls / base_cpu:8.2f}x  (server CPU per call / in-process CPU "
          "per call: what MCP, HTTP and sessions add)")
    print(f"                  {p50 / base:8.1f}x  (MCP p50 / in-process p50: queueing at "
          f"{args.concurrency} concurrent)")
    print(f"server RSS        {rss_before:.1f} MiB before, {rss_after:.1f} MiB after ({growth:+.1%})")
    ok = not errors and growth <= 0.10
    print("PASS" if ok else "FAIL: errors or RSS growth above 10%")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
