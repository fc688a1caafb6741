"""The sessions screen: saved conversations, newest first; Enter resumes one, d deletes it."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from qkv.tui.sessions import SessionInfo


class SessionsScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "close")]

    def __init__(self, sessions: list[SessionInfo], current: str | None) -> None:
        super().__init__()
        self.sessions = sessions
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="sessions-body"):
            yield Static(f"{len(self.sessions)} saved session(s) — Enter resumes, Esc closes", classes="hint")
            options = []
            for s in self.sessions:
                mark = "▶ " if s.thread_id == self.current else "  "
                flags = (" · report" if s.has_report else "") + (" · waiting for your answer"
                                                                  if s.pending_question else "")
                options.append(Option(f"{mark}{s.when()}  {s.title[:60]}  ({s.messages} msgs{flags})",
                                      id=s.thread_id))
            yield OptionList(*options, id="sessions-list")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
