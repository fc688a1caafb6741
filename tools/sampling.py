"""The sampling policy: one typed object for how text is decoded, shared by generation, evaluation,
the knowledge tools' per-task recommendations and the design report.

Hard rule 3 lives here: nothing is generated without a bound. A policy is *bounded* when it has a
finite `max_new_tokens` and, if it samples (temperature > 0), truncates the distribution with top-p
(< 1) or top-k (> 0). Greedy and beam search are deterministic and need only the length bound."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qkv.tools.errors import BadInput

Level = Literal["fail", "warn"]


class SamplingIssue(BaseModel):
    """One problem with a policy: `fail` breaks hard rule 3, `warn` is a known quality risk."""

    level: Level
    field: str
    message: str


class SamplingPolicy(BaseModel):
    """How tokens are chosen. Defaults are a bounded nucleus sampler (the common chat setting).

    temperature 0 means greedy; num_beams > 1 means beam search (temperature is then ignored)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.7, ge=0.0, le=5.0, description="softmax temperature; 0 = greedy")
    top_p: float = Field(0.9, gt=0.0, le=1.0, description="nucleus mass kept; 1.0 = no top-p bound")
    top_k: int = Field(40, ge=0, description="keep the k most likely tokens; 0 = no top-k bound")
    min_p: float = Field(0.0, ge=0.0, lt=1.0, description="drop tokens below min_p × p(max); 0 = off")
    repetition_penalty: float = Field(1.0, gt=0.0, le=3.0, description="1.0 = off (CTRL-style penalty)")
    max_new_tokens: int | None = Field(256, gt=0, description="hard cap on generated tokens; None = unbounded")
    stop: list[str] = Field(default_factory=list, description="stop strings (not included in the output)")
    seed: int | None = Field(None, description="RNG seed; the same seed and prompt give the same text")
    num_beams: int = Field(1, ge=1, le=16, description="beam width; 1 = no beam search")
    length_penalty: float = Field(1.0, description="beam search: exponent on length in the score")

    @model_validator(mode="after")
    def _stop_strings_nonempty(self) -> SamplingPolicy:
        if any(s == "" for s in self.stop):
            raise ValueError("stop strings must be non-empty")
        return self

    @property
    def mode(self) -> Literal["greedy", "beam", "sample"]:
        if self.num_beams > 1:
            return "beam"
        return "greedy" if self.temperature == 0 else "sample"

    def issues(self) -> list[SamplingIssue]:
        """Every way this policy breaks hard rule 3 (`fail`) or risks degenerate text (`warn`)."""
        out: list[SamplingIssue] = []
        if self.max_new_tokens is None:
            out.append(SamplingIssue(level="fail", field="max_new_tokens",
                                     message="no max_new_tokens: generation is unbounded"))
        if self.mode == "sample" and self.top_p >= 1.0 and self.top_k == 0:
            out.append(SamplingIssue(
                level="fail", field="top_p/top_k",
                message="sampling from the full distribution: set top_p < 1 or top_k > 0 "
                        "(the unreliable tail is what produces incoherent tokens)"))
        if self.mode == "sample" and self.temperature > 1.5:
            out.append(SamplingIssue(level="warn", field="temperature",
                                     message=f"temperature {self.temperature:g} > 1.5 flattens the distribution"))
        if self.mode == "greedy" and self.repetition_penalty == 1.0 and (self.max_new_tokens or 0) > 256:
            out.append(SamplingIssue(
                level="warn", field="repetition_penalty",
                message="long greedy generation without a repetition penalty tends to loop"))
        return out

    @property
    def bounded(self) -> bool:
        return not any(i.level == "fail" for i in self.issues())

    def ensure_bounded(self, *, force: bool = False) -> None:
        """Raise BadInput when the policy breaks hard rule 3, unless the caller explicitly forces it."""
        fails = [i for i in self.issues() if i.level == "fail"]
        if fails and not force:
            raise BadInput(
                "refusing to generate without a bound: " + "; ".join(i.message for i in fails),
                expected="--max-new-tokens N and, when sampling, --top-p < 1 or --top-k > 0 (or --force)")

    def describe(self) -> str:
        """One line stating the policy in effect, for logs and reports."""
        if self.mode == "greedy":
            core = "greedy"
        elif self.mode == "beam":
            core = f"beam search ×{self.num_beams} (length penalty {self.length_penalty:g})"
        else:
            parts = [f"temperature {self.temperature:g}"]
            if self.top_p < 1:
                parts.append(f"top-p {self.top_p:g}")
            if self.top_k:
                parts.append(f"top-k {self.top_k}")
            if self.min_p:
                parts.append(f"min-p {self.min_p:g}")
            core = ", ".join(parts)
        extra = []
        if self.repetition_penalty != 1.0:
            extra.append(f"repetition penalty {self.repetition_penalty:g}")
        extra.append(f"max {self.max_new_tokens} new tokens" if self.max_new_tokens else "UNBOUNDED length")
        if self.stop:
            extra.append("stop " + ", ".join(repr(s) for s in self.stop))
        if self.seed is not None:
            extra.append(f"seed {self.seed}")
        return core + "; " + "; ".join(extra)

    @classmethod
    def greedy(cls, max_new_tokens: int = 256, **kw) -> SamplingPolicy:
        """Deterministic decoding (evaluation, extraction)."""
        return cls(temperature=0.0, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens, **kw)
