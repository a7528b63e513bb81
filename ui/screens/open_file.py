"""Open any graph file: a directory tree showing folders and .json files, or type a path."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label, Static


class GraphTree(DirectoryTree):
    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [p for p in paths if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".json")]


class OpenFileScreen(ModalScreen[Path | None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, start: Path | None = None) -> None:
        super().__init__()
        self.start = start or Path.cwd()

    def compose(self) -> ComposeResult:
        with Vertical(id="open-file"):
            yield Label(Text("Open a graph: pick a .json file, or type its path and press enter", "bold"))
            yield Input(placeholder="path/to/graph.json", id="open-path")
            yield GraphTree(self.start, id="open-tree")
            yield Static("", id="open-reason")

    def on_mount(self) -> None:
        self.query_one("#open-tree", GraphTree).focus()

    @on(DirectoryTree.FileSelected)
    def _file(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(Path(event.path))

    @on(Input.Submitted, "#open-path")
    def _typed(self, event: Input.Submitted) -> None:
        path = Path(event.value).expanduser()
        if not path.is_file():
            self.query_one("#open-reason", Static).update(Text(f"✗ no file {str(path)!r}", "bold red"))
            return
        self.dismiss(path)
