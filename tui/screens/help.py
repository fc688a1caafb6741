"""The help screen: every key binding of the app and every chat command."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from qkv.tui.intents import COMMANDS, EXAMPLES
from qkv.tui.widgets.steps import DEFAULT_STEPS


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,f1", "dismiss", "close")]

    def __init__(self, bindings: list[tuple[str, str]]) -> None:
        super().__init__()
        self.key_rows = bindings

    def compose(self) -> ComposeResult:
        keys = Table(title="keys", show_edge=False, pad_edge=False, expand=True)
        keys.add_column("key", style="bold cyan", no_wrap=True)
        keys.add_column("action")
        for key, what in self.key_rows:
            keys.add_row(Text(key), Text(what))
        cmds = Table(title="chat commands", show_edge=False, pad_edge=False, expand=True)
        cmds.add_column("command", style="bold cyan", no_wrap=True)
        cmds.add_column("does")
        for cmd, what in COMMANDS.items():
            cmds.add_row(Text(cmd), Text(what))
        talk = Table(title="talking to qkv", show_edge=False, pad_edge=False, expand=True)
        talk.add_column("you type")
        talk.add_column("qkv does")
        talk.add_row(f"a task: “{EXAMPLES[0]}”", f"runs the {len(DEFAULT_STEPS)} steps and writes the report")
        talk.add_row("a change: “what if I had two A100s?”, “use Mistral instead”, “my documents are 16k tokens”",
                     "re-runs only the affected steps and lists what changed")
        talk.add_row("a question: “what is the peak VRAM?”", "answers with numbers quoted from the report")
        with VerticalScroll(id="help-body"):
            yield Static(keys)
            yield Static(cmds)
            yield Static(talk)
            yield Static("esc closes", classes="hint")
