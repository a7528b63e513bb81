"""The graph as a list: every node in run order, one row each.

    ● #5 mix them/BlendImages ◀ #2.image #3.image

The mark on the left is the node's state in the last run: ○ pending, ◐ running, ● done,
↻ cached (reused from an earlier run), ✗ error. A ⚠ after the row means the graph does not
validate there yet; ✚ marks the nodes a lesson step adds. `[` and `]` jump along links."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from nodegraph.graph import Link

from ..document import Document

MARKS = {
    "pending": ("○", "dim"),
    "running": ("◐", "bold yellow"),
    "done": ("●", "green"),
    "cached": ("↻", "cyan"),
    "error": ("✗", "bold red"),
}


class GraphView(OptionList):
    """Rows are Options whose id is the node id."""

    BINDINGS = [
        Binding("left_square_bracket", "upstream", "Upstream", show=False),
        Binding("right_square_bracket", "downstream", "Downstream", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("j", "cursor_down", "Down", show=False),
    ]

    class Selected(Message):
        """The highlighted node changed."""

        def __init__(self, node_id: str | None) -> None:
            super().__init__()
            self.node_id = node_id

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.document: Document | None = None
        self.statuses: dict[str, str] = {}
        self.problem_nodes: set[str] = set()
        self.new_nodes: set[str] = set()
        self._order: list[str] = []

    # -- contents --------------------------------------------------------------------------
    @property
    def selected(self) -> str | None:
        option = self.highlighted_option
        return option.id if option is not None else None

    def show(self, document: Document, select: str | None = None) -> None:
        """Rebuild the rows from the document, keeping (or moving) the selection."""
        self.document = document
        keep = select if select is not None else self.selected
        self._order = document.run_order()
        self.set_options([Option(self._row(node_id), id=node_id) for node_id in self._order])
        if self._order:
            self.highlighted = self._order.index(keep) if keep in self._order else 0
        self.post_message(self.Selected(self.selected))

    def refresh_rows(self) -> None:
        """Redraw the marks only (statuses change many times during a run)."""
        for node_id in self._order:
            if self.document is not None and node_id in self.document.graph.nodes:
                self.replace_option_prompt(node_id, self._row(node_id))

    def _row(self, node_id: str) -> Text:
        assert self.document is not None
        entry = self.document.graph.nodes[node_id]
        mark, style = MARKS.get(self.statuses.get(node_id, "pending"), MARKS["pending"])
        row = Text()
        row.append(mark, style)
        row.append(f" #{node_id} ", "bold")
        if entry.title:
            row.append(entry.title, "italic")
            row.append("/")
        row.append(entry.type, "bold")
        for link in entry.links().values():
            row.append(f" ◀ #{link.node_id}.{link.output}", "magenta")
        if node_id in self.problem_nodes:
            row.append(" ⚠", "bold red")
        if node_id in self.new_nodes:
            row.append(" ✚new", "bold green")
        return row

    def select(self, node_id: str) -> None:
        if node_id in self._order:
            self.highlighted = self._order.index(node_id)

    # -- events and keys ---------------------------------------------------------------------
    def _on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self.post_message(self.Selected(event.option_id))

    def action_upstream(self) -> None:
        """Jump to the node feeding the selected node's first linked input."""
        node_id = self.selected
        if node_id is None or self.document is None:
            return
        sources = [v.node_id for v in self.document.graph.nodes[node_id].inputs.values() if isinstance(v, Link)]
        if sources:
            self.select(sources[0])
        else:
            self.app.bell()

    def action_downstream(self) -> None:
        """Jump to the first node that reads the selected node's outputs."""
        node_id = self.selected
        if node_id is None or self.document is None:
            return
        readers = [consumer for consumer, _, _ in self.document.graph.consumers(node_id)]
        if readers:
            self.select(min(readers, key=self._order.index))
        else:
            self.app.bell()
