from __future__ import annotations

import pytest

from nodegraph.errors import GraphError
from nodegraph.graph import graph_from_data, parse_graph
from nodegraph.validate import validate

from .nodes_for_tests import make_registry


def graph(nodes):
    return graph_from_data({"format": "nodegraph/1", "nodes": nodes})


def codes(problems):
    return sorted(p.code for p in problems)


def test_all_errors_reported_at_once_with_node_type_input_expected_got():
    g = graph(
        {
            "1": {"type": "Const", "inputs": {"value": "three"}},
            "2": {"type": "Add", "inputs": {}},
            "3": {"type": "Scale", "inputs": {"x": 1.0, "factor": 11}},
            "4": {"type": "Pick", "inputs": {"mode": "third"}},
            "5": {"type": "Sink", "inputs": {"x": {"from": ["99", "int"]}}},
            "6": {"type": "Sink", "inputs": {"x": {"from": ["1", "nope"]}}},
            "7": {"type": "Cnst"},
            "8": {"type": "Add", "inputs": {"a": 1, "bee": 2}},
            "9": {"type": "TakesImage", "inputs": {"image": 3}},
        }
    )
    problems = validate(g, make_registry())
    assert codes(problems) == sorted(
        [
            "wrong_type",
            "missing_input",
            "out_of_range",
            "not_in_enum",
            "missing_source_node",
            "missing_output",
            "unknown_node_type",
            "unknown_input",
            "link_required",
        ]
    )
    by_code = {p.code: p for p in problems}
    assert by_code["wrong_type"].node_id == "1" and by_code["wrong_type"].node_type == "Const"
    assert by_code["wrong_type"].input == "value" and by_code["wrong_type"].expected == "integer"
    assert "'three'" in by_code["wrong_type"].got
    assert by_code["missing_input"].input == "a"
    assert by_code["out_of_range"].expected == "0.0 <= value <= 10.0" and by_code["out_of_range"].got.startswith("11")
    assert "first, second" in by_code["not_in_enum"].expected
    assert "Const" in by_code["unknown_node_type"].message  # close-name suggestion
    assert "b" in by_code["unknown_input"].message  # did you mean b?
    assert "int" in by_code["missing_output"].message  # lists the real outputs


def test_cycle_is_reported_with_the_cycle():
    g = graph(
        {
            "1": {"type": "Add", "inputs": {"a": {"from": ["3", "int"]}}},
            "2": {"type": "Add", "inputs": {"a": {"from": ["1", "int"]}}},
            "3": {"type": "Add", "inputs": {"a": {"from": ["2", "int"]}}},
        }
    )
    [problem] = validate(g, make_registry())
    assert problem.code == "cycle"
    for node_id in "123":
        assert node_id in problem.message


def test_bool_is_not_an_int_and_int_is_a_float():
    g = graph({"1": {"type": "Const", "inputs": {"value": True}}, "2": {"type": "Scale", "inputs": {"x": 3}}})
    [problem] = validate(g, make_registry())
    assert problem.node_id == "1" and problem.code == "wrong_type"


def test_malformed_json_names_line_and_column():
    with pytest.raises(GraphError) as info:
        parse_graph('{\n  "format": "nodegraph/1",\n  "nodes": {,}\n}')
    [problem] = info.value.problems
    assert problem.code == "malformed_json" and "line 3" in problem.message and "column" in problem.message


def test_unknown_format_version():
    with pytest.raises(GraphError) as info:
        parse_graph('{"format": "nodegraph/9", "nodes": {}}')
    assert info.value.problems[0].code == "unknown_format"
    assert "nodegraph/1" in info.value.problems[0].expected


def test_duplicate_node_ids():
    text = '{"format": "nodegraph/1", "nodes": {"1": {"type": "Const"}, "1": {"type": "Add"}}}'
    with pytest.raises(GraphError) as info:
        parse_graph(text)
    assert [p.code for p in info.value.problems] == ["duplicate_id"]
    assert info.value.problems[0].node_id == "1"


def test_structural_errors_name_the_node():
    with pytest.raises(GraphError) as info:
        graph_from_data({"format": "nodegraph/1", "nodes": {"4": {"inputs": {}}}})
    assert info.value.problems[0].node_id == "4"


def test_file_paths_must_stay_under_roots(roots, registry):
    g = graph(
        {
            "1": {"type": "LoadImage", "inputs": {"path": "../../etc/passwd"}},
            "2": {"type": "LoadImage", "inputs": {"path": "/etc/passwd"}},
            "3": {"type": "SaveImage", "inputs": {"image": {"from": ["4", "image"]}, "filename_prefix": "../escape"}},
            "4": {"type": "LoadImage", "inputs": {"path": "fine/inside.png"}},
        }
    )
    problems = validate(g, registry, roots)
    assert sorted((p.node_id, p.code) for p in problems) == [
        ("1", "path_outside_roots"),
        ("2", "path_outside_roots"),
        ("3", "path_outside_roots"),
    ]
