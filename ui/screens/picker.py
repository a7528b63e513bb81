"""A modal fuzzy picker: type to filter, up/down to move, enter to choose, escape to leave.

Used for every "choose one of these" question (add node, connect, disconnect, lessons,
recent files); it returns the chosen value, or None."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.fuzzy import Matcher
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option


class PickerScreen(ModalScreen[Any]):
    BINDINGS = [
        Binding("escape", "dismiss(None)", "Close"),
        Binding("down", "move(1)", "Down", show=False),
        Binding("up", "move(-1)", "Up", show=False),
    ]

    def __init__(self, title: str, items: list[tuple[str | Text, Any]], placeholder: str = "type to filter") -> None:
        """items: (label, value) pairs; the label is what the filter matches."""
        super().__init__()
        self.title_text = title
        self.items = items
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label(Text(self.title_text, "bold"), id="picker-title")
            yield Input(placeholder=self.placeholder, id="picker-filter")
            yield OptionList(id="picker-options", markup=False)

    def on_mount(self) -> None:
        self._fill("")
        self.query_one("#picker-filter", Input).focus()

    def _fill(self, query: str) -> None:
        options = self.query_one("#picker-options", OptionList)
        if query:
            matcher = Matcher(query)
            scored = [(self._score(matcher, str(label)), index) for index, (label, _) in enumerate(self.items)]
            chosen = [(index, matcher.highlight(str(self.items[index][0]))) for score, index in sorted(scored, key=lambda s: -s[0]) if score > 0]
        else:
            chosen = [(index, label) for index, (label, _) in enumerate(self.items)]
        options.set_options([Option(label, id=str(index)) for index, label in chosen])
        if chosen:
            options.highlighted = 0

    @staticmethod
    def _score(matcher: Matcher, label: str) -> float:
        """A match in the first word (a node type, a lesson number) counts double."""
        words = label.split()
        head = matcher.match(words[0]) if words else 0.0
        return max(2 * head, matcher.match(label))

    @on(Input.Changed, "#picker-filter")
    def _filter(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#picker-filter")
    def _submit(self) -> None:
        options = self.query_one("#picker-options", OptionList)
        if options.highlighted is not None:
            self._choose(options.get_option_at_index(options.highlighted).id)

    @on(OptionList.OptionSelected, "#picker-options")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self._choose(event.option_id)

    def _choose(self, option_id: str | None) -> None:
        if option_id is not None:
            self.dismiss(self.items[int(option_id)][1])

    def action_move(self, delta: int) -> None:
        options = self.query_one("#picker-options", OptionList)
        if options.option_count:
            current = options.highlighted if options.highlighted is not None else -delta
            options.highlighted = max(0, min(options.option_count - 1, current + delta))
