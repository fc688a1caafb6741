"""A blind human-review sheet, as careful teams build before trusting automatic metrics:
N sampled items (default 50), each with its source, reference and every system's output in a shuffled
order, the system identities replaced by row ids (the key is written to a separate file that reviewers
should not see), and empty columns for faithfulness and quality. Written as CSV (to fill in) and a
self-contained HTML page (to read); `read_review` reads the filled CSV back and averages per system."""

from __future__ import annotations

import csv
import html
import io
import random
from collections.abc import Sequence
from pathlib import Path

from qkv.tools.atomic import write_text
from qkv.tools.errors import BadInput
from qkv.tools.evaluate.schema import ReviewSheet, ReviewSummary, SystemReview

SHEET_COLUMNS = ["row", "item", "source", "reference", "output", "faithfulness_1to5", "quality_1to5", "comment"]
KEY_COLUMNS = ["row", "item", "system"]
SCORE_RANGE = (1, 5)


def make_review_sheet(
    outputs: dict[str, Sequence[str]],
    sources: Sequence[str],
    references: Sequence[str] | None,
    out_dir: str | Path,
    *,
    n: int = 50,
    seed: int = 0,
) -> ReviewSheet:
    """Write review_sheet.csv, review_sheet.html and review_key.csv (system identities) into out_dir."""
    if not outputs:
        raise BadInput("no system outputs to review", expected="at least one system's outputs")
    lengths = {name: len(v) for name, v in outputs.items()}
    if len(set(lengths.values()) | {len(sources)}) != 1 or (references is not None and len(references) != len(sources)):
        raise BadInput(f"sources ({len(sources)}), references and outputs {lengths} differ in length",
                       expected="one output per source for every system, in the same order")
    if n < 1:
        raise BadInput(f"n = {n}", expected="at least 1 item to review")
    rng = random.Random(seed)
    items = sorted(rng.sample(range(len(sources)), min(n, len(sources))))
    rows = [(i, name) for i in items for name in outputs]
    rng.shuffle(rows)  # systems interleaved and in no fixed order, so position reveals nothing
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sheet_rows, key_rows = [], []
    for r, (i, name) in enumerate(rows, 1):
        sheet_rows.append({"row": r, "item": i + 1, "source": sources[i],
                           "reference": references[i] if references is not None else "",
                           "output": outputs[name][i], "faithfulness_1to5": "", "quality_1to5": "", "comment": ""})
        key_rows.append({"row": r, "item": i + 1, "system": name})
    sheet_csv, sheet_html, key_csv = out / "review_sheet.csv", out / "review_sheet.html", out / "review_key.csv"
    write_text(sheet_csv, _csv_text(SHEET_COLUMNS, sheet_rows))
    write_text(key_csv, _csv_text(KEY_COLUMNS, key_rows))
    write_text(sheet_html, _html(sheet_rows, seed=seed))
    return ReviewSheet(sheet_csv=str(sheet_csv), sheet_html=str(sheet_html), key_file=str(key_csv),
                       items=len(items), systems=sorted(outputs), seed=seed)


def read_review(sheet_csv: str | Path, key_csv: str | Path) -> ReviewSummary:
    """Mean faithfulness and quality per system from a filled sheet (blank cells = not yet rated)."""
    sheet = _read_csv(sheet_csv, {"row", "faithfulness_1to5", "quality_1to5"})
    key = {row["row"]: row["system"] for row in _read_csv(key_csv, {"row", "system"})}
    per: dict[str, dict[str, list[float]]] = {s: {"f": [], "q": [], "rated": []} for s in dict.fromkeys(key.values())}
    rated_rows = 0
    for row in sheet:
        if row["row"] not in key:
            raise BadInput(f"sheet row {row['row']} is not in the key {key_csv}",
                           expected="the key file written with this sheet")
        system = key[row["row"]]
        f = _score(row["faithfulness_1to5"], row["row"], "faithfulness")
        q = _score(row["quality_1to5"], row["row"], "quality")
        if f is not None:
            per[system]["f"].append(f)
        if q is not None:
            per[system]["q"].append(q)
        if f is not None or q is not None:
            per[system]["rated"].append(1)
            rated_rows += 1
    systems = [SystemReview(system=s, rated=len(v["rated"]),
                            faithfulness_mean=sum(v["f"]) / len(v["f"]) if v["f"] else None,
                            quality_mean=sum(v["q"]) / len(v["q"]) if v["q"] else None)
               for s, v in sorted(per.items())]
    return ReviewSummary(rows=len(sheet), rated_rows=rated_rows, systems=systems)


def _score(cell: str, row: str, what: str) -> float | None:
    cell = (cell or "").strip()
    if not cell:
        return None
    try:
        value = float(cell)
    except ValueError:
        raise BadInput(f"row {row}: {what} score {cell!r} is not a number",
                       expected=f"{SCORE_RANGE[0]}-{SCORE_RANGE[1]} or blank") from None
    if not SCORE_RANGE[0] <= value <= SCORE_RANGE[1]:
        raise BadInput(f"row {row}: {what} score {value:g} is out of range",
                       expected=f"{SCORE_RANGE[0]}-{SCORE_RANGE[1]} or blank")
    return value


def _read_csv(path: str | Path, needed: set[str]) -> list[dict[str, str]]:
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"file {p} not found", expected="the review sheet / key written by qkv eval --review")
    from qkv.tools.evaluate.data import utf8_text

    rows = list(csv.DictReader(io.StringIO(utf8_text(p, expected="a UTF-8 CSV review sheet or key"))))
    if not rows:
        raise BadInput(f"{p} has no rows", expected="a review sheet or key with a header and rows")
    missing = needed - set(rows[0])
    if missing:
        raise BadInput(f"{p} lacks column(s) {sorted(missing)}", expected="the columns qkv wrote",
                       choices=sorted(needed))
    return rows


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _html(rows: list[dict], *, seed: int) -> str:
    """One self-contained page (inline CSS, no scripts or external assets)."""
    e = html.escape
    body = []
    for r in rows:
        body.append(
            f"<tr><td>{r['row']}</td><td>{r['item']}</td><td class=t>{e(str(r['source']))}</td>"
            f"<td class=t>{e(str(r['reference']))}</td><td class=t>{e(str(r['output']))}</td>"
            "<td></td><td></td><td></td></tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qkv blind review sheet</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em}} table{{border-collapse:collapse;width:100%}}
th,td{{border:1px solid #bbb;padding:.4em;vertical-align:top}} th{{background:#eee;position:sticky;top:0}}
td.t{{white-space:pre-wrap;max-width:28em}} tr:nth-child(even){{background:#fafafa}}
</style></head><body>
<h1>Blind review sheet</h1>
<p>{len(rows)} rows, shuffled (seed {seed}); system identities are hidden (the key is a separate file).
Rate each output for <b>faithfulness</b> to the source and overall <b>quality</b>, 1 (bad) to 5 (good),
in <code>review_sheet.csv</code>, then run
<code>qkv eval --read-review review_sheet.csv --key review_key.csv</code>.</p>
<table><thead><tr>{"".join(f"<th>{c}</th>" for c in SHEET_COLUMNS)}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""
