"""Training data: read rows (JSONL / JSON / CSV / TXT / a `datasets` folder), check them, turn them into
token ids with labels (-100 where no loss is taken), and optionally pack them into full-length blocks.

Packing concatenates examples (each ending in EOS) and cuts seq_len blocks, so no compute is spent on
padding; without it every example is its own row and the collator pads to the longest row in the batch
(never to seq_len). Packed blocks let attention cross example boundaries: the usual, cheap trade-off
(the EOS separator tells the model a new document begins)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qkv.tools.errors import BadInput, closest
from qkv.tools.train.config import DataSection

IGNORE = -100  # label value the loss skips (transformers / torch cross-entropy convention)
BUNDLED = "bundled:"


def bundled_dir() -> Path:
    """Folder of the data files qkv ships (qkv/tools/train/data)."""
    return Path(__file__).parent / "data"


def resolve_data_path(spec: str, base_dir: Path | None = None) -> Path:
    """'bundled:NAME' → the shipped file; a relative path → from the config's folder, then the CWD."""
    if spec.startswith(BUNDLED):
        name = spec[len(BUNDLED):]
        path = bundled_dir() / name
        if not path.exists():
            shipped = sorted(p.name for p in bundled_dir().glob("*.jsonl"))
            raise BadInput(f"no bundled data file '{name}'", choices=closest(name, shipped) or shipped)
        return path
    path = Path(spec).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        return base_dir / path
    if not path.exists():
        raise BadInput(f"data file {spec} does not exist",
                       expected="a .jsonl/.json/.csv/.txt file, a datasets folder, or 'bundled:NAME'")
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    """All rows of a data file as dicts (a .txt file gives one {'text'} row per blank-line paragraph)."""
    if path.is_dir():
        return _read_datasets_folder(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = []
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise BadInput(f"{path}:{n} is not valid JSON ({exc.msg})",
                                       expected="one JSON object per line") from None
            return rows
        if suffix == ".json":
            data = json.loads(path.read_text())
            return data if isinstance(data, list) else data.get("data", data.get("train", []))
        if suffix in (".csv", ".tsv"):
            with path.open(newline="") as fh:
                return list(csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ","))
        if suffix in (".txt", ".md"):
            return [{"text": " ".join(p.split())} for p in path.read_text().split("\n\n") if p.strip()]
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text", expected="a UTF-8 JSONL/CSV/TXT file") from None
    raise BadInput(f"unsupported data file {path.name}", expected="a .jsonl, .json, .csv, .tsv or .txt file, "
                   "or a folder written by datasets.save_to_disk")


def _read_datasets_folder(path: Path) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        raise BadInput("a datasets folder needs the `datasets` package",
                       expected="`pip install 'qkv[train]'`") from None
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise BadInput(f"{path} is not a datasets folder ({exc})",
                       expected="a folder written by save_to_disk") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"] if "train" in ds else next(iter(ds.values()))
    return [dict(r) for r in ds]


def required_columns(data: DataSection) -> list[tuple[str, str]]:
    """(config key, column name) pairs the chosen format reads."""
    if data.format == "text":
        return [("text_column", data.text_column)]
    if data.format == "prompt_response":
        return [("prompt_column", data.prompt_column), ("response_column", data.response_column)]
    return [("messages_column", data.messages_column)]


def check_rows(rows: list[dict[str, Any]], data: DataSection, source: str, key: str) -> None:
    """Empty data or a missing column → BadInput naming the config key and the columns that exist."""
    if not rows:
        raise BadInput(f"data.{key} ({source}) has no rows", expected="at least one example")
    present = list(rows[0].keys())
    for config_key, column in required_columns(data):
        if column not in rows[0]:
            near = closest(column, present, limit=3)
            fix = f"set data.{config_key}: {near[0]}" if near else f"set data.{config_key} to one of the columns"
            raise BadInput(f"data.{key} ({source}) has no column '{column}' (data.{config_key}; "
                           f"format {data.format}); {fix}", expected=f"a column among {', '.join(map(str, present))}")
    if data.format == "chat" and not isinstance(rows[0][data.messages_column], list):
        raise BadInput(f"data.{data.messages_column} must hold a list of {{role, content}} messages",
                       expected='[{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]')


@dataclass
class SplitRows:
    """Checked rows of the training and held-out splits."""

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    train_source: str
    eval_source: str


def load_split_rows(data: DataSection, base_dir: Path | None = None, seed: int = 0) -> SplitRows:
    """Read and check both splits (no tokenizer needed): what preflight runs before any model loads."""
    train_path = resolve_data_path(data.train, base_dir)
    train = read_rows(train_path)
    check_rows(train, data, str(train_path), "train")
    if data.max_samples:
        train = train[: data.max_samples]
    if data.eval:
        eval_path = resolve_data_path(data.eval, base_dir)
        held = read_rows(eval_path)
        check_rows(held, data, str(eval_path), "eval")
        held = held[: data.max_eval_samples] if data.max_eval_samples else held
        return SplitRows(train, held, str(train_path), str(eval_path))
    import random

    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(len(train) * data.eval_fraction))
    if len(train) - n_eval < 1:
        raise BadInput(f"data.train has {len(train)} row(s): too few to hold out an eval split",
                       expected="more rows, or a separate data.eval file")
    held_idx = set(order[:n_eval][: data.max_eval_samples or n_eval])
    return SplitRows([r for i, r in enumerate(train) if i not in held_idx],
                     [r for i, r in enumerate(train) if i in held_idx], str(train_path), f"{train_path} (held out)")


