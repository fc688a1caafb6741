"""Report rendering: Markdown sections, a self-contained HTML page whose SVG is well-formed and whose
bars are the breakdown, templates filled from the prompts package, the JSON schema."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from qkv.agent.graph.api import DesignRequest, design
from qkv.agent.graph.narrate import SECTIONS, load_prompt, templates
from qkv.agent.graph.report_html import markdown_to_html, memory_svg
from qkv.agent.graph.schemas import DesignReport

WORKED = "Fine-tune a 7B parameter Transformer for legal document summarization on a consumer GPU with 24GB VRAM"


@pytest.fixture(scope="module")
def report() -> DesignReport:
    return design(DesignRequest(task=WORKED))


def test_markdown_has_every_section(report):
    md = report.to_markdown()
    for heading in ("## Task and assumptions", "## Checks (the three hard rules, and the stated constraints)",
                    "## 1. Objective",
                    "## 2. Architecture", "### Layer profile", "## 3. Efficiency", "## 4. Tokenization",
                    "## 5. Inference", "## Ethical evaluation", "## Resource budget", "## Training config"):
        assert heading in md
    assert f"{report.efficiency.peak_vram_gib:,.4g} GiB" in md
    assert md.count("| **PASS** |") == 4  # three hard rules + stated constraints
    assert "`gpus` = 1 ← “a consumer GPU”" in md  # stated, with the user's words
    assert "**Not understood**" in md


def test_svg_is_well_formed_and_draws_the_breakdown(report):
    svg = memory_svg(report)
    root = ET.fromstring(svg)
    rects = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.get("height") == "34"]
    assert len(rects) == len([b for b in report.efficiency.breakdown if b.gib > 0])
    # Bar widths are proportional to the terms.
    widths = [float(r.get("width")) for r in rects]
    gibs = [b.gib for b in report.efficiency.breakdown if b.gib > 0]
    assert widths[0] / widths[1] == pytest.approx(gibs[0] / gibs[1], rel=0.01)
    assert root.find("{http://www.w3.org/2000/svg}line") is not None  # the usable-memory line


def test_html_page_is_self_contained(report):
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<svg" in page and "<script" not in page and "<link" not in page and "src=" not in page
    assert "<table>" in page and "<pre>" in page


def test_markdown_subset_renderer():
    html = markdown_to_html("# T\n\n- a **b**\n- `c`\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\n```yaml\nk: v\n```\n")
    assert "<h1>T</h1>" in html and "<li>a <b>b</b></li>" in html and "<code>c</code>" in html
    assert "<th>x</th>" in html and "<td>2</td>" in html and "<pre>k: v</pre>" in html


def test_templates_fill_every_slot(report):
    text = templates(report)
    assert set(text) == set(SECTIONS)
    assert all("{" not in t for t in text.values())
    assert str(report.efficiency.peak_vram_gib) in text["efficiency"]
    assert report.narrative == text and set(report.narrative_source.values()) == {"template"}


def test_persona_prompt_states_the_three_rules():
    persona = load_prompt("persona.md").lower()
    assert "context window" in persona and "hyperparameters" in persona and "top-p" in persona


def test_report_json_schema_has_the_stable_keys():
    props = DesignReport.model_json_schema()["properties"]
    assert {"task", "assumptions", "objective", "architecture", "efficiency", "tokenization", "inference",
            "resource_budget", "layer_profile", "ethics", "checks", "training_config"} <= set(props)


def test_markdown_states_each_choice_with_its_reason():
    """Issue 22: the candidate table says why each model lost; the recipe, precision, data budget and the
    config's derivation appear with their sources."""
    r = design(DesignRequest(task="a customer-support chatbot for English and Hindi on 2 A100s, 50k dialogues"))
    md = r.to_markdown()
    assert "| verdict |" in md and "**chosen**" in md and "does not cover hi" in md
    assert "Task recipe (**chat**)" in md and "- baseline:" in md and "- data:" in md
    assert "- training precision: **bf16**" in md
    db = r.resource_budget.data_budget
    assert f"**{db.steps:,} steps**" in md
    assert f"- steps: data budget: {db.steps:,} steps" in md
    assert f"max_steps: {db.steps}" in r.training_config.yaml
