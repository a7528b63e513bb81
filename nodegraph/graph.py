"""The graph file format: one pydantic model is the single source of truth.

    {
      "format": "nodegraph/1",
      "meta": {"title": "..."},
      "nodes": {
        "1": {"type": "LoadImage", "inputs": {"path": "cat.png"}},
        "2": {"type": "Resize", "title": "smaller", "inputs": {"image": {"from": ["1", "image"]}, "width": 64}}
      }
    }

Inputs are stored by name, never by position, so a node that gains an input does not
break saved graphs. A link is ``{"from": [node_id, output_name]}``. Saving writes a fixed
key order and indentation, so loading then saving an unchanged graph is byte-identical
and lessons diff cleanly in git.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import GraphError, Problem

FORMAT = "nodegraph/1"
SUPPORTED_FORMATS = (FORMAT,)


class Link(BaseModel):
    """A connection from another node's named output."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
    source: tuple[str, str] = Field(alias="from", description="[node id, output name]")

    @property
    def node_id(self) -> str:
        return self.source[0]

    @property
    def output(self) -> str:
        return self.source[1]

    @field_validator("source", mode="before")
    @classmethod
    def _ids_as_text(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], int) and not isinstance(value[0], bool):
            return (str(value[0]), value[1])
        return value


LiteralValue = Union[None, bool, int, float, str, list[Any], dict[str, Any]]


class NodeUI(BaseModel):
    model_config = ConfigDict(extra="allow")
    pos: tuple[float, float] | None = None
    collapsed: bool | None = None


class GraphNode(BaseModel):
    """One node instance: its type, its inputs by name, and optional presentation."""

    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1)
    title: str | None = None
    inputs: dict[str, Union[Link, LiteralValue]] = Field(default_factory=dict)
    body: "Graph | None" = Field(
        default=None,
        description="the subgraph a loop node runs once per frame; its links may also name nodes of the enclosing graph",
    )
    ui: NodeUI | None = None
    notes: str | None = None

    @field_validator("inputs", mode="before")
    @classmethod
    def _links_first(cls, value: Any) -> Any:
        # A dict with the single key "from" is a link; any other value is a literal.
        if isinstance(value, dict):
            return {k: (Link.model_validate(v) if _looks_like_link(v) else v) for k, v in value.items()}
        return value

    def links(self) -> dict[str, Link]:
        return {name: value for name, value in self.inputs.items() if isinstance(value, Link)}

    def literals(self) -> dict[str, Any]:
        return {name: value for name, value in self.inputs.items() if not isinstance(value, Link)}


def _looks_like_link(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"from"}


class Graph(BaseModel):
    """A whole graph. `meta` is free-form (lessons keep title, step, parent, checks there)."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["nodegraph/1"] = FORMAT
    meta: dict[str, Any] = Field(default_factory=dict)
    nodes: dict[str, GraphNode] = Field(default_factory=dict)

    # -- editing helpers (used by the TUI and tests; every edit keeps the model valid JSON) --
    def new_id(self) -> str:
        numeric = [int(k) for k in self.nodes if k.isdigit()]
        return str(max(numeric, default=0) + 1)

    def consumers(self, node_id: str) -> list[tuple[str, str, Link]]:
        """(consumer id, input name, link) for every link that reads from `node_id`."""
        return [
            (other_id, name, link)
            for other_id, other in self.nodes.items()
            for name, link in other.links().items()
            if link.node_id == node_id
        ]

    def copy_deep(self) -> "Graph":
        return self.model_copy(deep=True)


GraphNode.model_rebuild()


def outer_references(body: Graph) -> set[str]:
    """Ids a body's links name that are not in the body: nodes of the enclosing graph."""
    found: set[str] = set()
    for entry in body.nodes.values():
        for value in entry.inputs.values():
            if type(value) is Link and value.source[0] not in body.nodes:
                found.add(value.source[0])
        if entry.body is not None:
            found |= {ref for ref in outer_references(entry.body) if ref not in body.nodes}
    return found


def graph_schema() -> dict[str, Any]:
    """JSON Schema of the graph format (printed by `nodegraph schema`)."""
    schema = Graph.model_json_schema(by_alias=True)
    if "$ref" in schema:  # the model is recursive (loop bodies): put Graph at the top level
        defs = schema.pop("$defs")
        name = schema.pop("$ref").rsplit("/", 1)[1]
        schema = {**defs[name], "$defs": defs}
    schema["$id"] = "https://nodegraph.dev/schema/nodegraph-1.json"
    schema["title"] = "nodegraph graph (format nodegraph/1)"
    return schema


