"""Pilot tests: the real app, headless, driving whole conversations through the real agent graph
(`--llm none`: deterministic), a real SQLite session file and real exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import Input, Static, TabbedContent

from qkv.agent.graph.api import DesignRequest, design
from qkv.tui.app import QkvApp
from qkv.tui.sessions import SessionStore
from qkv.tui.widgets.training import TrainingPane
from tests.tui.pilot import ready, settle

pytestmark = pytest.mark.anyio

WORKED = "fine-tune a 7B model for legal summarisation on one 24 GB GPU"
SIZE = (140, 44)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_app(tmp_path: Path, thread_id: str = "t-1", **kw) -> QkvApp:
    return QkvApp(llm=kw.pop("llm", "none"), db_path=tmp_path / "sessions.sqlite", runs_dir=tmp_path / "runs",
                  thread_id=thread_id, **kw)


async def say(app: QkvApp, pilot, text: str) -> str:
    """Type a chat line, press Enter, wait for the work it started; return the last assistant reply."""
    box = app.query_one("#chat-input", Input)
    box.value = text
    box.focus()
    await pilot.press("enter")
    await settle(app, pilot)
    return last_reply(app)


def last_reply(app: QkvApp) -> str:
    return [m for m in app.chat.messages() if m.role == "assistant"][-1].text


@pytest.mark.slow
async def test_whole_conversation_worked_example_followup_question_export(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        reply = await say(app, pilot, WORKED)
        report = app.report_json()
        eff = report["efficiency"]
        assert eff["method"] == "lora" and eff["fits"]
        # The TUI's plan is exactly what the API designs for the same request.
        assert eff["strategy"] == design(DesignRequest(task=WORKED, llm="none")).efficiency.strategy
        assert f"{eff['peak_vram_gib']} GiB" in reply  # the summary quotes the report's number
        assert app.steps.rows["efficiency"].status in ("done", "looped")
        assert app.steps.rows["report"].status == "done"
        assert app.tabs.report_source.startswith("#")
        summary = str(app.query_one("#memory-summary", Static).render())
        assert str(eff["peak_vram_gib"]) in summary
        assert app.query_one("#toollog").row_count > 0  # tool calls logged

        # A free question is answered from the report's facts.
        answer = await say(app, pilot, "what is the peak VRAM?")
        assert f"{eff['peak_vram_gib']:,}" in answer and "efficiency › peak vram gib" in answer

        # A follow-up the agent finds no change in is refused politely; the report stays as it was.
        refused = await say(app, pilot, "make it purple")
        assert "could not apply that change" in refused and app.report_json() == report

        # A follow-up that changes the GPU re-runs efficiency onwards, not the earlier steps.
        before_arch = report["architecture"]
        reply = await say(app, pilot, "what if I had two A100s?")
        after = app.report_json()
        assert after["task"]["gpus"] == 2 and after["task"]["gpu"].startswith("a100")
        assert after["architecture"] == before_arch
        reran = reply.split("\n")[0]
        assert reran.startswith("Re-ran:") and "efficiency" in reran
        assert "objective" not in reran and "architecture" not in reran
        assert "What changed" in reply and "task › gpus: 1 → 2" in reply

        # Export: Markdown, JSON and HTML written atomically into the session's run folder.
        await pilot.press("ctrl+s")
        await pilot.pause()
        out = tmp_path / "runs" / "t-1"
        assert json.loads((out / "report.json").read_text()) == after
        assert (out / "report.md").read_text() == app.report.to_markdown()
        assert "<html" in (out / "report.html").read_text().lower()
        assert not list(out.glob(".*.tmp"))


@pytest.mark.slow
async def test_interrupt_is_asked_in_chat_and_the_answer_resumes(tmp_path):
    app = make_app(tmp_path, thread_id="t-ask")
    async with app.run_test(size=SIZE) as pilot:
        question = await say(app, pilot, "fine-tune a 7B model for legal summarisation")
        assert "Which GPU" in question and app.awaiting is not None
        assert app.steps.rows["intake"].status == "interrupt"
        assert app.store.get("t-ask").pending_question  # survives a crash
        await say(app, pilot, "one RTX 4090")
        assert app.awaiting is None
        assert app.report_json()["task"]["gpu"] == "rtx-4090"
        assert app.report_json()["efficiency"]["method"] == "lora"
        assert app.store.get("t-ask").pending_question is None


async def test_bad_input_gets_helpful_replies_and_no_crash(tmp_path):
    app = make_app(tmp_path, thread_id="t-bad")
    async with app.run_test(size=SIZE) as pilot:
        assert "Type a task" in await say(app, pilot, "")
        assert "did not recognise a design task" in await say(app, pilot, "zxqv plmokn ujhy")
        assert "no report yet" in await say(app, pilot, "what is the peak VRAM?")
        huge = "The lessee shall indemnify the lessor. " * 400
        reply = await say(app, pilot, huge)
        assert "characters" in reply and "4,000" in reply
        assert "Unknown command /frobnicate" in await say(app, pilot, "/frobnicate")
        assert "Nothing to export yet" in await say(app, pilot, "/export")
        assert "Nothing to trace yet" in await say(app, pilot, "/trace")
        assert "/follow needs a run folder" in await say(app, pilot, "/follow")
        assert app.report is None and app.is_running


@pytest.mark.slow
async def test_killed_session_resumes_with_history_and_report(tmp_path):
    first = make_app(tmp_path, thread_id="t-crash")
    async with first.run_test(size=SIZE) as pilot:
        await say(first, pilot, WORKED)
        peak = first.report_json()["efficiency"]["peak_vram_gib"]
        texts = [m.text for m in first.chat.messages()]
    # Messages are committed as each completes: a new process reading the file sees the same history.
    second = make_app(tmp_path, thread_id="t-crash")
    async with second.run_test(size=SIZE) as pilot:
        await settle(second, pilot)
        restored = [m.text for m in second.chat.messages() if m.role != "system"]
        assert restored[: len(texts) - 1] == texts[1:]  # the greeting is not part of the history
        assert second.report_json()["efficiency"]["peak_vram_gib"] == peak
        assert second.tabs.report_source.startswith("#")
        assert str(peak) in await say(second, pilot, "what is the peak VRAM?")


@pytest.mark.slow
async def test_sessions_screen_lists_and_switches(tmp_path):
    store = SessionStore(tmp_path / "sessions.sqlite")
    store.ensure("older", "serve a chat model", "none")
    store.add_message("older", "user", "serve llama-3.1-8b for chat on an L4")
    app = make_app(tmp_path, thread_id="t-now")
    async with app.run_test(size=SIZE) as pilot:
        await say(app, pilot, "/sessions")
        await pilot.pause()
        assert type(app.screen).__name__ == "SessionsScreen"
        option_list = app.screen.query_one("#sessions-list")
        ids = [option_list.get_option_at_index(i).id for i in range(option_list.option_count)]
        assert "older" in ids
        option_list.highlighted = ids.index("older")
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.thread_id == "older"
        assert any("serve llama-3.1-8b" in m.text for m in app.chat.messages())


async def test_help_llm_screens_and_tab_keys(tmp_path):
    app = make_app(tmp_path, thread_id="t-keys")
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        await pilot.press("f1")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        assert type(app.screen).__name__ == "Screen"
        await pilot.press("ctrl+l")
        assert type(app.screen).__name__ == "LLMScreen"
        await pilot.press("escape")
        for key, tab in (("f3", "memory"), ("f4", "tokenizer"), ("f5", "training"), ("f6", "tools"),
                         ("f2", "report")):
            await pilot.press(key)
            assert app.query_one("#tabs", TabbedContent).active == tab
        assert "LLM: none" in app.sub_title
        await say(app, pilot, "/llm http://127.0.0.1:9/v1")
        assert "LLM: http://127.0.0.1:9/v1" in app.sub_title
        assert "Unknown LLM" in await say(app, pilot, "/llm gpt-17")


async def test_training_tab_tails_metrics_live(tmp_path):
    run = tmp_path / "run1"
    run.mkdir()
    metrics = run / "metrics.jsonl"
    metrics.write_text('{"step": 1, "loss": 3.2, "learning_rate": 0.0002, "tokens_per_s": 410.5}\n')
    app = make_app(tmp_path, thread_id="t-train", follow=run)
    async with app.run_test(size=SIZE) as pilot:
        await ready(app, pilot)
        pane = app.query_one(TrainingPane)
        await pilot.pause()
        assert "step 1" in str(app.query_one("#train-status", Static).render())
        with metrics.open("a") as fh:
            fh.write('{"step": 2, "loss": 2.9}\n{"step": 3, "loss": 2.7, "eval_loss": 2.8}\n')
        pane.refresh_plot()  # the 1 s timer does the same
        status = str(app.query_one("#train-status", Static).render())
        assert "step 3" in status and "eval loss 2.8" in status and "loss 2.7" in status
        assert [r["step"] for r in pane.tail.rows] == [1, 2, 3]


@pytest.mark.slow
async def test_trace_runs_as_a_cancellable_child_process(tmp_path):
    app = make_app(tmp_path, thread_id="t-trace")
    async with app.run_test(size=SIZE) as pilot:
        await say(app, pilot, WORKED)
        box = app.query_one("#chat-input", Input)
        box.value = "/trace"
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.job_name == "trace" and app.query_one("#jobbar", Static).display
        # The UI answers while the child works: a question gets its reply before the trace ends.
        box.value = "what is the peak VRAM?"
        await pilot.press("enter")
        for _ in range(50):
            await pilot.pause(0.05)
            if "From the report" in last_reply(app):
                break
        assert "From the report" in last_reply(app) and app.job_name == "trace"
        await pilot.press("escape")
        await settle(app, pilot)
        assert "Trace cancelled" in last_reply(app) and app.job_name is None


@pytest.mark.llm
@pytest.mark.slow
async def test_local_model_words_answers_but_numbers_come_from_the_report(tmp_path):
    app = make_app(tmp_path, thread_id="t-local")
    async with app.run_test(size=SIZE) as pilot:
        await say(app, pilot, WORKED)
        peak = app.report_json()["efficiency"]["peak_vram_gib"]
        # Switch the voice to the bundled SmolLM2 (the design's numbers do not depend on it).
        assert "LLM: local" in await say(app, pilot, "/llm local")
        answer = await say(app, pilot, "what is the peak VRAM?")
        assert "LLM: local" in app.sub_title
        # The model's wording streams first; the report's facts are always quoted after it.
        assert f"efficiency › peak vram gib: {peak:,}" in answer
        assert len(answer) > len(f"From the report:\n• efficiency › peak vram gib: {peak:,}")
        app.voice.close()
