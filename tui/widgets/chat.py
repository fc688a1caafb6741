"""The chat pane: one widget per message; assistant replies grow piece by piece while they stream."""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.widgets import Static

ROLE_LABEL = {"user": "you", "assistant": "qkv", "system": "·"}


class ChatMessage(Static):
    """A message. Markup is off: user text with [brackets] is shown as typed."""

    def __init__(self, role: str, text: str = "") -> None:
        super().__init__("", markup=False, classes=f"message {role}")
        self.role = role
        self.text = text
        self.border_title = ROLE_LABEL.get(role, role)
        self._refresh()

    def append(self, piece: str) -> None:
        self.text += piece
        self._refresh()

    def set_text(self, text: str) -> None:
        self.text = text
        self._refresh()

    def _refresh(self) -> None:
        self.update(self.text or "…")


class ChatView(VerticalScroll):
    """The conversation, newest at the bottom, kept scrolled to the end while replies stream."""

    can_focus = True  # Tab reaches the history; the arrow keys and PgUp/PgDn scroll it

    def on_mount(self) -> None:
        # Anchored: the view stays at the newest line while replies grow, however late the layout of the
        # last piece lands (a scroll_end issued before it would stop short); scrolling up releases it.
        self.anchor()

    def add(self, role: str, text: str = "") -> ChatMessage:
        msg = ChatMessage(role, text)
        self.mount(msg)
        self.anchor()  # a new message brings the view back to the end
        return msg

    def messages(self) -> list[ChatMessage]:
        return list(self.query(ChatMessage))
