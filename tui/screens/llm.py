"""The LLM screen: which model words the replies (numbers never depend on it)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from qkv.tui.voice import VoiceConfig

CHOICES = {
    "none": VoiceConfig(llm="none"),
    "local-smollm2": VoiceConfig(llm="local"),
    "local-gemma": VoiceConfig(llm="local", model="gemma3-270m"),
}


class LLMScreen(ModalScreen[VoiceConfig | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "close")]

    def __init__(self, current: VoiceConfig) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="llm-body"):
            yield Static(f"now: {self.current.describe()}", classes="hint")
            yield OptionList(
                Option("none — templates over the report's facts (deterministic)", id="none"),
                Option("local — SmolLM2-135M-Instruct, bundled (llama.cpp, in-process)", id="local-smollm2"),
                Option("local — Gemma 3 270M, bundled (base model)", id="local-gemma"),
                id="llm-list")
            yield Input(placeholder="or an OpenAI-compatible URL, e.g. http://127.0.0.1:8080/v1 — Enter",
                        id="llm-url")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(CHOICES[event.option.id])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        url = event.value.strip()
        if VoiceConfig(llm=url).kind == "openai":
            self.dismiss(VoiceConfig(llm=url))
        else:
            self.notify("a URL starts with http:// or https://", severity="warning")