# ---- reading and writing --------------------------------------------------------------


def parse_graph(text: str, source: str = "<graph>") -> Graph:
    """Parse JSON text into a Graph, or raise GraphError naming every problem found."""
    duplicates: list[str] = []

    def keep_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        data = json.loads(text, object_pairs_hook=keep_pairs)
    except json.JSONDecodeError as exc:
        raise GraphError(
            [Problem("malformed_json", f"{source}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")]
        ) from None
    except RecursionError:
        raise GraphError([Problem("malformed_json", f"{source}: JSON nested too deeply")]) from None
    if duplicates:
        node_ids = set(data.get("nodes", {})) if isinstance(data, dict) and isinstance(data.get("nodes"), dict) else set()
        raise GraphError(
            [
                Problem("duplicate_id", f"{source}: node id {key!r} is used more than once", node_id=key)
                if key in node_ids
                else Problem("duplicate_key", f"{source}: key {key!r} appears more than once in one object")
                for key in dict.fromkeys(duplicates)
            ]
        )
    return graph_from_data(data, source)


def graph_from_data(data: Any, source: str = "<graph>") -> Graph:
    if not isinstance(data, dict):
        raise GraphError([Problem("malformed_graph", f"{source}: a graph is a JSON object", expected="object", got=type(data).__name__)])
    version = data.get("format")
    if version not in SUPPORTED_FORMATS:
        raise GraphError(
            [
                Problem(
                    "unknown_format",
                    f"{source}: unknown graph format",
                    expected=" or ".join(repr(f) for f in SUPPORTED_FORMATS),
                    got=repr(version),
                )
            ]
        )
    try:
        return Graph.model_validate(data)
    except ValidationError as exc:
        raise GraphError([_problem_from_pydantic(err, source) for err in exc.errors()]) from None


def _problem_from_pydantic(err: Any, source: str) -> Problem:
    loc = [str(part) for part in err.get("loc", ())]
    node_id = None
    input_name = None
    if len(loc) >= 2 and loc[0] == "nodes":
        node_id = loc[1]
        if len(loc) >= 4 and loc[2] == "inputs":
            input_name = loc[3]
    got = err.get("input")
    got_text = repr(got)
    if len(got_text) > 60:
        got_text = got_text[:57] + "..."
    where = ".".join(loc) or "graph"
    return Problem("malformed_graph", f"{source}: {where}: {err.get('msg')}", node_id, None, input_name, None, got_text)


def load_graph(path: str | Path) -> Graph:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GraphError([Problem("unreadable", f"cannot read {str(path)!r}: {exc.strerror or exc}")]) from None
    return parse_graph(text, source=str(path))




def graph_to_data(graph: Graph, nested: bool = False) -> dict[str, Any]:
    """Plain data in canonical key order: format, meta, nodes; in each node type, title,
    inputs, body, ui, notes (absent ones omitted). Input and node order is kept as edited.
    A loop body is written as {"meta"?, "nodes"} (the format is the enclosing file's)."""
    nodes: dict[str, Any] = {}
    for node_id, node in graph.nodes.items():
        entry: dict[str, Any] = {"type": node.type}
        if node.title is not None:
            entry["title"] = node.title
        entry["inputs"] = {
            name: ({"from": [value.node_id, value.output]} if isinstance(value, Link) else value)
            for name, value in node.inputs.items()
        }
        if node.body is not None:
            entry["body"] = graph_to_data(node.body, nested=True)
        if node.ui is not None:
            ui = node.ui.model_dump(exclude_none=True)
            if ui.get("pos") is not None:
                ui["pos"] = list(ui["pos"])
            if ui:
                entry["ui"] = ui
        if node.notes is not None:
            entry["notes"] = node.notes
        nodes[node_id] = entry
    if nested:
        return ({"meta": graph.meta} if graph.meta else {}) | {"nodes": nodes}
    return {"format": graph.format, "meta": graph.meta, "nodes": nodes}


def dumps_graph(graph: Graph) -> str:
    return json.dumps(graph_to_data(graph), indent=2, ensure_ascii=False) + "\n"


def save_graph(graph: Graph, path: str | Path) -> Path:
    """Write atomically, so a crash never leaves a half-written graph."""
    from .context import atomic_write

    path = Path(path)
    with atomic_write(path, "w") as handle:
        handle.write(dumps_graph(graph))
    return path
