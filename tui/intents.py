"""What a chat line asks for, decided by rules (no model): a slash command, a new design task, a change
to the current design, a question about the report, an answer to the graph's question, or input that
gets a helpful reply instead of a run (empty, an oversized paste, nonsense)."""

from __future__ import annotations

import re
from functools import cache
from typing import Literal

from pydantic import BaseModel

MAX_CHARS = 4_000  # a task or a follow-up fits in a few sentences; corpora go through /corpus PATH

IntentKind = Literal["empty", "too_long", "nonsense", "no_report", "command", "task", "change", "question", "answer"]

COMMANDS: dict[str, str] = {
    "/help": "list keys and commands",
    "/new": "start a new design session",
    "/sessions": "list and resume saved sessions",
    "/export [md|json|html|all]": "write the report (default: all three) into the session's run folder",
    "/trace": "trace the recommended training step on fake tensors (exact peak; a cancellable job)",
    "/train [CONFIG]": "run the trainer on the report's training config (or CONFIG) and plot its loss",
    "/follow RUN_DIR": "plot the loss of a run folder's metrics.jsonl, live",
    "/cancel": "cancel the running job or design",
    "/llm none|local|URL": "switch the language model that words replies",
    "/report": "show the report tab",
}

# Words that show a line is about designing/training/serving a model (a line with none of these, no
# catalog name and no size/memory figure is treated as nonsense rather than sent to the graph).
_DESIGN_WORDS_TEXT = """
model models llm transformer fine-tune finetune fine-tuning finetuning tune train training pretrain pre-train
pretraining lora qlora adapter peft summarisation summarization summarise summarize translation translate
classification classify classifier qa question answering chat chatbot assistant code coding generation
generate deploy deployment serve serving inference latency throughput gpu gpus vram memory tokens token
context window tokenizer documents docs contracts legal medical clinical finance financial dataset corpus data
encoder decoder embedding embeddings retrieval rag sentiment ner extraction parameters params billion batch
sequence seq quantization quantize quantise instruct instruction agent reasoning math multilingual english
german french spanish chinese japanese arabic hindi a100 h100 h200 rtx consumer laptop mac cpu
"""
DESIGN_WORDS = frozenset(_DESIGN_WORDS_TEXT.split())
CHANGE_START = re.compile(
    r"^\s*(what if|what about|how about|suppose|instead|use |using |switch|try |make it|let'?s|change|"
    r"with (\d+|two|three|four|eight|a |an )|i (have|had|got|only have|now have)|i've got|my |actually|now |"
    r"and if|go with|target |set |double|halve|increase|decrease|reduce|more |fewer |less )", re.I)
QUESTION_START = re.compile(
    r"^\s*(what|which|why|how|is|are|does|do|did|can|could|should|will|would|where|when|who|explain|show|"
    r"tell|list|give)\b", re.I)
# "what is the peak VRAM?" before any design: a question about a report that does not exist yet.
REPORT_QUESTION = re.compile(r"^\s*(what is|what's|what are|which|why|how much|how many|explain|show)\b", re.I)
TASK_VERB = re.compile(r"\b(fine-?tun\w*|train\w*|pre-?train\w*|serv\w*|deploy\w*|build\w*|classif\w*|summar\w*|"
                       r"translat\w*|design\w*|run|fit)\b", re.I)
FIGURE = re.compile(r"\b\d+(\.\d+)?\s*(b|m|k|gb|gib|tb|x|×)\b|\b\d+\s*(tokens?|gpus?|layers?)\b", re.I)


class Intent(BaseModel):
    kind: IntentKind
    text: str
    command: str | None = None
    arg: str = ""


@cache
def catalog_names() -> frozenset[str]:
    """Model and GPU names and aliases from the catalogs (lower case), for spotting entities in chat."""
    from qkv.tools.catalog.gpus import list_gpus
    from qkv.tools.catalog.models import list_models

    names: set[str] = set()
    for m in list_models():
        names.update(n.lower() for n in [m.name, *m.aliases, m.family])
    for g in list_gpus():
        names.update(n.lower() for n in [g.name, *g.aliases])
    return frozenset(n for n in names if len(n) >= 2)


