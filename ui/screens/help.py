"""Every key, read from the BINDINGS of the main screen, its widgets and the app, so the
help can never disagree with what the keys do."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def key_table(sections: list[tuple[str, list[Binding]]]) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 2))
    table.add_column("key", style="bold cyan", no_wrap=True)
    table.add_column("what it does")
    for title, bindings in sections:
        table.add_row(Text(title, "bold underline"), "")
        for binding in bindings:
            if not binding.description:
                continue
            keys = ", ".join(_pretty(k) for k in binding.key.split(","))
            table.add_row(keys, binding.description)
        table.add_row("", "")
    return table


def _pretty(key: str) -> str:
    key = key.strip()
    return {"left_square_bracket": "[", "right_square_bracket": "]", "question_mark": "?", "plus": "+", "minus": "-"}.get(key, key)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss(None)", "Close help")]

    def __init__(self, sections: list[tuple[str, list[Binding]]]) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("nodegraph keys  (escape closes)", "bold"))
            yield Static(key_table(self.sections), id="help-keys")
