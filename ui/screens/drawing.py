"""A read-only drawing of the graph: for each final node (one nothing reads from), the tree
of what it is made from, input by input. A node reached a second time is drawn once and
then referred to ("↑ above"), so a shared loader does not repeat its whole subtree."""

from __future__ import annotations

from rich.text import Text
from rich.tree import Tree
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..document import Document


def graph_drawing(document: Document) -> Tree:
    graph = document.graph
    read = {link.node_id for entry in graph.nodes.values() for link in entry.links().values()}
    finals = [node_id for node_id in document.run_order() if node_id not in read]
    root = Tree(Text(f"{len(graph.nodes)} nodes, {len(finals)} final", "bold"), guide_style="dim")
    drawn: set[str] = set()

    def grow(branch: Tree, node_id: str, via: str = "") -> None:
        label = Text(via, "dim") + Text(document.label(node_id), "bold" if not via else "")
        if node_id in drawn:
            branch.add(label + Text("  ↑ above", "dim"))
            return
        drawn.add(node_id)
        twig = branch.add(label)
        for name, link in graph.nodes[node_id].links().items():
            grow(twig, link.node_id, f"{name} ◀ .{link.output} ")

    for node_id in finals:
        grow(root, node_id)
    return root


class DrawingScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,D", "dismiss(None)", "Close the drawing")]

    def __init__(self, document: Document) -> None:
        super().__init__()
        self.document = document

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("the graph, from each final node back to its sources  (escape closes)", "bold"))
            yield Static(graph_drawing(self.document), id="drawing")