def mentions_entity(text: str) -> bool:
    """A catalog model/GPU name, or a size/memory/length figure ("7B", "24 GB", "16k tokens", "2x")."""
    low = text.lower()
    if FIGURE.search(low):
        return True
    words = set(re.findall(r"[a-z0-9][a-z0-9.\-]*", low))
    names = catalog_names()
    return bool(words & names) or any(n in low for n in names if " " in n or "-" in n)


def has_design_signal(text: str) -> bool:
    words = set(re.findall(r"[a-z0-9][a-z0-9\-]*", text.lower()))
    return bool(words & DESIGN_WORDS) or mentions_entity(text)


def classify(text: str, *, has_report: bool, awaiting_answer: bool = False) -> Intent:
    """Route one chat line. Pure function of the text and the conversation's state."""
    stripped = text.strip()
    if not stripped:
        return Intent(kind="empty", text="")
    if len(stripped) > MAX_CHARS:
        return Intent(kind="too_long", text=stripped)
    if stripped.startswith("/"):
        head, _, arg = stripped.partition(" ")
        return Intent(kind="command", text=stripped, command=head.lower(), arg=arg.strip())
    if awaiting_answer:
        return Intent(kind="answer", text=stripped)
    letters = sum(ch.isalpha() for ch in stripped)
    if letters < 2 and not mentions_entity(stripped):
        return Intent(kind="nonsense", text=stripped)
    if not has_report:
        if REPORT_QUESTION.search(stripped) and not TASK_VERB.search(stripped):
            return Intent(kind="no_report", text=stripped)
        return Intent(kind="task" if has_design_signal(stripped) else "nonsense", text=stripped)
    if CHANGE_START.search(stripped) or re.search(r"\binstead\b", stripped, re.I):
        return Intent(kind="change", text=stripped)
    if QUESTION_START.search(stripped) or stripped.endswith("?"):
        return Intent(kind="question", text=stripped)
    if mentions_entity(stripped):
        return Intent(kind="change", text=stripped)
    if has_design_signal(stripped):
        return Intent(kind="question", text=stripped)
    return Intent(kind="nonsense", text=stripped)


EXAMPLES = (
    "fine-tune a 7B model for legal summarisation on one 24 GB GPU",
    "classify support tickets with a small encoder on a T4",
    "serve llama-3.1-8b for chat on an L4 with 8k context",
)


def help_for(intent: Intent, *, has_report: bool) -> str:
    """The helpful reply to input that is not run: say what was wrong and what works."""
    if intent.kind == "empty":
        return ("Type a task to design (e.g. “" + EXAMPLES[0] + "”), a follow-up such as “what if I had two "
                "A100s?”, or /help for keys and commands.")
    if intent.kind == "too_long":
        return (f"That paste is {len(intent.text):,} characters; a task or follow-up is limited to "
                f"{MAX_CHARS:,}. Describe the task in a few sentences, and point me at a corpus sample file "
                "for the tokenizer audit instead of pasting it (mention its path in the task).")
    if intent.kind == "no_report":
        return ("There is no report yet to answer that from — I only quote numbers a design computed. Describe "
                "the task first, for example:\n" + "\n".join(f"• {e}" for e in EXAMPLES))
    if intent.kind == "nonsense":
        if has_report:
            return ("I did not recognise a change or a question in that. Try “what if I had two A100s?”, "
                    "“use Mistral instead”, “my documents are 16k tokens”, or ask “what is the peak VRAM?”.")
        return ("I did not recognise a design task in that. Say what the model should do and on what "
                "hardware, for example:\n" + "\n".join(f"• {e}" for e in EXAMPLES))
    return ""


def commands_help() -> str:
    return "\n".join(f"{cmd:<28} {what}" for cmd, what in COMMANDS.items())
