"""Random and mutated graphs through load + validate: every failure is a GraphError."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodegraph.context import Roots
from nodegraph.errors import GraphError
from nodegraph.graph import parse_graph
from nodegraph.registry import load_builtin_nodes
from nodegraph.validate import validate

from .nodes_for_tests import make_registry

EXAMPLE = (Path(__file__).resolve().parents[2] / "graphs" / "examples" / "image_basics.json").read_text()

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=6)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children, max_size=4)),
    max_leaves=12,
)


ROOTS = Roots(inputs=[Path("/tmp/ng-prop/in")], outputs=Path("/tmp/ng-prop/out"), models=[Path("/tmp/ng-prop/m")])


def load_and_validate(text: str) -> None:
    registry = make_registry()
    try:
        graph = parse_graph(text)
    except GraphError:
        return
    validate(graph, registry, ROOTS)
    validate(graph, load_builtin_nodes(), ROOTS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_random_json_values(value):
    load_and_validate(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text(text):
    load_and_validate(text)


def _mutate(data, path, new_value):
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new_value
    return data


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, prefix + (index,))


ALL_PATHS = [p for p in _paths(json.loads(EXAMPLE)) if p]
path_texts = st.one_of(st.text(max_size=12), st.sampled_from(["../x", "/etc/passwd", "a\x00b", "~/x", "a/../../b", "", ".", "//"]))


@settings(max_examples=200, deadline=None)
@given(path_texts)
def test_hostile_paths(path):
    data = json.loads(EXAMPLE)
    data["nodes"]["1"]["inputs"]["path"] = path
    data["nodes"]["6"]["inputs"]["filename_prefix"] = path
    load_and_validate(json.dumps(data))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(ALL_PATHS), json_values), min_size=1, max_size=4))
def test_mutated_example_graph(mutations):
    data = json.loads(EXAMPLE)
    for path, new_value in mutations:
        try:
            data = _mutate(data, path, new_value)
        except (KeyError, IndexError, TypeError):
            continue
    load_and_validate(json.dumps(data))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(EXAMPLE) - 1), st.integers(1, 20), st.text(max_size=5))
def test_corrupted_text(start, length, replacement):
    load_and_validate(EXAMPLE[:start] + replacement + EXAMPLE[start + length :])
