"""Hard rule 1: never exceed the context window without a stated extension."""

from __future__ import annotations

from qkv.tools.arch import ModelSpec
from qkv.tools.errors import ContextExceeded

EXTENSIONS = ("linear", "dynamic", "yarn", "longrope", "llama3", "sliding", "alibi", "chunking")


def check_context(spec: ModelSpec, seq: int, extension: str | None, model: str) -> list[str]:
    """Warnings for a sequence within rules; ContextExceeded past the window with no extension."""
    window = spec.max_positions
    if window is None:
        if spec.position == "relative" and seq > 512:
            return [f"{model} uses relative position buckets and was pre-trained on 512-token inputs; "
                    f"quality at {seq:,} tokens is unmeasured"]
        return []
    if seq <= window:
        return []
    rule = (f"sequence {seq:,} exceeds {model}'s {window:,}-token context window; beyond it attention "
            "sees positions it was never trained on")
    if extension is None:
        raise ContextExceeded(
            rule, expected=f"--seq ≤ {window:,}, or a stated extension with --context-extension",
            choices=EXTENSIONS)
    if extension not in EXTENSIONS:
        raise ContextExceeded(f"unknown context extension '{extension}'", expected="a known method",
                              choices=EXTENSIONS)
    if spec.position == "learned":
        raise ContextExceeded(
            f"{model} has a learned position table of {window:,} rows; '{extension}' cannot extend it",
            expected=f"--seq ≤ {window:,} (or a model with RoPE/ALiBi positions)")
    factor = seq / window
    return [f"{rule}: planned with {extension} (×{factor:.2f}); fine-tune at the new length and "
            "measure long-context quality before trusting it"]