def heldout_text(rows: list[dict[str, Any]], data: DataSection) -> str:
    """The held-out split as one text, for perplexity (prompt + response joined for pair data)."""
    if data.format == "text":
        return "\n\n".join(str(r[data.text_column]) for r in rows)
    if data.format == "prompt_response":
        return "\n\n".join(f"{r[data.prompt_column]}\n{r[data.response_column]}" for r in rows)
    return "\n\n".join("\n".join(str(m.get("content", "")) for m in r[data.messages_column]) for r in rows)


def tokenize_rows(rows: list[dict[str, Any]], data: DataSection, tokenizer) -> list[dict[str, list[int]]]:
    """Each row → {'input_ids', 'labels'} ending in EOS; labels are IGNORE on prompt / non-assistant tokens."""
    eos = tokenizer.eos_token_id
    out = []
    for row in rows:
        if data.format == "text":
            ids = tokenizer(str(row[data.text_column]))["input_ids"] + [eos]
            labels = list(ids)
        elif data.format == "prompt_response":
            prompt = tokenizer(str(row[data.prompt_column]) + "\n")["input_ids"]
            answer = tokenizer(str(row[data.response_column]), add_special_tokens=False)["input_ids"] + [eos]
            ids, labels = prompt + answer, [IGNORE] * len(prompt) + answer
        else:
            ids, labels = _chat_tokens(row[data.messages_column], tokenizer)
        out.append({"input_ids": ids, "labels": labels})
    return out


def _chat_tokens(messages: list[dict[str, str]], tokenizer) -> tuple[list[int], list[int]]:
    """Chat template ids; loss only on assistant turns, found as the growth of the templated prefix."""
    def ids_of(msgs, gen_prompt=False):
        result = tokenizer.apply_chat_template(msgs, tokenize=True, add_generation_prompt=gen_prompt)
        return list(result["input_ids"] if isinstance(result, dict) or hasattr(result, "keys") else result)

    ids = ids_of(messages)
    labels = [IGNORE] * len(ids)
    for i, msg in enumerate(messages):
        if msg.get("role") == "assistant":
            start = len(ids_of(messages[:i], gen_prompt=True)) if i else 0
            end = len(ids_of(messages[: i + 1]))
            labels[start:end] = ids[start:end]
    return ids, labels


def pack(examples: list[dict[str, list[int]]], seq_len: int) -> list[dict[str, list[int]]]:
    """Concatenate examples and cut seq_len blocks; the last, shorter block is kept (padded later)."""
    ids: list[int] = []
    labels: list[int] = []
    for ex in examples:
        ids += ex["input_ids"]
        labels += ex["labels"]
    blocks = []
    for start in range(0, len(ids), seq_len):
        block_labels = labels[start: start + seq_len]
        if any(label != IGNORE for label in block_labels[1:]):  # a block with nothing to learn is waste
            blocks.append({"input_ids": ids[start: start + seq_len], "labels": block_labels})
    return blocks


def truncate(examples: list[dict[str, list[int]]], seq_len: int) -> list[dict[str, list[int]]]:
    """Unpacked rows cut to seq_len (rows whose labels are all IGNORE after the cut are dropped)."""
    out = []
    for ex in examples:
        labels = ex["labels"][:seq_len]
        if any(label != IGNORE for label in labels[1:]):
            out.append({"input_ids": ex["input_ids"][:seq_len], "labels": labels})
    return out


class ListDataset:
    """A torch-style map dataset over a list of feature dicts (what Trainer's sampler indexes)."""

    def __init__(self, rows: list[dict[str, list[int]]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


class PadCollator:
    """Pads a batch to its longest row (not to seq_len): input_ids with pad, labels with IGNORE."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def build_datasets(rows: SplitRows, data: DataSection, tokenizer, seq_len: int, packing: bool):
    """(train dataset, eval dataset, stats) ready for transformers.Trainer."""
    train_tok = tokenize_rows(rows.train, data, tokenizer)
    eval_tok = tokenize_rows(rows.eval, data, tokenizer)
    shape = (lambda ex: pack(ex, seq_len)) if packing else (lambda ex: truncate(ex, seq_len))
    train, held = shape(train_tok), shape(eval_tok)
    if not train:
        raise BadInput("no training example has a token to learn from after tokenisation",
                       expected="responses that fit within train.seq_len")
    stats = {
        "train_rows": len(rows.train), "eval_rows": len(rows.eval),
        "train_tokens": sum(len(e["input_ids"]) for e in train_tok),
        "train_sequences": len(train), "eval_sequences": len(held),
    }
    return ListDataset(train), ListDataset(held), stats
