"""The chat's input line with this session's history: Up/Down walk back and forth through what was typed
(oldest first on disk, newest first when walking), and what was being typed comes back at the end."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Input


class ChatInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history(-1)", "previous", show=False),
        Binding("down", "history(1)", "next", show=False),
    ]

    def __init__(self, **kwargs) -> None:
        # Focus must not select the line: a key typed in another pane is moved here, and selecting on focus
        # would make the next key replace it.
        super().__init__(select_on_focus=False, **kwargs)
        self.history: list[str] = []
        self._pos = 0  # == len(history): editing a new line
        self._draft = ""

    def set_history(self, lines: list[str]) -> None:
        self.history = [line for line in lines if line.strip()]
        self._pos = len(self.history)
        self._draft = ""

    def remember(self, line: str) -> None:
        if line.strip() and (not self.history or self.history[-1] != line):
            self.history.append(line)
        self._pos = len(self.history)
        self._draft = ""

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        if self._pos == len(self.history):
            self._draft = self.value
        self._pos = max(0, min(len(self.history), self._pos + step))
        self.value = self._draft if self._pos == len(self.history) else self.history[self._pos]
        self.cursor_position = len(self.value)
