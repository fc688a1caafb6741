"""Generation-based evaluation: turn each dataset item into a prompt, generate under an explicit, bounded
SamplingPolicy (greedy, beam search with a length penalty, or top-p/top-k/temperature sampling), and
post-process the output the way the task's metric expects."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from qkv.tools.errors import BadInput
from qkv.tools.evaluate.backends import EvalModel
from qkv.tools.sampling import SamplingPolicy

# Zero-shot prompts for a base model. "TL;DR:" is the zero-shot summarisation cue of Radford et al. 2019 (GPT-2).
DEFAULT_TEMPLATES: dict[str, str] = {
    "summarisation": "{source}\n\nTL;DR:",
    "translation": "{source}\n\nTranslation:",
    "qa": "{source}\n\nAnswer:",
    "classification": "{source}\n\nLabel:",
    "language-modelling": "{source}",
}
# Tasks whose metric compares a short answer: keep only the first non-empty line of the output.
FIRST_LINE_TASKS = ("qa", "classification")


def render_prompt(template: str, item: dict[str, Any], index: int) -> str:
    try:
        return template.format(**{k: v for k, v in item.items() if isinstance(v, str | int | float)})
    except KeyError as exc:
        raise BadInput(f"prompt template slot {exc} is not a field of item {index + 1}",
                       expected="slots naming dataset fields", choices=sorted(item)) from None


def postprocess(text: str, task: str) -> str:
    text = text.strip()
    if task in FIRST_LINE_TASKS:
        return next((line.strip() for line in text.splitlines() if line.strip()), "")
    return text


def generate_outputs(model: EvalModel, items: Sequence[dict[str, Any]], *, task: str, policy: SamplingPolicy,
                     template: str | None = None, force: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> list[str]:
    """One post-processed output per item, generated with `policy` (refused unless bounded, hard rule 3)."""
    policy.ensure_bounded(force=force)
    template = template or DEFAULT_TEMPLATES[task]
    outputs = []
    for i, item in enumerate(items):
        outputs.append(postprocess(model.generate(render_prompt(template, item, i), policy, force=force), task))
        if progress:
            progress(i + 1, len(items))
    return outputs
