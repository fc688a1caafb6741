"""Keyboard-only pilot tests of the TUI (issue 20): focus and scrolling, stray typing, the command palette,
copy, per-session state across Ctrl+N / the sessions screen / resume, input history, small terminals,
in-app wording for traces of multi-GPU plans, absolute export paths, a job's result kept with the session that
started it. No mouse events anywhere. The tests that run a full design are marked slow."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette

from qkv.tui.app import QkvApp
from qkv.tui.sessions import SessionStore
from qkv.tui.widgets.memory import EMPTY as MEMORY_EMPTY
from tests.tui.pilot import ready, settle

pytestmark = pytest.mark.anyio

WORKED = "fine-tune a 7B model for legal summarisation on one 24 GB GPU"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_app(tmp_path: Path, thread_id: str = "k-1", **kw) -> QkvApp:
    return QkvApp(llm="none", db_path=tmp_path / "sessions.sqlite", runs_dir=tmp_path / "runs", thread_id=thread_id,
                  timings=False, **kw)


def keys(text: str) -> list[str]:
    return ["space" if c == " " else c for c in text]


async def type_line(app: QkvApp, pilot, text: str) -> None:
    """Type a line key by key into whatever has focus, then Enter (stray typing must reach the input)."""
    await pilot.press(*keys(text))
    await pilot.press("enter")
    await settle(app, pilot)


def shown(app: QkvApp, selector: str) -> str:
    """What a Static shows, as plain text (Rich renderables rendered at a fixed width)."""
    from rich.console import Console

    content = app.query_one(selector).content
    if isinstance(content, str):
        return content
    console = Console(width=100, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(content)
    return console.export_text()


def tab_state(app: QkvApp) -> dict:
    tabs = app.tabs
    assert tabs is not None
    return {"report": tabs.report_source, "memory": shown(app, "#memory-summary"),
            "tools": tabs.query_one("#toollog").row_count, "steps": app.steps.to_json(),
            "tokenizer": shown(app, "#tok-body")}


@pytest.mark.slow
async def test_panes_take_focus_and_scroll_and_typing_goes_to_the_input(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(app, pilot)
        await type_line(app, pilot, WORKED)
        assert app.report is not None
        await pilot.press("f7")  # focus the chat history
        assert app.focused is app.chat
        assert app.chat.max_scroll_y > 0
        await pilot.press("home")
        assert app.chat.scroll_y == 0
        await pilot.press("pagedown")
        assert app.chat.scroll_y > 0
        await pilot.press("h", "i")  # typing while the history has focus: nothing is dropped
        assert app.focused is app.chat_input and app.chat_input.value == "hi"
        app.chat_input.value = ""
        await pilot.press("f2", "tab")  # Tab moves focus on, past the input
        assert app.focused is not app.chat_input
        seen = set()
        for _ in range(8):
            seen.add(getattr(app.focused, "id", None))
            await pilot.press("tab")
        assert {"chat", "report-scroll"} <= seen, seen


async def test_palette_finds_the_apps_own_actions(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(90, 30)) as pilot:
        await ready(app, pilot)
        for query, expected in (("export", "Export report (Markdown, JSON, HTML)"),
                                ("trace", "Trace the training step"),
                                ("sessions", "Sessions: list and resume"), ("memory", "Show the Memory tab"),
                                ("copy rep", "Copy the report (Markdown)")):
            await pilot.press("ctrl+p")
            assert isinstance(app.screen, CommandPalette)
            await pilot.press(*keys(query))
            await pilot.pause(0.3)
            options = app.screen.query_one(CommandList)
            titles = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            assert any(expected in t for t in titles), (query, titles)
            await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.press(*keys("export"))
        await pilot.pause(0.3)
        await pilot.press("enter")  # runs the action: no report yet, said in the chat
        await settle(app, pilot)
        assert "Nothing to export yet" in app.chat.messages()[-1].text


@pytest.mark.slow
async def test_copy_reply_and_report_by_keys(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(app, pilot)
        await type_line(app, pilot, WORKED)
        await pilot.press("ctrl+y")
        assert app.clipboard == app.chat.messages()[-1].text and "Base model:" in app.clipboard
        await pilot.press("ctrl+r")
        assert app.clipboard == app.report.to_markdown()


@pytest.mark.slow
async def test_each_session_owns_its_tabs_tracker_tools_and_history(tmp_path):
    app = make_app(tmp_path, thread_id="first")
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(app, pilot)
        await type_line(app, pilot, WORKED)
        await type_line(app, pilot, "why lora?")
        first = tab_state(app)
        assert first["tools"] > 5 and "peak" in first["memory"] and first["report"]
        tools = app.tabs.query_one("#toollog")
        summaries = [str(tools.get_row_at(i)[3]) for i in range(tools.row_count)]
        assert sum(bool(s.strip()) for s in summaries) >= tools.row_count // 2, summaries  # the column is filled
        assert '"looped"' in first["steps"] or '"skipped"' in first["steps"]

        await pilot.press("ctrl+n")
        await pilot.pause()
        fresh = tab_state(app)
        assert fresh["report"] == "" and app.report is None
        assert fresh["memory"] == MEMORY_EMPTY and fresh["tools"] == 0
        assert "No report yet" in fresh["tokenizer"] and '"done"' not in fresh["steps"]
        await pilot.press("up")
        assert app.chat_input.value == ""  # a new session has no history

        await pilot.press("ctrl+o")
        await pilot.pause()
        assert type(app.screen).__name__ == "SessionsScreen"
        options = app.screen.query_one("#sessions-list")
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        for _ in range(ids.index("first")):
            await pilot.press("down")
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.thread_id == "first"
        assert tab_state(app) == first  # every tab, the tracker's marks and the tool log come back
        await pilot.press("up")
        assert app.chat_input.value == "why lora?"
        await pilot.press("up")
        assert app.chat_input.value == WORKED
        await pilot.press("down", "down")
        assert app.chat_input.value == ""
    assert app.resume_hint() == "qkv chat --resume first"


@pytest.mark.slow
async def test_resume_reloads_every_tab_and_latest_means_last_opened(tmp_path):
    app = make_app(tmp_path, thread_id="a")
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(app, pilot)
        await type_line(app, pilot, WORKED)
        before = tab_state(app)
    store = SessionStore(tmp_path / "sessions.sqlite")
    store.ensure("b", "a later session", "none")
    store.add_message("b", "user", "hello")  # updated after "a", but never opened after it
    store.opened("a")
    latest = store.latest()
    assert latest is not None and latest.thread_id == "a"
    again = make_app(tmp_path, thread_id=latest.thread_id)  # what `qkv chat --resume latest` opens
    async with again.run_test(size=(120, 36)) as pilot:
        await ready(again, pilot)
        await settle(again, pilot)
        assert again.thread_id == "a" and tab_state(again) == before


@pytest.mark.slow
@pytest.mark.parametrize("size", [(80, 24), (90, 30)])
async def test_small_terminals_keep_every_step_and_tab_visible(tmp_path, size):
    app = make_app(tmp_path)
    async with app.run_test(size=size) as pilot:
        await ready(app, pilot)
        await type_line(app, pilot, WORKED)
        await pilot.press("f3")
        await pilot.pause()
        assert app.steps.compact
        steps = app.steps
        text = str(steps.render())
        assert all(name in text for name in steps.rows), text
        assert steps.region.height >= 3 and steps.size.height >= text.count("\n")  # nothing clipped
        tabs = app.tabs.query_one("#tabs")
        right = tabs.region.right
        for pane in ("report", "memory", "tokenizer", "training", "tools"):
            assert tabs.get_tab(pane).region.right <= right, pane


@pytest.mark.slow
async def test_trace_of_a_multi_gpu_plan_is_said_in_app_words(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(app, pilot)
        await type_line(app, pilot, "full fine-tune llama-3.1-8b on 8 H100s with FSDP for legal summarisation")
        eff = app.report_json()["efficiency"]
        assert eff["gpus"] == 8 and eff["sharding"] not in ("none", "ddp")
        await pilot.press("ctrl+t")
        await pilot.pause()
        reply = app.chat.messages()[-1].text
        assert reply.startswith("I can't trace this one") and "--gpus" not in reply and "Memory tab" in reply


@pytest.mark.slow
async def test_exports_print_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = QkvApp(llm="none", db_path=tmp_path / "s.sqlite", runs_dir=Path("runs"), thread_id="x", timings=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(app, pilot)
        await type_line(app, pilot, WORKED)
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        reply = app.chat.messages()[-1].text
        paths = [Path(p) for p in reply.removeprefix("Exported: ").split(", ")]
        assert len(paths) == 3 and all(p.is_absolute() and p.is_file() for p in paths)


async def test_a_job_that_ends_after_a_session_switch_reports_to_the_session_that_started_it(tmp_path, monkeypatch):
    from qkv.tui import jobs

    release = threading.Event()

    def fake_run_job(name, argv, **kw):  # the child process, finishing once the test says so
        assert release.wait(30)
        return jobs.JobResult(name=name, returncode=0, stdout="final loss 1.23", stderr_tail="", cancelled=False,
                              seconds=1.5)

    monkeypatch.setattr(jobs, "run_job", fake_run_job)
    app = make_app(tmp_path, thread_id="owner")
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(app, pilot)
        app.submit(f"/train {tmp_path / 'config.yaml'}")
        await pilot.pause()
        assert app.job_name == "training"
        await pilot.press("ctrl+n")
        await pilot.pause()
        fresh = app.thread_id
        assert fresh != "owner"
        release.set()
        await settle(app, pilot)
        assert app.job_name is None and app.thread_id == fresh
        assert not any("Training finished" in m.text for m in app.chat.messages())  # not in the new session
        assert app.tabs.query_one("#toollog").row_count == 0
        store = app.store
        assert store.tool_calls(fresh) == [] and not any("Training" in m.text for m in store.messages(fresh))
        assert store.messages("owner")[-1].text.startswith("Training finished")
        assert store.tool_calls("owner")[-1][:2] == ("job", "train")

        app._switch_to("owner")  # back in its own session, the result is there
        await settle(app, pilot)
        assert "final loss 1.23" in app.chat.messages()[-2].text
        assert app.tabs.query_one("#toollog").row_count == 1
