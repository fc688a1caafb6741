"""The one exception family: every user-facing failure says what was wrong, what was expected
and, where there is a finite set, the valid choices (closest first)."""

from __future__ import annotations

from collections.abc import Iterable


class QkvError(Exception):
    """A failure the user can act on. The CLI prints `str(err)` on one line and exits 2."""

    exit_code = 2
    choices_label = "did you mean"

    def __init__(self, what: str, *, expected: str | None = None, choices: Iterable[str] = ()) -> None:
        self.what = what
        self.expected = expected
        self.choices = list(choices)
        super().__init__(self.render())

    def render(self) -> str:
        parts = [self.what.rstrip(".")]
        if self.expected:
            parts.append(f"expected {self.expected}")
        if self.choices:
            parts.append(f"{self.choices_label}: " + ", ".join(self.choices[:8]))
        return "; ".join(parts) + "."


class UnknownName(QkvError):
    """A model, GPU or option name that is not in the catalog."""


class BadInput(QkvError):
    """A value out of range, a malformed file, a contradictory setting."""


class ContextExceeded(QkvError):
    """A sequence longer than the model's window with no stated context extension (hard rule 1)."""

    choices_label = "known extensions"


def closest(name: str, candidates: Iterable[str], limit: int = 5) -> list[str]:
    """Closest candidate names by fuzzy similarity, best first."""
    from rapidfuzz import fuzz, process, utils

    pool = list(dict.fromkeys(candidates))
    hits = process.extract(name, pool, scorer=fuzz.WRatio, processor=utils.default_process, limit=limit)
    return [h[0] for h in hits if h[1] >= 50]


def validation_summary(exc) -> str:
    """A pydantic ValidationError as one line: the first three errors, `field: message`."""
    errs = exc.errors()
    parts = []
    for err in errs[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "arguments"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (+{len(errs) - 3} more)" if len(errs) > 3 else ""
    return "; ".join(parts) + more
