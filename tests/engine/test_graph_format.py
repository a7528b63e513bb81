from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from nodegraph.graph import Graph, dumps_graph, graph_schema, load_graph, parse_graph

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"


def test_shipped_graphs_round_trip_byte_identical():
    files = sorted(GRAPHS.rglob("*.json"))
    assert files, "no graphs shipped"
    for path in files:
        text = path.read_text()
        assert dumps_graph(load_graph(path)) == text, f"{path} is not in canonical form"


def test_links_and_literals_are_told_apart():
    g = parse_graph('{"format": "nodegraph/1", "nodes": {"1": {"type": "X", "inputs": {"a": {"from": ["2", "out"]}, "b": {"k": 1}, "c": [1, 2]}}}}')
    node = g.nodes["1"]
    assert list(node.links()) == ["a"] and node.links()["a"].source == ("2", "out")
    assert node.literals() == {"b": {"k": 1}, "c": [1, 2]}


def test_schema_describes_the_format():
    schema = graph_schema()
    assert schema["properties"]["format"]["const"] == "nodegraph/1"
    assert "nodes" in schema["properties"]
    json.dumps(schema)


ids = st.text(alphabet="0123456789abc", min_size=1, max_size=3)
literals = st.one_of(st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=5), st.booleans(), st.none())


@st.composite
def graphs(draw):
    node_ids = draw(st.lists(ids, min_size=0, max_size=6, unique=True))
    nodes = {}
    for node_id in node_ids:
        inputs = {}
        for name in draw(st.lists(st.sampled_from(["a", "b", "image", "value"]), unique=True, max_size=3)):
            if node_ids and draw(st.booleans()):
                inputs[name] = {"from": [draw(st.sampled_from(node_ids)), draw(st.sampled_from(["int", "image"]))]}
            else:
                inputs[name] = draw(literals)
        entry = {"type": draw(st.sampled_from(["Const", "Add", "Sink", "ResizeImage"]))}
        if draw(st.booleans()):
            entry["title"] = draw(st.text(max_size=8))
        entry["inputs"] = inputs
        if draw(st.booleans()):
            entry["ui"] = {"pos": [draw(st.integers(0, 500)), draw(st.integers(0, 500))]}
        nodes[node_id] = entry
    return {"format": "nodegraph/1", "meta": draw(st.dictionaries(st.text(max_size=4), literals, max_size=2)), "nodes": nodes}


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_save_load_save_is_byte_identical(data):
    first = dumps_graph(Graph.model_validate(data))
    assert dumps_graph(parse_graph(first)) == first
