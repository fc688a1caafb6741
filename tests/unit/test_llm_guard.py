"""The context guard and the sampling gate, with a real tokenizer (GPT-2 BPE ranks via tiktoken) and no model."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qkv.tools.errors import BadInput, ContextExceeded
from qkv.tools.llm.guard import ELISION, GuardPolicy, fit_messages, fit_text, gate_policy, output_reserve
from qkv.tools.sampling import SamplingPolicy

GPT2_PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@pytest.fixture(scope="module")
def count(gpt2_tiktoken):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    enc = tiktoken.Encoding("gpt2-local", pat_str=GPT2_PAT, mergeable_ranks=load_tiktoken_bpe(str(gpt2_tiktoken)),
                            special_tokens={"<|endoftext|>": 50256})
    return lambda text: len(enc.encode_ordinary(text))


@pytest.fixture(scope="module")
def licence() -> str:
    """Real prose: the Apache-2.0 licence text (a few thousand tokens)."""
    from pathlib import Path

    path = Path("/usr/share/common-licenses/Apache-2.0")
    if not path.is_file():  # a machine without Debian's licence folder: Python's own licence file
        import sys

        path = Path(sys.base_prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "LICENSE.txt"
    return path.read_text()


def test_prompt_that_fits_is_untouched(count):
    text, n, note = fit_text("A short prompt.", window=64, reserve=16, count=count, guard=GuardPolicy(), model="m")
    assert text == "A short prompt." and n == count(text) and note is None


def test_strict_refuses_with_the_numbers(count, licence):
    n = count(licence)
    with pytest.raises(ContextExceeded) as exc:
        fit_text(licence, window=512, reserve=64, count=count, guard=GuardPolicy(strategy="strict"), model="m")
    msg = str(exc.value)
    assert f"prompt of {n} tokens + 64 new tokens exceeds the 512-token window of m by {n + 64 - 512}" in msg
    assert "head_tail or sliding" in msg


def test_head_tail_keeps_both_ends_and_fits(count, licence):
    text, n, note = fit_text(licence, window=512, reserve=64, count=count, guard=GuardPolicy(), model="m")
    assert n == count(text) <= 512 - 64
    assert n >= 512 - 64 - 8  # the binary search uses (almost) the whole budget
    head, tail = text.split(ELISION)
    assert licence.startswith(head) and licence.endswith(tail)
    assert abs(len(head) - len(tail)) <= 1  # head_fraction 0.5 of the kept characters
    assert "truncated to" in note and "head and tail" in note and "512-token window" in note


def test_sliding_keeps_the_most_recent_text(count, licence):
    text, n, note = fit_text(licence, window=300, reserve=44, count=count, guard=GuardPolicy(strategy="sliding"),
                             model="m")
    assert licence.endswith(text) and n <= 256
    assert "sliding window" in note


def test_output_alone_larger_than_window_fails(count):
    with pytest.raises(ContextExceeded, match="leaves no room"):
        fit_text("hi", window=128, reserve=128, count=count, guard=GuardPolicy(), model="m")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=120),
       budget=st.integers(min_value=8, max_value=200),
       strategy=st.sampled_from(["head_tail", "sliding"]), head=st.floats(0.1, 0.9))
def test_truncated_prompt_never_exceeds_the_budget(count, words, budget, strategy, head):
    text = " ".join(words)
    guard = GuardPolicy(strategy=strategy, head_fraction=head)
    try:
        out, n, note = fit_text(text, window=budget + 16, reserve=16, count=count, guard=guard, model="m")
    except ContextExceeded:  # only when nothing non-blank fits at all
        return
    assert n == count(out) <= budget
    assert (note is None) == (out == text)


def _chat_counter(count):
    # ChatML-like: 4 tokens of header per message + 3 to open the reply (the guard only needs a real count).
    return lambda msgs: sum(count(m["content"]) + 4 for m in msgs) + 3


def _conversation(licence: str) -> list[dict]:
    paras = [p for p in licence.split("\n\n") if len(p) > 200][:8]
    msgs = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Task: " + paras[0]}]
    for i, p in enumerate(paras[1:]):
        msgs.append({"role": "assistant" if i % 2 == 0 else "user", "content": p})
    msgs.append({"role": "user", "content": "So, what does it say about patents?"})
    return msgs


def test_sliding_drops_the_oldest_turns_keeps_system_and_last(count, licence):
    msgs = _conversation(licence)
    out, n, note = fit_messages(msgs, window=400, reserve=64, count_chat=_chat_counter(count), count=count,
                                guard=GuardPolicy(strategy="sliding"), model="m")
    assert n == _chat_counter(count)(out) <= 336
    assert out[0] == msgs[0] and out[-1] == msgs[-1]
    assert out[1:-1] == msgs[len(msgs) - len(out) + 1:-1]  # a contiguous most-recent run
    one_more = [msgs[0], *msgs[len(msgs) - len(out):]]
    assert _chat_counter(count)(one_more) > 336  # the fewest turns were dropped
    assert "dropped" in note and "oldest" in note


def test_head_tail_keeps_the_task_statement(count, licence):
    msgs = _conversation(licence)
    out, n, note = fit_messages(msgs, window=600, reserve=64, count_chat=_chat_counter(count), count=count,
                                guard=GuardPolicy(strategy="head_tail"), model="m")
    assert n <= 536 and out[0] == msgs[0] and out[1] == msgs[1] and out[-1] == msgs[-1]
    assert "middle" in note


def test_one_huge_message_is_cut_not_dropped(count, licence):
    msgs = [{"role": "user", "content": licence}]
    out, n, note = fit_messages(msgs, window=256, reserve=32, count_chat=_chat_counter(count), count=count,
                                guard=GuardPolicy(), model="m")
    assert len(out) == 1 and n <= 224 and ELISION in out[0]["content"]
    assert "cut the user message" in note
    assert msgs[0]["content"] == licence  # the caller's list is not modified


def test_strict_conversation(count, licence):
    with pytest.raises(ContextExceeded):
        fit_messages(_conversation(licence), window=256, reserve=32, count_chat=_chat_counter(count), count=count,
                     guard=GuardPolicy(strategy="strict"), model="m")


def test_unbounded_policy_refused_unless_forced():
    full_tail = SamplingPolicy(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=32)
    with pytest.raises(BadInput, match="refusing to generate without a bound"):
        gate_policy(full_tail, GuardPolicy())
    with pytest.raises(BadInput, match="max_new_tokens"):
        gate_policy(SamplingPolicy(max_new_tokens=None), GuardPolicy())
    forced, warnings = gate_policy(full_tail, GuardPolicy(force=True))
    assert forced and any(w.startswith("FORCED") for w in warnings)
    assert gate_policy(SamplingPolicy(), GuardPolicy()) == (False, [])


def test_forced_unbounded_length_reserves_a_stated_share():
    assert output_reserve(SamplingPolicy(max_new_tokens=None), 1000, GuardPolicy(force=True)) == 250
    assert output_reserve(SamplingPolicy(max_new_tokens=7), 1000, GuardPolicy()) == 7
