"""Stream a corpus as documents with bounded memory, counting (never crashing on) what cannot be read.

A document is: a text file (files over 1 MiB are cut into ~1 MiB pieces at line ends, so memory stays
bounded), a JSONL line's / CSV row's text column, a row of a saved `datasets` dataset, or stdin (spooled to
a temporary file so the auditor can read it twice: once to measure, once to re-measure after extension).
Binary files (a NUL byte in the first 8 KiB) and invalid UTF-8 are skipped and reported with the reason."""

from __future__ import annotations

import codecs
import csv
import glob
import json
import random
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from qkv.tools.errors import BadInput

CHUNK = 1 << 20  # bytes per read; also the largest document cut from one big text file
SNIFF = 8192
RECORD_SUFFIXES = {".jsonl", ".ndjson", ".csv", ".tsv"}
csv.field_size_limit(1 << 30)


@dataclass
class Source:
    kind: str  # "file" | "dataset" | "stdin"
    path: Path
    size: int = 0


@dataclass
class Corpus:
    """A re-readable stream of documents. `skipped` lists (path, reason) from the first pass."""

    specs: list[str]
    column: str | None = None
    sample: int | None = None
    sources: list[Source] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    _passes: int = 0
    _stdin_spool: Path | None = None

    @classmethod
    def open(cls, specs: list[str], *, column: str | None = None, sample: int | None = None) -> Corpus:
        corpus = cls(specs=list(specs), column=column, sample=sample)
        corpus.sources = _expand(specs)
        if sample is not None:
            random.Random(0).shuffle(corpus.sources)  # a fixed-seed subset of files, not the alphabetical head
        return corpus

    @property
    def total_bytes(self) -> int:
        """Bytes to read (0 when unknown: stdin on the first pass, datasets)."""
        return sum(s.size for s in self.sources)

    def documents(self, progress=None) -> Iterator[str]:
        """Yield documents (str). `progress(bytes_done, bytes_total)` is called as files are read."""
        first = self._passes == 0
        self._passes += 1
        done, total, n = 0, self.total_bytes, 0
        for src in self.sources:
            for doc in self._read(src, record_skips=first):
                yield doc
                n += 1
                if self.sample is not None and n >= self.sample:
                    return
            done += src.size
            if progress:
                progress(done, total)

    def close(self) -> None:
        if self._stdin_spool is not None:
            self._stdin_spool.unlink(missing_ok=True)
            self._stdin_spool = None

    # ---- readers -----------------------------------------------------------------------------------------------

    def _skip(self, path: Path | str, reason: str, record: bool) -> None:
        if record:
            self.skipped.append((str(path), reason))

    def _read(self, src: Source, *, record_skips: bool) -> Iterator[str]:
        if src.kind == "stdin":
            if self._stdin_spool is None:
                self._stdin_spool = _spool_stdin()
                src.path, src.size = self._stdin_spool, self._stdin_spool.stat().st_size
            yield from self._read_text(self._stdin_spool, record_skips, label="<stdin>")
        elif src.kind == "dataset":
            yield from self._read_dataset(src.path, record_skips)
        elif src.path.suffix.lower() in RECORD_SUFFIXES:
            yield from self._read_records(src.path, record_skips)
        else:
            yield from self._read_text(src.path, record_skips)

    def _read_text(self, path: Path, record: bool, label: str | None = None) -> Iterator[str]:
        label = label or str(path)
        try:
            fh = open(path, "rb")  # noqa: SIM115 — a generator: the `with` below closes it
        except OSError as exc:
            self._skip(label, f"unreadable ({exc.strerror})", record)
            return
        with fh:
            head = fh.read(SNIFF)
            if b"\x00" in head:
                self._skip(label, "binary (NUL byte in the first 8 KiB)", record)
                return
            decoder = codecs.getincrementaldecoder("utf-8")("strict")
            pending, offset, buf = "", 0, head
            while True:
                more = fh.read(CHUNK)
                final = not more
                try:
                    text = decoder.decode(buf, final=final)
                except UnicodeDecodeError as exc:
                    where = offset + exc.start
                    used = " (the text before it was audited)" if offset else ""
                    self._skip(label, f"invalid UTF-8 at byte {where}{used}", record)
                    return
                offset += len(buf)
                pending += text
                buf = more
                if final:
                    if pending.strip():
                        yield pending.lstrip("\ufeff")
                    return
                if len(pending) >= CHUNK:  # cut a big file at a line end to bound memory
                    cut = pending.rfind("\n") + 1 or len(pending)
                    yield pending[:cut]
                    pending = pending[cut:]

    def _read_records(self, path: Path, record: bool) -> Iterator[str]:
        try:
            raw = open(path, encoding="utf-8", newline="")  # noqa: SIM115 — closed by the `with` below
        except OSError as exc:
            self._skip(path, f"unreadable ({exc.strerror})", record)
            return
        bad = 0
        try:
            with raw:
                if path.suffix.lower() in (".jsonl", ".ndjson"):
                    for line in raw:
                        if not line.strip():
                            continue
                        try:
                            text = self._column(json.loads(line), path)
                        except (json.JSONDecodeError, TypeError):
                            bad += 1
                            continue
                        if text:
                            yield text
                else:
                    reader = csv.DictReader(raw, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
                    for row in reader:
                        text = self._column(row, path)
                        if text:
                            yield text
        except UnicodeDecodeError as exc:
            self._skip(path, f"invalid UTF-8 ({exc.reason}); records before it were audited", record)
        if bad:
            self._skip(path, f"{bad} malformed JSON line(s) skipped", record)

    def _column(self, row, path: Path) -> str | None:
        if not isinstance(row, dict):
            raise TypeError("not an object")
        if self.column is not None:
            if self.column not in row:
                raise BadInput(f"{path}: no column '{self.column}'", expected="one of its columns",
                               choices=[str(k) for k in row])
            value = row[self.column]
        elif "text" in row:
            value = row["text"]
        else:
            strings = [k for k, v in row.items() if isinstance(v, str)]
            if len(strings) != 1:
                raise BadInput(f"{path}: which column holds the text?", expected="--column NAME",
                               choices=[str(k) for k in row])
            value = row[strings[0]]
        return value if isinstance(value, str) and value.strip() else None

    def _read_dataset(self, path: Path, record: bool) -> Iterator[str]:
        try:
            from datasets import DatasetDict, load_from_disk

            ds = load_from_disk(str(path))
        except Exception as exc:  # datasets raises FileNotFoundError/ValueError/… for a bad folder
            self._skip(path, f"not a readable datasets folder ({str(exc)[:120]})", record)
            return
        splits = [ds[k] for k in ds] if isinstance(ds, DatasetDict) else [ds]
        for split in splits:
            for row in split:
                text = self._column(row, path)
                if text:
                    yield text


def _spool_stdin() -> Path:
    """Copy stdin to a temporary file in 1 MiB blocks (bounded memory; lets the auditor read it twice)."""
    fd, name = tempfile.mkstemp(prefix="qkv-audit-stdin-", suffix=".txt")
    with open(fd, "wb") as out:
        stream = sys.stdin.buffer
        while block := stream.read(CHUNK):
            out.write(block)
    return Path(name)


def _is_dataset_dir(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _expand(specs: list[str]) -> list[Source]:
    out: list[Source] = []
    for spec in specs:
        if spec == "-":
            out.append(Source("stdin", Path("-")))
            continue
        path = Path(spec).expanduser()
        if any(ch in spec for ch in "*?["):
            hits = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            files = [p for p in hits if p.is_file()]
            if not files:
                raise BadInput(f"the pattern '{spec}' matches no file", expected="a glob matching text files")
            out += [Source("file", p, p.stat().st_size) for p in files]
        elif path.is_dir():
            if _is_dataset_dir(path):
                out.append(Source("dataset", path))
                continue
            files = sorted(p for p in path.rglob("*")
                           if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not files:
                raise BadInput(f"folder {path} holds no files", expected="a folder of text files")
            out += [Source("file", p, p.stat().st_size) for p in files]
        elif path.is_file():
            out.append(Source("file", path, path.stat().st_size))
        else:
            raise BadInput(f"no such file or folder: {spec}",
                           expected="text files, folders, globs ('docs/**/*.md'), .jsonl/.csv, a saved datasets "
                                    "folder, or '-' for stdin")
    return out
