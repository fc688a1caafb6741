"""The context guard (hard rule 1) and the sampling gate (hard rule 3), shared by every backend.

Prompt tokens are counted with the model's own tokenizer (a `count` function the backend supplies).
When prompt + max_new_tokens exceeds the window, the guard either fails (`strict` → ContextExceeded)
or truncates by a stated strategy and returns a one-line note saying exactly what was dropped:

- `head_tail`: keep the beginning (instructions) and the end (the question), drop the middle;
  for a conversation, keep the system message(s), the first turn and the latest turns.
- `sliding`: keep the most recent tokens (a sliding window); for a conversation, drop the oldest
  turns after the system message(s).

Text is cut on character boundaries found by binary search against the real token count, so the
result always fits and a backend needs only `count_tokens` (no detokenizer) to be guarded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qkv.tools.errors import ContextExceeded
from qkv.tools.sampling import SamplingPolicy

Strategy = Literal["head_tail", "sliding", "strict"]
STRATEGIES: tuple[str, ...] = ("head_tail", "sliding", "strict")
# Marker put where head_tail removed text, so neither the model nor a reader mistakes the join for prose.
ELISION = "\n[…]\n"


class GuardPolicy(BaseModel):
    """How generation protects the context window and the sampling bound."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = Field("head_tail", description="head_tail | sliding | strict (fail instead of truncating)")
    head_fraction: float = Field(0.5, gt=0.0, lt=1.0, description="head_tail: share of the kept tokens from the head")
    force: bool = Field(False, description="run an unbounded sampling policy anyway (breaks hard rule 3, reported)")
    unbounded_reserve: float = Field(
        0.25, gt=0.0, lt=1.0, description="share of the window reserved for output when max_new_tokens is None")


def gate_policy(policy: SamplingPolicy, guard: GuardPolicy) -> tuple[bool, list[str]]:
    """Refuse an unbounded policy unless forced. Returns (forced, warning messages)."""
    policy.ensure_bounded(force=guard.force)
    forced = not policy.bounded
    warnings = [f"{i.field}: {i.message}" for i in policy.issues() if i.level == "warn"]
    if forced:
        warnings.append("FORCED: " + "; ".join(i.message for i in policy.issues() if i.level == "fail"))
    return forced, warnings


def output_reserve(policy: SamplingPolicy, window: int, guard: GuardPolicy) -> int:
    """Tokens kept free for the answer: max_new_tokens, or a stated share of the window when forced."""
    if policy.max_new_tokens is not None:
        return policy.max_new_tokens
    return max(1, int(window * guard.unbounded_reserve))


def prompt_budget(window: int, reserve: int, model: str) -> int:
    """Tokens the prompt may use; ContextExceeded when the output alone does not fit the window."""
    budget = window - reserve
    if budget < 1:
        raise ContextExceeded(
            f"max_new_tokens {reserve} leaves no room for a prompt in the {window}-token window of {model}",
            expected=f"max_new_tokens below {window}")
    return budget


def _exceeded(n: int, reserve: int, window: int, model: str) -> ContextExceeded:
    return ContextExceeded(
        f"prompt of {n} tokens + {reserve} new tokens exceeds the {window}-token window of {model} "
        f"by {n + reserve - window} (strict context guard)",
        expected="a shorter prompt, fewer max new tokens, or a truncation strategy (head_tail or sliding)")


def _cut(text: str, keep: int, strategy: Strategy, head_fraction: float) -> str:
    """`text` reduced to `keep` characters by the strategy (the elision marker is extra)."""
    if keep >= len(text):
        return text
    if strategy == "sliding":
        return text[len(text) - keep:] if keep else ""
    head = int(keep * head_fraction)
    tail = keep - head
    return text[:head] + ELISION + (text[len(text) - tail:] if tail else "")


