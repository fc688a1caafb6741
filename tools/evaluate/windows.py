"""The strided sliding-window plan shared by every perplexity backend (transformers and llama-cpp score
exactly the same tokens with exactly the same contexts, so their numbers can be compared).

Method (HF 'Perplexity of fixed-length models', docs/source/en/perplexity.md): a window of `window`
tokens advances by `stride`; each token is scored once, in the first window that can predict it, so with
stride < window every scored token after the first window sees at least `window - stride` tokens of context.
Unlike the HF snippet, the token at the start of a non-overlapping window is not dropped: it is scored
from the last logit of the previous window (as lm-eval-harness's rolling windows do), so every token after
position 0 is scored exactly once whatever the stride, and token counts agree across strides."""

from __future__ import annotations

import math
from dataclasses import dataclass

from qkv.tools.errors import BadInput


@dataclass(frozen=True)
class Span:
    """One forward pass over ids[begin:end]; it scores targets first..last (inclusive, absolute positions).

    The logit row for target t is t - 1 - begin (row i predicts token begin + i + 1)."""

    begin: int
    end: int
    first: int
    last: int

    @property
    def rows(self) -> tuple[int, int]:
        """Row range [lo, hi) of this window's logits that score its targets."""
        return self.first - 1 - self.begin, self.last - self.begin


def plan_windows(n_tokens: int, window: int, stride: int) -> list[Span]:
    """Windows covering positions 1..n_tokens-1 once each (position 0 is BOS or has no context)."""
    if window < 2:
        raise BadInput(f"window {window} is too small", expected="a window of at least 2 tokens")
    if not 1 <= stride <= window:
        raise BadInput(f"stride {stride} is outside 1..window ({window})",
                       expected="0 < stride <= window (stride = window means non-overlapping windows)")
    if n_tokens < 2:
        raise BadInput("nothing to score: the text has fewer than 2 tokens", expected="a non-empty text")
    spans: list[Span] = []
    covered = 1  # next position still to score
    begin = 0
    while covered < n_tokens:
        end = min(begin + window, n_tokens)
        last = min(end, n_tokens - 1)  # the window's last logit predicts token `end` when it exists
        if last >= covered:
            spans.append(Span(begin, end, covered, last))
            covered = last + 1
        begin += stride
    return spans


def summary_numbers(nll: float, tokens: int, n_bytes: int, words: int) -> dict[str, float]:
    """Token perplexity, bits per byte and word perplexity from a summed NLL in nats (lm-eval-harness)."""
    return {
        "token_ppl": math.exp(nll / tokens),
        "bits_per_byte": nll / n_bytes / math.log(2),
        "word_ppl": math.exp(nll / max(words, 1)),
    }


def check_length(n_tokens: int, window: int, *, allow_short: bool) -> int:
    """The window to use: a text shorter than one window is an error unless the caller allows shrinking."""
    if n_tokens >= window:
        return window
    if allow_short and n_tokens >= 2:
        return n_tokens
    raise BadInput(f"the text has {n_tokens} tokens, shorter than one window of {window}",
                   expected=f"a longer text, or --window <= {n_tokens} (sliding-window perplexity needs at least "
                            "one full window)")
