"""The run panel: what is running, a progress bar (overall nodes, or step i/n inside a
node that reports steps), and the files the last run wrote."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static


class RunPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Static("r runs the graph (ctrl+r from a value field), R runs up to the selected node.", id="run-status")
        yield ProgressBar(total=1, show_eta=False, id="run-progress")  # 0%: an idle bar never animates
        yield Static("", id="run-files")

    def status(self, text: str, style: str = "") -> None:
        self.query_one("#run-status", Static).update(Text(text, style))

    def progress(self, step: float, total: float | None) -> None:
        self.query_one("#run-progress", ProgressBar).update(total=total, progress=step)

    def files(self, paths: list[Path]) -> None:
        """The header and up to FILE_LINES lines under it (#run-files' max-height, in
        app.tcss): with more files, the last line says how many more the Log tab lists."""
        text = Text()
        if paths:
            text.append(f"wrote {len(paths)} file(s):", "bold")
            listed = paths if len(paths) <= FILE_LINES else paths[: FILE_LINES - 1]
            for path in listed:
                text.append(f"\n  {shown(path)}", "green")
            if len(listed) < len(paths):
                text.append(f"\n  … {len(paths) - len(listed)} more (see the Log tab)", "dim")
        self.query_one("#run-files", Static).update(text)


FILE_LINES = 3  # lines for paths under the header: #run-files has max-height 4


def shown(path: Path) -> str:
    """A path relative to the working directory when it is inside it (shorter, and the
    same on every machine), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
