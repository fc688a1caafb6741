"""The design report as one self-contained HTML page (no scripts, no external files): the Markdown
sections rendered as simple HTML, plus an inline SVG stacked bar of the training-memory breakdown
against the GPU's usable memory."""

from __future__ import annotations

import html
import re

from qkv.agent.graph.schemas import DesignReport

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac", "#86bcb6", "#d37295")
CSS = """body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}
code,pre{background:#f5f5f5}pre{padding:.5rem;overflow:auto}.PASS{color:#2a7}.WARN{color:#c80}.FAIL{color:#c22}
sub{color:#666}"""


def _stacked_bar(label: str, title: str, items: list[tuple[str, float, str]], usable: float | None,
                 width: int) -> str:
    """A horizontal stacked bar of (name, GiB, legend note) items with the usable-memory line and a legend."""
    total = sum(gib for _, gib, _ in items)
    scale_max = max(total, usable or 0) * 1.05 or 1.0
    x0, bar_w, y0, bar_h = 10, width - 20, 30, 34
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{70 + 18 * len(items)}" '
             f'role="img" aria-label="{html.escape(label)}">',
             f'<text x="{x0}" y="18" font-size="14">{html.escape(title)}</text>']
    x = float(x0)
    for n, (name, gib, _) in enumerate(items):
        w = bar_w * gib / scale_max
        parts.append(f'<rect x="{x:.1f}" y="{y0}" width="{max(w, 0.5):.1f}" height="{bar_h}" '
                     f'fill="{PALETTE[n % len(PALETTE)]}"><title>{html.escape(name)}: {gib:.3f} GiB</title></rect>')
        x += w
    if usable:
        ux = x0 + bar_w * usable / scale_max
        parts.append(f'<line x1="{ux:.1f}" y1="{y0 - 6}" x2="{ux:.1f}" y2="{y0 + bar_h + 6}" stroke="#c22" '
                     f'stroke-width="2" stroke-dasharray="4 2"/>')
    for n, (name, gib, note) in enumerate(items):
        y = y0 + bar_h + 22 + 18 * n
        parts.append(f'<rect x="{x0}" y="{y - 10}" width="12" height="12" fill="{PALETTE[n % len(PALETTE)]}"/>'
                     f'<text x="{x0 + 18}" y="{y}" font-size="12">{html.escape(name)}: {gib:.3f} GiB'
                     f'{html.escape(note)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def memory_svg(r: DesignReport, width: int = 720) -> str:
    """Training memory per GPU (inference memory for an inference-only design) as a stacked bar."""
    items = [b for b in r.efficiency.breakdown if b.gib > 0]
    title = "training memory per GPU"
    if not items:
        items = [b for b in r.resource_budget.inference_breakdown if b.gib > 0]  # inference-only designs
        title = "inference memory"
    if not items:
        return ""
    usable = r.efficiency.usable_gib
    total = sum(b.gib for b in items)
    return _stacked_bar(title, f"{title}: {total:.2f} GiB of {usable:.2f} GiB usable",
                        [(b.name, b.gib, "") for b in items], usable, width)


def serving_svg(r: DesignReport, width: int = 720) -> str:
    """One GPU of the serving plan as a stacked bar (weights, KV pool, workspace, overheads) against its
    usable memory; empty when the report has no serving plan."""
    sv = r.inference.serving
    if not sv:
        return ""
    items = [(m["name"], m["gib"], f" ({m['provenance']})") for m in sv["per_gpu"] if m["gib"] > 0]
    usable = sv.get("usable_gib") or 0.0
    total = sum(gib for _, gib, _ in items)
    title = f"serving, one GPU ({sv['engine']}, TP {sv['tensor_parallel']}): {total:.2f} of {usable:.2f} GiB"
    return _stacked_bar("serving memory", title, items, usable, width)


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
    text = re.sub(r"&lt;sub&gt;(.*?)&lt;/sub&gt;", r"<sub>\1</sub>", text)
    for s in ("PASS", "WARN", "FAIL"):
        text = text.replace(f"<b>{s}</b>", f'<b class="{s}">{s}</b>')
    return text


def markdown_to_html(md: str) -> str:
    """The small Markdown subset report_md writes: headings, lists, tables, fenced code, paragraphs."""
    out: list[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append("<pre>" + html.escape("\n".join(lines[i + 1:j])) + "</pre>")
            i = j + 1
            continue
        if m := re.match(r"^(#{1,3}) (.*)", line):
            level = len(m.group(1))
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not re.match(r"^\|[-:| ]+\|$", lines[i]):
                    rows.append([c.strip() for c in lines[i].strip("|").split(" | ")])
                i += 1
            head, *body = rows
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
                       + "</table>")
            continue
        elif re.match(r"^\s*- ", line):
            items = []
            while i < len(lines) and re.match(r"^\s*- ", lines[i]):
                items.append(_inline(lines[i].strip()[2:]))
                i += 1
            out.append("<ul>" + "".join(f"<li>{x}</li>" for x in items) + "</ul>")
            continue
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


def render_html(r: DesignReport) -> str:
    """The whole page: title, the memory chart, then every section."""
    from qkv.agent.graph.report_md import render_markdown

    body = markdown_to_html(render_markdown(r))
    chart = memory_svg(r)
    # The chart goes right after the efficiency heading.
    body = body.replace("<h2>3. Efficiency</h2>", "<h2>3. Efficiency</h2>\n" + chart, 1)
    # The serving plan's one-GPU bar goes right after the inference heading.
    body = body.replace("<h2>5. Inference</h2>", "<h2>5. Inference</h2>\n" + serving_svg(r), 1)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>qkv design: {html.escape(r.task.text[:80])}</title><style>{CSS}</style></head>"
            f"<body>\n{body}\n</body></html>\n")
