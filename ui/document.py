"""The graph being edited: one Graph model, its file, and undo/redo.

Every edit goes through `Document.edit`, which snapshots the whole Graph first
(`model_copy(deep=True)`), so undo and redo are exact and cannot drift. Saving uses the
engine's `save_graph`, so parts of the JSON the learner did not touch stay byte-identical.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from nodegraph.errors import GraphError
from nodegraph.graph import Graph, GraphNode, Link, dumps_graph, load_graph, save_graph
from nodegraph.registry import Registry
from nodegraph.types import can_link
from nodegraph.validate import topological_order

UNDO_LIMIT = 200


class Document:
    def __init__(self, graph: Graph | None = None, path: Path | None = None) -> None:
        self.graph = graph if graph is not None else Graph()
        self.path = path
        self._undo: list[tuple[str, Graph]] = []
        self._redo: list[tuple[str, Graph]] = []
        self._saved_text = dumps_graph(self.graph) if path is not None else None

    @classmethod
    def open(cls, path: str | Path) -> "Document":
        path = Path(path)
        return cls(load_graph(path), path)

    # -- state ----------------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        if self._saved_text is None:
            return bool(self.graph.nodes)
        return dumps_graph(self.graph) != self._saved_text

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def run_order(self) -> list[str]:
        """Every node, dependencies first (file order if the file holds a cycle)."""
        try:
            return topological_order(self.graph, list(self.graph.nodes))
        except GraphError:
            return list(self.graph.nodes)

    # -- undo / redo -------------------------------------------------------------------------
    @contextmanager
    def edit(self, label: str) -> Iterator[Graph]:
        """Snapshot, then let the caller change `self.graph`; an exception rolls back."""
        before = self.graph.copy_deep()
        try:
            yield self.graph
        except BaseException:
            self.graph = before
            raise
        self._undo.append((label, before))
        del self._undo[:-UNDO_LIMIT]
        self._redo.clear()

    def undo(self) -> str | None:
        if not self._undo:
            return None
        label, before = self._undo.pop()
        self._redo.append((label, self.graph))
        self.graph = before
        return label

    def redo(self) -> str | None:
        if not self._redo:
            return None
        label, after = self._redo.pop()
        self._undo.append((label, self.graph))
        self.graph = after
        return label

    # -- edits ---------------------------------------------------------------------------------
    def set_literal(self, node_id: str, name: str, value: Any) -> None:
        with self.edit(f"set #{node_id}.{name}") as graph:
            graph.nodes[node_id].inputs[name] = value

    def connect(self, node_id: str, name: str, source_id: str, output: str) -> None:
        if source_id == node_id or source_id in self.downstream(node_id):
            raise ValueError(f"linking #{source_id} into #{node_id} would make a cycle")
        with self.edit(f"connect #{source_id}.{output} → #{node_id}.{name}") as graph:
            graph.nodes[node_id].inputs[name] = Link(source=(source_id, output))

    def disconnect(self, node_id: str, name: str, registry: Registry) -> None:
        with self.edit(f"disconnect #{node_id}.{name}") as graph:
            self._unlink(graph, node_id, name, registry)

    def add_node(self, type_name: str, registry: Registry, feed: tuple[str, str] | None = None) -> str:
        """Add a node (literal inputs set to their defaults, so the JSON says what it uses).
        With `feed=(node id, input)`, also link its first compatible output there: one undo step."""
        spec = registry.get(type_name)
        if spec is None:
            raise KeyError(type_name)
        label = f"add {type_name}" + (f" → #{feed[0]}.{feed[1]}" if feed else "")
        with self.edit(label) as graph:
            node_id = graph.new_id()
            inputs = {
                name: inp.default
                for name, inp in spec.inputs.items()
                if inp.has_default and inp.default is not None and inp.accepts_literal
            }
            graph.nodes[node_id] = GraphNode(type=type_name, inputs=inputs)
            if feed is not None:
                sources = [s for s in self.link_sources(feed[0], feed[1], registry) if s[0] == node_id]
                if sources:
                    graph.nodes[feed[0]].inputs[feed[1]] = Link(source=sources[0])
        return node_id

    def delete_node(self, node_id: str, registry: Registry) -> None:
        with self.edit(f"delete #{node_id}") as graph:
            for consumer, name, _ in graph.consumers(node_id):
                self._unlink(graph, consumer, name, registry)
            del graph.nodes[node_id]

    def rename(self, node_id: str, title: str | None) -> None:
        with self.edit(f"rename #{node_id}") as graph:
            graph.nodes[node_id].title = title or None

    @staticmethod
    def _unlink(graph: Graph, node_id: str, name: str, registry: Registry) -> None:
        """Drop a link; the input falls back to its default value, or is left unset."""
        entry = graph.nodes[node_id]
        spec = registry.get(entry.type)
        inp = spec.inputs.get(name) if spec else None
        if inp is not None and inp.has_default and inp.default is not None and inp.accepts_literal:
            entry.inputs[name] = inp.default
        else:
            entry.inputs.pop(name, None)

    # -- graph questions ------------------------------------------------------------------------
    def downstream(self, node_id: str) -> set[str]:
        """Every node that reads, directly or not, from `node_id`."""
        seen: set[str] = set()
        stack = [node_id]
        while stack:
            for consumer, _, _ in self.graph.consumers(stack.pop()):
                if consumer not in seen:
                    seen.add(consumer)
                    stack.append(consumer)
        return seen

    def link_sources(self, node_id: str, name: str, registry: Registry) -> list[tuple[str, str]]:
        """(node id, output) pairs that may feed `node_id`.`name`: type-compatible outputs of
        nodes that are not downstream of it, so a new link can never close a cycle."""
        spec = registry.get(self.graph.nodes[node_id].type)
        if spec is None or name not in spec.inputs:
            return []
        accepted = spec.inputs[name].types
        banned = self.downstream(node_id) | {node_id}
        sources = []
        for source_id in self.run_order():
            if source_id in banned:
                continue
            source_spec = registry.get(self.graph.nodes[source_id].type)
            if source_spec is None:
                continue
            for output in source_spec.outputs.values():
                if any(can_link(output.type, want) for want in accepted):
                    sources.append((source_id, output.name))
        return sources

    def label(self, node_id: str) -> str:
        entry = self.graph.nodes[node_id]
        return f"#{node_id} {entry.title}/{entry.type}" if entry.title else f"#{node_id} {entry.type}"

    # -- files ---------------------------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no file name yet: use save as")
        save_graph(self.graph, target)
        self.path = target
        self._saved_text = dumps_graph(self.graph)
        return target


def compatible_node_types(registry: Registry, accepted: tuple) -> list[str]:
    """Node types with at least one output that can feed an input accepting `accepted`."""
    return [
        spec.type_name
        for spec in registry
        if any(can_link(out.type, want) for out in spec.outputs.values() for want in accepted)
    ]
