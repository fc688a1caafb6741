"""The TUI's rule-based pieces: routing chat lines, answering from report facts, diffing reports, the
session store and the metrics.jsonl tail. Real files, a real SQLite database, no app needed."""

from __future__ import annotations

import json

import pytest

from qkv.tui.facts import (
    answer_from_facts,
    diff_reports,
    flatten,
    invented_numbers,
    match_facts,
    summarize_changes,
)
from qkv.tui.intents import MAX_CHARS, classify, help_for
from qkv.tui.sessions import SessionStore
from qkv.tui.widgets.training import MetricsTail

# A report-shaped dict (the agent's section layout: values plus a per-section provenance map).
REPORT = {
    "task": {"text": "fine-tune a 7B model", "gpu": "rtx-4090", "gpus": 1},
    "efficiency": {"method": "qlora", "fits": True, "peak_vram_gib": 9.87, "gpu": "rtx-4090",
                   "breakdown": [{"name": "weights (nf4)", "gib": 3.6, "formula": "N × 4.127 bits"}],
                   "provenance": {"peak_vram_gib": "analytic: memory estimator"}},
    "inference": {"sampling": {"temperature": 0.3, "top_p": 0.9, "top_k": 40}, "kv_cache_gib": 1.0},
    "checks": [{"rule": "context window respected", "status": "pass", "detail": "2048 <= 4096"}],
}


@pytest.mark.parametrize(("text", "has_report", "kind"), [
    ("fine-tune a 7B model for legal summarisation on one 24 GB GPU", False, "task"),
    ("what if I had two A100s?", True, "change"),
    ("use Mistral instead", True, "change"),
    ("my documents are 16k tokens", True, "change"),
    ("what is the peak VRAM?", True, "question"),
    ("which sampling settings?", True, "question"),
    ("   ", False, "empty"),
    ("asdkjh qwpoeiru zxmcnv", False, "nonsense"),
    ("asdkjh qwpoeiru zxmcnv", True, "nonsense"),
    ("???", True, "nonsense"),
    ("/export md", True, "command"),
    ("what is the peak VRAM?", False, "no_report"),
    ("can I fine-tune llama-2-7b on a 4090?", False, "task"),
])
def test_classify_routes_chat_lines(text, has_report, kind):
    assert classify(text, has_report=has_report).kind == kind


