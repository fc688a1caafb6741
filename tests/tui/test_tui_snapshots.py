"""Snapshot tests of the main screens (pytest-textual-snapshot; SVGs under tests/tui/__snapshots__/).
Durations are hidden (`timings=False`) and the session id is fixed, so the screens are reproducible.
Update after an intended change with `pytest tests/tui/test_tui_snapshots.py --snapshot-update`."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from qkv.tui.app import QkvApp

WORKED = "fine-tune a 7B model for legal summarisation on one 24 GB GPU"


def make_app(tmp_path: Path) -> QkvApp:
    return QkvApp(llm="none", db_path=tmp_path / "sessions.sqlite", runs_dir=tmp_path / "runs",
                  thread_id="snapshot", timings=False)


async def _steady(pilot) -> None:
    """A blinking cursor is drawn or not depending on the instant: hold it still for screenshots."""
    pilot.app.query_one("#chat-input", Input).cursor_blink = False
    await pilot.pause()


async def _design(pilot) -> None:
    app = pilot.app
    await _steady(pilot)
    box = app.query_one("#chat-input", Input)
    box.value = WORKED
    await pilot.press("enter")
    for _ in range(400):
        await pilot.pause()
        if not any(w.is_running or w.state.name == "PENDING" for w in app.workers):
            break
        await app.workers.wait_for_complete()
    await pilot.pause()


SMALL, MEDIUM, LARGE = (80, 24), (90, 30), (160, 48)


@pytest.mark.parametrize("size", [SMALL, MEDIUM, LARGE], ids=["80x24", "90x30", "160x48"])
def test_start_screen(snap_compare, tmp_path, size):
    assert snap_compare(make_app(tmp_path), run_before=_steady, terminal_size=size)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "160x48"])
def test_help_screen(snap_compare, tmp_path, size):
    """80×24 shows that the help scrolls in a small terminal; 160×48 shows the whole keys and commands tables."""
    assert snap_compare(make_app(tmp_path), press=["f1"], run_before=_steady, terminal_size=size)


@pytest.mark.slow
def test_report_tab_after_worked_example(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path), run_before=_design, terminal_size=LARGE)


@pytest.mark.slow
@pytest.mark.parametrize("size", [SMALL, MEDIUM, LARGE], ids=["80x24", "90x30", "160x48"])
def test_memory_tab_after_worked_example(snap_compare, tmp_path, size):
    async def run_before(pilot) -> None:
        await _design(pilot)
        await pilot.press("f3")

    assert snap_compare(make_app(tmp_path), run_before=run_before, terminal_size=size)


@pytest.mark.slow
def test_tokenizer_tab_after_worked_example(snap_compare, tmp_path):
    async def run_before(pilot) -> None:
        await _design(pilot)
        await pilot.press("f4")

    assert snap_compare(make_app(tmp_path), run_before=run_before, terminal_size=MEDIUM)
