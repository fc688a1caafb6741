"""Pilot mode: N steps on a sample of the data, with held-out perplexity before and after measured by the
evaluator (qkv.tools.evaluate.perplexity.perplexity_of) on the same loaded model — the cheapest real
evidence that a config learns before it is run for hours on a GPU."""

from __future__ import annotations

from pathlib import Path

from qkv.tools.train import checkpoints as ckpt
from qkv.tools.train.config import TrainConfig
from qkv.tools.train.schema import PerplexityPoint, PilotResult

DEFAULT_MAX_TOKENS = 1024  # held-out tokens scored: a stable before/after figure, seconds on 2 quiet CPU cores


def pilot_config(cfg: TrainConfig, steps: int, sample: int | None = None) -> TrainConfig:
    """`cfg` cut down to `steps` optimizer steps (and the first `sample` training rows, if given)."""
    data = cfg.data.model_copy(update={"max_samples": sample}) if sample else cfg.data
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"max_steps": steps}), "data": data})


def _ppl(model, tok, text: str, window: int, max_tokens: int) -> PerplexityPoint:
    from qkv.tools.evaluate.perplexity import perplexity_of

    # non-overlapping windows (stride = window): each token is computed once, which halves the CPU cost
    # of the default half-window stride; before and after use the same windows, so they compare exactly
    res = perplexity_of(model, tok, text, window=window, stride=window, allow_short=True,
                        max_tokens=max_tokens, label="pilot")
    return PerplexityPoint(token_ppl=res.token_ppl, bits_per_byte=res.bits_per_byte, tokens=res.tokens)


def pilot(cfg: TrainConfig, steps: int, *, sample: int | None = None, base_dir: Path | None = None,
          resume: bool = False, progress: bool = True, max_tokens: int = DEFAULT_MAX_TOKENS) -> PilotResult:
    """Train `steps` steps; score the held-out split before and after with the evaluator's perplexity."""
    from qkv.tools.train.run import execute, prepare

    cfg = pilot_config(cfg, steps, sample)
    run = prepare(cfg, base_dir=base_dir, resume=resume, progress=progress)
    window = min(256, max(cfg.train.seq_len, 32))
    before = _ppl(run.model, run.tokenizer, run.heldout_text, window, max_tokens)
    summary = execute(run)
    source = cfg.data.eval or f"{cfg.data.train} (held out)"
    if summary.status == "interrupted":  # Ctrl-C: the checkpoint is saved; do not make the user wait longer
        return PilotResult(steps=summary.steps, heldout_source=source, before=before, after=None, improved=False,
                           ppl_ratio=None, summary=summary)
    after = _ppl(run.model, run.tokenizer, run.heldout_text, window, max_tokens)
    result = PilotResult(steps=summary.steps, heldout_source=source, before=before, after=after,
                         improved=after.token_ppl < before.token_ppl,
                         ppl_ratio=round(after.token_ppl / before.token_ppl, 4), summary=summary)
    ckpt.write_text_atomic(run.out / "pilot.json", result.model_dump_json(indent=2) + "\n")
    return result
