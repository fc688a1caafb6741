"""The TUI in a real terminal (tmux): time to first screen, responsiveness while a trace runs, and a
killed session resumed with its history.

    .venv/bin/python bench/tui_startup.py [--llm none|local] [--runs 5]

Needs tmux (`apt-get install -y tmux`). Everything is measured in this run, against baselines measured in
the same run:
  1. first screen: `qkv chat` until its greeting and key bar are drawn, vs a minimal Textual app
     (one Static) started the same way — the floor any Textual app pays;
  2. responsiveness: the time from `tmux send-keys` to the typed text appearing in the input, while idle
     and while a trace runs in its child process (ratio busy / idle);
  3. a design in the TUI (worked example, until its summary is drawn) vs a cold `qkv design --llm … --json`
     of the same task in a subprocess (interpreter start, imports and the design: what the TUI replaces);
  4. crash and resume: SIGKILL the app after a design, start `qkv chat --resume latest`, time until the
     previous conversation is on screen, vs the median first screen of a fresh `qkv chat` (step 1).
Each headline is a ratio against its baseline; the seconds follow in parentheses.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
QKV = [PY, "-m", "qkv.agent.cli"]
SIZE = ("140", "40")
WORKED = "fine-tune a 7B model for legal summarisation on one 24 GB GPU"
MINIMAL_APP = """
from textual.app import App
from textual.widgets import Footer, Static
class Minimal(App):
    BINDINGS = [("ctrl+q", "quit", "quit")]
    def compose(self):
        yield Static("minimal textual app ready")
        yield Footer()
Minimal().run()
"""


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def pane(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, needle: str, timeout: float = 60.0, poll: float = 0.01) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if needle in pane(session):
            return time.perf_counter() - start
        time.sleep(poll)
    raise TimeoutError(f"{needle!r} not on screen after {timeout} s:\n{pane(session)}")


def start(session: str, argv: list[str], env: dict[str, str]) -> float:
    """Start argv in a fresh tmux session; return the perf_counter at launch."""
    cmd = " ".join(f"{k}={v}" for k, v in env.items()) + " " + " ".join(_quote(a) for a in argv)
    kill(session)  # a session left over from an interrupted run
    t0 = time.perf_counter()
    tmux("new-session", "-d", "-s", session, "-x", SIZE[0], "-y", SIZE[1], cmd)
    return t0


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def kill(session: str) -> None:
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def first_screen(session: str, argv: list[str], env: dict[str, str], needle: str) -> float:
    t0 = start(session, argv, env)
    wait_for(session, needle)
    elapsed = time.perf_counter() - t0
    kill(session)
    time.sleep(0.3)
    return elapsed


def echo_latency(session: str, marker: str) -> float:
    """Type `marker` into the chat input and time until it is drawn; then clear the input."""
    t0 = time.perf_counter()
    tmux("send-keys", "-t", session, "-l", marker)
    wait_for(session, marker, timeout=30, poll=0.005)
    elapsed = time.perf_counter() - t0
    tmux("send-keys", "-t", session, "C-u")
    time.sleep(0.05)
    return elapsed


def send_line(session: str, text: str) -> None:
    tmux("send-keys", "-t", session, "-l", text)
    tmux("send-keys", "-t", session, "Enter")


def cold_cli_design(task: str, llm: str, env: dict[str, str]) -> float:
    """A cold `qkv design --llm <llm> --json <task>`: a new interpreter, its imports and the design."""
    t0 = time.perf_counter()
    subprocess.run([*QKV, "design", "--llm", llm, "--json", task], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**os.environ, **env})
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--llm", default="none", help="none | local (the bundled SmolLM2)")
    ap.add_argument("--runs", type=int, default=5, help="cold starts per app")
    args = ap.parse_args()
    if not shutil.which("tmux"):
        print("tmux is required: apt-get install -y tmux", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="qkv-tui-bench-"))
    env = {"QKV_HOME": str(home), "TERM": "xterm-256color", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    runs_dir = home / "runs"
    chat = [*QKV, "chat", "--llm", args.llm, "--runs", str(runs_dir)]

    # 1. first screen, vs a minimal Textual app (same interpreter, same terminal size)
    minimal = [first_screen("qkvb-min", [PY, "-c", MINIMAL_APP], env, "minimal textual app ready")
               for _ in range(args.runs)]
    qkv = [first_screen("qkvb-qkv", chat, env, "Hello — I'm qkv") for _ in range(args.runs)]
    print(f"first screen   minimal Textual app: median {statistics.median(minimal):.2f} s "
          f"(min {min(minimal):.2f}, max {max(minimal):.2f}, n={args.runs})")
    print(f"first screen   qkv chat --llm {args.llm}: median {statistics.median(qkv):.2f} s "
          f"(min {min(qkv):.2f}, max {max(qkv):.2f}); ratio qkv / minimal = "
          f"{statistics.median(qkv) / statistics.median(minimal):.2f}")

    # 2. a design, then typing while idle and while a trace runs
    s = "qkvb-live"
    start(s, chat, env)
    wait_for(s, "Hello — I'm qkv")
    t0 = time.perf_counter()
    send_line(s, WORKED)
    wait_for(s, "full report is in the Report tab", timeout=180)
    design_s = time.perf_counter() - t0
    idle = [echo_latency(s, f"idle{i}x") for i in range(10)]
    send_line(s, "/trace")
    wait_for(s, "Esc cancels", timeout=30)
    busy = []
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and len(busy) < 15 and "Traced peak" not in pane(s):
        busy.append(echo_latency(s, f"busy{len(busy)}x"))
    print(f"typing echo    idle: median {statistics.median(idle) * 1000:.0f} ms, "
          f"max {max(idle) * 1000:.0f} ms (n={len(idle)})")
    if busy:
        print(f"typing echo    during trace: median {statistics.median(busy) * 1000:.0f} ms, max "
              f"{max(busy) * 1000:.0f} ms (n={len(busy)}); ratio busy / idle (median) = "
              f"{statistics.median(busy) / statistics.median(idle):.2f}")
    else:
        print("typing echo    during trace: the trace finished before a sample was taken")
    try:
        wait_for(s, "Traced peak", timeout=240)
        print("trace          finished in its child process; result shown in the chat")
    except TimeoutError:
        print("trace          still running after 240 s (cancelled)")
        tmux("send-keys", "-t", s, "Escape")

    # 3. the TUI's design vs a cold CLI design of the same task (same interpreter, same QKV_HOME)
    cli = [cold_cli_design(WORKED, args.llm, env) for _ in range(max(1, min(args.runs, 3)))]
    print(f"design         in the TUI / cold `qkv design --llm {args.llm} --json` = "
          f"{design_s / statistics.median(cli):.2f} (worked example to its summary {design_s:.2f} s vs CLI "
          f"median {statistics.median(cli):.2f} s, n={len(cli)})")

    # 4. SIGKILL the app, resume the latest session
    pid = int(tmux("display-message", "-p", "-t", s, "#{pane_pid}").strip())
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    kill(s)
    t0 = start(s, [*chat, "--resume", "latest"], env)
    wait_for(s, "resumed session")
    resume_s = time.perf_counter() - t0
    screen = pane(s)
    kept = "legal summarisation" in screen or "Report tab" in screen
    print(f"resume         after SIGKILL / first screen = {resume_s / statistics.median(qkv):.2f} (restored "
          f"conversation {resume_s:.2f} s vs fresh `qkv chat` median {statistics.median(qkv):.2f} s); "
          f"history on screen: {kept}")
    tmux("send-keys", "-t", s, "C-q")
    time.sleep(0.5)
    kill(s)
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