def test_classify_answer_and_oversized_paste():
    assert classify("one RTX 4090", has_report=False, awaiting_answer=True).kind == "answer"
    huge = "contract clause " * (MAX_CHARS // 8)
    intent = classify(huge, has_report=True)
    assert intent.kind == "too_long"
    reply = help_for(intent, has_report=True)
    assert f"{len(huge.strip()):,}" in reply and f"{MAX_CHARS:,}" in reply


def test_answers_quote_report_values_with_provenance():
    text, facts = answer_from_facts(REPORT, "what is the peak VRAM?")
    assert facts[0].path == "efficiency.peak_vram_gib"
    assert "9.87" in text and "analytic: memory estimator" in text
    text, facts = answer_from_facts(REPORT, "which top-p and temperature?")
    assert {"inference.sampling.top_p", "inference.sampling.temperature"} <= {f.path for f in facts}
    text, facts = answer_from_facts(REPORT, "favourite colour of the moon")
    assert facts == [] and "only answer from its facts" in text


def test_every_number_in_an_answer_is_in_the_report():
    leaves = {f.value for f in flatten(REPORT)}
    for question in ("peak vram", "sampling", "checks", "kv cache", "method"):
        for fact in match_facts(REPORT, question):
            assert fact.value in leaves


def test_invented_numbers_are_caught():
    facts = match_facts(REPORT, "peak vram")
    assert invented_numbers("The peak is 9.87 GiB.", facts) == set()
    assert invented_numbers("The peak is 12.5 GiB.", facts) == {"12.5"}


def test_diff_reports_lists_changed_leaves():
    after = json.loads(json.dumps(REPORT))
    after["task"]["gpu"] = "a100-80gb-sxm"
    after["task"]["gpus"] = 2
    after["efficiency"]["peak_vram_gib"] = 12.1
    changes = {c.path: (c.before, c.after) for c in diff_reports(REPORT, after)}
    assert changes == {"task.gpu": ("rtx-4090", "a100-80gb-sxm"), "task.gpus": ("1", "2"),
                       "efficiency.peak_vram_gib": ("9.87", "12.1")}
    after["efficiency"]["breakdown"][0]["gib"] = 7.2
    lines = summarize_changes(diff_reports(REPORT, after), limit=2)
    assert lines[:2] == ["• task › gpu: rtx-4090 → a100-80gb-sxm", "• task › gpus: 1 → 2"]
    assert lines[2:] == ["… and 1 more value(s) (see the Report tab)",
                         "… plus 1 other value(s) (breakdowns, alternatives, provenance: the Report tab)"]


def test_session_store_round_trip(tmp_path):
    db = tmp_path / "s.sqlite"
    store = SessionStore(db)
    store.ensure("t1", "legal summariser", "none")
    store.add_message("t1", "user", "fine-tune a 7B model")
    store.add_message("t1", "assistant", "Designing…")
    store.update("t1", report_json='{"x": 1}', pending_question="Which GPU?")
    again = SessionStore(db)  # a new process would open the file the same way
    assert [m.text for m in again.messages("t1")] == ["fine-tune a 7B model", "Designing…"]
    info = again.get("t1")
    assert info.messages == 2 and info.has_report and info.pending_question == "Which GPU?"
    assert again.latest().thread_id == "t1"
    with pytest.raises(ValueError, match="unknown session fields"):
        again.update("t1", nonsense="x")


def test_metrics_tail_reads_complete_lines_only(tmp_path):
    path = tmp_path / "metrics.jsonl"
    tail = MetricsTail(path)
    assert tail.poll() == 0  # no file yet
    path.write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "lo')
    assert tail.poll() == 1
    with path.open("a") as fh:
        fh.write('ss": 2.25}\nnot json\n{"step": 3, "loss": 2.0, "eval_loss": 2.1}\n')
    assert tail.poll() == 2
    assert [r["step"] for r in tail.rows] == [1, 2, 3] and tail.bad_lines == 1


# -- issue 20: the pieces behind the keyboard work ------------------------------------------------------------
def test_bar_labels_stay_on_their_bars_at_any_width():
    from rich.console import Console

    from qkv.tui.widgets.bars import Bars

    items = [("weights", 14.787), ("loss gradients (fp32)", 9.3), ("optimizer states", 1.203), ("tiny", 0.014)]
    for width in (30, 44, 60, 120):
        console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        console.print(Bars(items, unit="GiB", marker=22.0))
        lines = [line for line in console.export_text().splitlines() if line.strip()]
        assert len(lines) == len(items)
        for (name, value), line in zip(items, lines, strict=True):
            assert line.startswith(name[:6]) and line.rstrip().endswith(f"{value:,.3f} GiB"), (width, line)
            assert len(line) <= width
        bars = [line.count("█") for line in lines]
        assert bars == sorted(bars, reverse=True) and bars[0] > bars[1]  # lengths follow the values


def test_long_yaml_comments_wrap_as_comments():
    from qkv.tui.widgets.tabs import keep_comments

    long = "LoRA rank: higher fits more task-specific change, " * 3
    md = ("text\n```yaml\nmethod:\n  # " + long + "end\n  r: 8\n```\n"
          "# a heading, not a comment\n")
    out = keep_comments(md, 40)
    block = out.split("```yaml\n")[1].split("```")[0].splitlines()
    assert all(len(line) <= 40 for line in block)
    comments = [line for line in block if line.strip() and not line.strip().startswith(("method:", "r:"))]
    assert len(comments) > 3 and all(line.startswith("  # ") for line in comments)
    assert "  r: 8" in block and out.endswith("# a heading, not a comment\n")  # outside the fence: untouched


@pytest.mark.slow  # runs a full design
def test_trace_request_is_one_gpus_share_or_refused_in_app_words():
    from qkv.agent.graph.api import DesignRequest, design
    from qkv.tui.summary import NotTraceable, memory_request

    report = design(DesignRequest(task="LoRA llama-3.1-8b on two A100 80GB for legal summarisation", llm="none"))
    report.efficiency = report.efficiency.model_copy(update={
        "method": "lora", "micro_batch": 2, "gpus": 2, "sharding": "ddp",
        "hyperparameters": {**report.efficiency.hyperparameters, "lora_r": 16}})
    req = memory_request(report)
    assert req["gpus"] == 1 and req["batch"] == 2 and req["lora_r"] == 16 and "sharding" not in req
    assert req["model"] == report.architecture.base_model and req["seq"] == report.architecture.train_seq
    report.efficiency = report.efficiency.model_copy(update={"sharding": "fsdp"})
    with pytest.raises(NotTraceable) as err:
        memory_request(report)
    assert "--gpus" not in str(err.value) and "Memory tab" in str(err.value)


def test_errors_in_the_app_offer_choices_not_shell_commands():
    from qkv.agent.graph.intake import unknown_gpu_mention
    from qkv.tools.errors import UnknownName
    from qkv.tui.summary import in_app_words

    word, choices = unknown_gpu_mention("what if I used an RTX 5095?")
    assert word == "rtx 5095" and choices[0] == "rtx-5090"
    assert unknown_gpu_mention("two A100s") is None and unknown_gpu_mention("use mistral instead") is None
    text = in_app_words(UnknownName("'rtx 5095' is not a GPU in the catalog", expected="a GPU (`qkv gpus`)",
                                    choices=choices))
    assert "qkv gpus" not in text and "Did you mean: rtx-5090" in text and "“use rtx-5090”" in text


def test_latest_is_the_session_last_opened(tmp_path):
    store = SessionStore(tmp_path / "s.sqlite")
    store.ensure("a", "first", "none")
    store.ensure("b", "second", "none")
    store.add_message("b", "user", "later message")
    store.opened("a")
    store.add_message("b", "user", "written by another process after a was opened")
    assert store.latest().thread_id == "a" and store.list()[0].thread_id == "b"
    assert store.user_lines("b") == ["later message", "written by another process after a was opened"]


@pytest.mark.slow  # runs a full design
def test_the_memory_tab_draws_the_serving_plan():
    from rich.console import Console

    from qkv.agent.graph.api import DesignRequest, design
    from qkv.tui.widgets.memory import serving_view

    r = design(DesignRequest(task="Serve Llama-3.1-70B for 50 concurrent users with 8,192 tokens of context on "
                                  "4 H100s, p50 under 50 ms per token", llm="none"))
    plan = r.inference.serving
    console = Console(width=70, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(serving_view(plan))
    text = console.export_text()
    assert "vllm on 4 × h100-sxm · TP 4" in text and "fits" in text
    for item in plan["per_gpu"]:  # every per-GPU figure, on its own bar
        assert f"{item['gib']:,.3f} GiB" in text
    at_8k = next(p for p in plan["frontier"] if p["context"] == 8192)
    assert "8,192 tokens" in text and f"{at_8k['max_concurrency']} users" in text
    assert serving_view(None) == ""
