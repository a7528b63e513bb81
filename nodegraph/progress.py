"""How `nodegraph run` shows a run: a rich progress display on a terminal, plain lines
when piped (one per node, easy to grep in CI logs), nothing with --quiet. All three are
event observers, like the TUI."""

from __future__ import annotations

import sys
from typing import Any

from .events import Event, NodeCached, NodeFailed, NodeFinished, NodeProgress, NodeStarted, RunFinished


def _inside_loop(event: Event) -> bool:
    """Body nodes of a frame loop ("7/w") run every frame: the loop's own progress (frame
    i/n) says enough; only their failures are shown."""
    return "/" in getattr(event, "node_id", "") and not isinstance(event, NodeFailed)


class QuietDisplay:
    def __enter__(self) -> "QuietDisplay":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __call__(self, event: Event) -> None:
        return None


class PlainDisplay(QuietDisplay):
    """One line per node on stderr; step progress at most every 10%."""

    def __init__(self, titles: dict[str, str]) -> None:
        self.titles = titles
        self._last_tenth: dict[str, int] = {}

    def _say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def __call__(self, event: Event) -> None:
        if _inside_loop(event):
            return
        if isinstance(event, NodeStarted):
            self._say(f"[{event.index + 1}/{event.total}] {self.titles.get(event.node_id, event.node_id)} ...")
        elif isinstance(event, NodeProgress) and event.total:
            tenth = int(10 * event.step / event.total)
            if tenth > self._last_tenth.get(event.node_id, -1):
                self._last_tenth[event.node_id] = tenth
                self._say(f"    {self.titles.get(event.node_id, event.node_id)}: step {event.step}/{event.total}")
        elif isinstance(event, NodeCached):
            self._say(f"    {self.titles.get(event.node_id, event.node_id)}: cached ({event.source})")
        elif isinstance(event, NodeFinished):
            self._say(f"    {self.titles.get(event.node_id, event.node_id)}: done in {event.seconds:.2f}s")
        elif isinstance(event, NodeFailed):
            self._say(f"    {self.titles.get(event.node_id, event.node_id)}: FAILED")
        elif isinstance(event, RunFinished):
            self._say(
                f"run {event.status} in {event.seconds:.2f}s: "
                f"{len(event.executed)} executed, {len(event.cached)} cached"
            )


class RichDisplay(QuietDisplay):
    """A live progress bar for the whole run and one for the node's steps."""

    def __init__(self, titles: dict[str, str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.titles = titles
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.run_task = self.progress.add_task("graph", total=None)
        self.step_task = self.progress.add_task("", total=None, visible=False)

    def __enter__(self) -> "RichDisplay":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        if _inside_loop(event):
            return
        title = self.titles.get(getattr(event, "node_id", ""), "")
        if isinstance(event, NodeStarted):
            self.progress.update(self.run_task, total=event.total, completed=event.index, description=f"[bold]{title}")
            self.progress.update(self.step_task, visible=False)
        elif isinstance(event, NodeProgress) and event.total:
            self.progress.update(
                self.step_task, total=event.total, completed=event.step, description=f"  steps {event.text}", visible=True
            )
        elif isinstance(event, NodeCached):
            self.progress.console.print(f"[dim]{title}: cached ({event.source})")
        elif isinstance(event, NodeFinished):
            self.progress.console.print(f"{title}: done in {event.seconds:.2f}s")
        elif isinstance(event, NodeFailed):
            self.progress.console.print(f"[red]{title}: failed")
        elif isinstance(event, RunFinished):
            self.progress.update(self.run_task, completed=self.progress.tasks[0].total or 0, description=f"run {event.status}")


def make_display(graph: Any, registry: Any, quiet: bool = False) -> QuietDisplay:
    titles = {
        node_id: f"#{node_id} {entry.title or entry.type}" for node_id, entry in graph.nodes.items()
    }
    if quiet:
        return QuietDisplay()
    if sys.stderr.isatty():
        return RichDisplay(titles)
    return PlainDisplay(titles)
