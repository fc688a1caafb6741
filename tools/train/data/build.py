"""Rebuild the shipped training data from the licence texts Debian ships in /usr/share/common-licenses.

Run: python tools/train/data/build.py   (deterministic; the JSONL files it writes are checked in)

Licence texts may be copied verbatim (each says so), which makes them a small, real, redistributable
corpus of legal English. Paragraphs are split on blank lines, re-flowed to one line, and assigned to the
held-out split by a hash of their text (about 1 in 8), so the split never changes with file order.

Files written next to this script:
  licences-train.jsonl / licences-heldout.jsonl   {"text": ...}              plain-text LM
  continue-train.jsonl / continue-heldout.jsonl   {"prompt": ..., "response": ...}
      prompt = the paragraph's first sentence with an instruction, response = the rest of the paragraph
      (loss on the response only)
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

SOURCES = ["GPL-3", "Apache-2.0", "MPL-2.0", "LGPL-3", "GFDL-1.3", "Artistic", "BSD", "CC0-1.0"]
HERE = Path(__file__).parent


def paragraphs(text: str) -> list[str]:
    out = []
    for block in re.split(r"\n\s*\n", text):
        line = " ".join(block.split())
        if len(line) >= 80:  # headings and one-liners carry little signal
            out.append(line)
    return out


def held_out(par: str) -> bool:
    return hashlib.sha256(par.encode()).digest()[0] % 8 == 0


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def main() -> None:
    train, heldout, ctrain, cheld = [], [], [], []
    seen = set()
    for name in SOURCES:
        for par in paragraphs((Path("/usr/share/common-licenses") / name).read_text(errors="replace")):
            if par in seen:
                continue
            seen.add(par)
            (heldout if held_out(par) else train).append({"text": par})
            first, _, rest = par.partition(". ")
            if rest and len(rest) > 40:
                pair = {"prompt": f"Continue this passage from the {name} licence: {first}.", "response": rest}
                (cheld if held_out(par) else ctrain).append(pair)
    write(HERE / "licences-train.jsonl", train)
    write(HERE / "licences-heldout.jsonl", heldout)
    write(HERE / "continue-train.jsonl", ctrain)
    write(HERE / "continue-heldout.jsonl", cheld)
    print(len(train), len(heldout), len(ctrain), len(cheld))


if __name__ == "__main__":
    main()