def shrink_text(text: str, budget: int, count: Callable[[str], int], strategy: Strategy,
                head_fraction: float = 0.5) -> str:
    """The longest cut of `text` (by the strategy) whose token count is within `budget`."""
    lo, hi = 0, len(text)  # lo always fits (or is 0), hi = the full text which does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(_cut(text, mid, strategy, head_fraction)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return _cut(text, lo, strategy, head_fraction)


def fit_text(text: str, *, window: int, reserve: int, count: Callable[[str], int], guard: GuardPolicy,
             model: str) -> tuple[str, int, str | None]:
    """Fit a raw prompt: returns (prompt, its token count, note or None when nothing was cut)."""
    n = count(text)
    budget = prompt_budget(window, reserve, model)
    if n <= budget:
        return text, n, None
    if guard.strategy == "strict":
        raise _exceeded(n, reserve, window, model)
    cut = shrink_text(text, budget, count, guard.strategy, guard.head_fraction)
    m = count(cut)
    if m > budget or not cut.strip():
        raise _exceeded(n, reserve, window, model)
    how = ("kept the most recent text (sliding window)" if guard.strategy == "sliding"
           else f"kept the head and tail ({guard.head_fraction:.0%} head), dropped the middle")
    note = (f"prompt of {n} tokens + {reserve} new tokens exceeded the {window}-token window: "
            f"truncated to {m} tokens, {how}; {len(text) - len(cut.replace(ELISION, ''))} of {len(text)} "
            f"characters removed")
    return cut, m, note


def fit_messages(messages: list[dict], *, window: int, reserve: int, count_chat: Callable[[list[dict]], int],
                 count: Callable[[str], int], guard: GuardPolicy, model: str) -> tuple[list[dict], int, str | None]:
    """Fit a conversation: drop whole turns first (oldest for sliding, middle for head_tail, never the
    system message(s) or the last turn), then cut the longest remaining message's text."""
    n = count_chat(messages)
    budget = prompt_budget(window, reserve, model)
    if n <= budget:
        return messages, n, None
    if guard.strategy == "strict":
        raise _exceeded(n, reserve, window, model)
    msgs = [dict(m) for m in messages]
    n_sys = 0
    while n_sys < len(msgs) and msgs[n_sys].get("role") == "system":
        n_sys += 1
    # head_tail keeps the first non-system turn (the task statement); sliding does not.
    keep_first = 1 if guard.strategy == "head_tail" else 0
    start = n_sys + keep_first
    droppable = max(0, len(msgs) - start - 1)

    def without(k: int) -> list[dict]:
        return msgs[:start] + msgs[start + k:]

    # The fewest turns to drop, by binary search (fewer drops never use fewer tokens): O(log n) renders.
    lo, hi = 0, droppable
    while lo < hi:
        mid = (lo + hi) // 2
        if count_chat(without(mid)) <= budget:
            hi = mid
        else:
            lo = mid + 1
    dropped = lo
    msgs = without(dropped)
    total = count_chat(msgs)
    cut_note = ""
    for _ in range(3):  # the template adds a few tokens around content: converge in a couple of rounds
        if total <= budget:
            break
        i = max(range(len(msgs)), key=lambda j: len(str(msgs[j].get("content") or "")))
        content = str(msgs[i].get("content") or "")
        own = count(content)
        target = own - (total - budget)
        if target < 1:
            break
        msgs[i]["content"] = shrink_text(content, target, count, guard.strategy, guard.head_fraction)
        cut_note = f"; cut the {msgs[i].get('role')} message #{i} from {own} to {count(msgs[i]['content'])} tokens"
        total = count_chat(msgs)
    if total > budget:
        raise _exceeded(n, reserve, window, model)
    which = "oldest" if guard.strategy == "sliding" else "middle"
    note = (f"conversation of {n} tokens + {reserve} new tokens exceeded the {window}-token window: "
            f"truncated to {total} tokens ({guard.strategy}); dropped {dropped} {which} message(s){cut_note}")
    return msgs, total, note
