from __future__ import annotations

import threading

import pytest

from nodegraph.context import CancelToken, Roots
from nodegraph.errors import Cancelled, GraphError, NodeExecutionError
from nodegraph.events import NodeCached, NodeFailed, NodeFinished, NodeProgress, NodeStarted, RunFinished, RunStarted
from nodegraph.executor import Executor
from nodegraph.graph import graph_from_data

from .nodes_for_tests import CALLS, make_registry


def graph(nodes: dict) -> object:
    return graph_from_data({"format": "nodegraph/1", "nodes": nodes})


def L(node_id: str, output: str) -> dict:
    return {"from": [node_id, output]}


@pytest.fixture
def executor(roots: Roots) -> Executor:
    CALLS.clear()
    return Executor(make_registry(), roots)


def diamond():
    # 1 ──▶ 2 ──▶ 4 (sink)
    #  └──▶ 3 ──┘         and 5 (sink) reads only 3
    return graph(
        {
            "1": {"type": "Const", "inputs": {"value": 3}},
            "2": {"type": "Add", "inputs": {"a": L("1", "int"), "b": 10}},
            "3": {"type": "Add", "inputs": {"a": L("1", "int"), "b": 100}},
            "4": {"type": "Sink", "inputs": {"x": L("2", "int")}},
            "5": {"type": "Sink", "inputs": {"x": L("3", "int")}},
        }
    )


def test_runs_output_nodes_and_returns_their_values(executor):
    result = executor.run(diamond())
    assert result.status == "ok"
    assert result.outputs["4"]["float"] == 13
    assert result.outputs["5"]["float"] == 103
    assert sorted(result.executed) == ["1", "2", "3", "4", "5"]


def test_unchanged_rerun_recomputes_nothing(executor):
    g = diamond()
    executor.run(g)
    CALLS.clear()
    again = executor.run(g)
    assert CALLS == []
    assert again.executed == [] and sorted(again.cached) == ["1", "2", "3", "4", "5"]
    assert again.outputs["4"]["float"] == 13


def test_changing_one_input_recomputes_exactly_downstream(executor):
    g = diamond()
    executor.run(g)
    g.nodes["2"].inputs["b"] = 20
    again = executor.run(g)
    assert sorted(again.executed) == ["2", "4"]
    assert sorted(again.cached) == ["1", "3", "5"]
    assert again.outputs["4"]["float"] == 23
    assert executor.execution_counts == {"1": 1, "2": 2, "3": 1, "4": 2, "5": 1}


def test_signatures_depend_on_content_not_ids(executor):
    a = graph({"1": {"type": "Const", "inputs": {"value": 5}}, "2": {"type": "Sink", "inputs": {"x": L("1", "int")}}})
    b = graph({"x": {"type": "Const", "inputs": {"value": 5}}, "y": {"type": "Sink", "inputs": {"x": L("x", "int")}}})
    first = executor.run(a)
    second = executor.run(b)
    assert second.executed == [] and first.signatures["2"] == second.signatures["y"]


def test_outputs_of_any_node_after_a_run(executor):
    result = executor.run(diamond())
    assert executor.outputs_of(result, "2") == {"int": 13}  # not a target: read from the cache
    assert executor.outputs_of(result, "4") == {"float": 13}
    executor.cache.clear()
    assert executor.outputs_of(result, "2") is None and executor.outputs_of(result, "4") == {"float": 13}


def test_until_runs_only_what_the_node_needs(executor):
    result = executor.run(diamond(), until="3")
    assert sorted(result.executed) == ["1", "3"]
    assert result.outputs == {"3": {"int": 103}}
    # `until` wins over `targets`, for the plan and for the outputs returned alike
    both = executor.run(diamond(), targets=["4"], until="2")
    assert both.plan == ["1", "2"] and both.outputs == {"2": {"int": 13}}


def test_non_deterministic_nodes_rerun_and_invalidate_downstream(executor):
    g = graph({"1": {"type": "Random"}, "2": {"type": "Sink", "inputs": {"x": L("1", "int")}}})
    executor.run(g)
    CALLS.clear()
    executor.run(g)
    assert CALLS == ["Random", "Sink"]


def test_failing_node_names_node_type_and_inputs_and_keeps_finished_work(executor):
    g = graph(
        {
            "1": {"type": "Const", "inputs": {"value": -4}},
            "2": {"type": "Fail", "inputs": {"x": L("0", "int")}},
            "3": {"type": "Sink", "inputs": {"x": L("2", "int")}},
            "0": {"type": "Add", "inputs": {"a": L("1", "int"), "b": 0}},
        }
    )
    seen = []
    with pytest.raises(NodeExecutionError) as info:
        executor.run(g, observers=[seen.append])
    message = str(info.value)
    assert "'2'" in message and "Fail" in message and "x must not be negative" in message and "x=-4" in message
    assert any(isinstance(e, NodeFailed) and e.node_id == "2" for e in seen)
    assert isinstance(seen[-1], RunFinished) and seen[-1].status == "failed"
    # fix the input: the run resumes, node 1 comes from the cache
    g.nodes["0"].inputs["b"] = 8
    result = executor.run(g)
    assert result.outputs["3"]["float"] == 4 and result.cached == ["1"]


def test_events_in_order(executor):
    seen = []
    executor.run(graph({"1": {"type": "Const", "inputs": {"value": 1}}, "2": {"type": "Slow", "inputs": {"x": L("1", "int"), "steps": 3}}}), observers=[seen.append])
    kinds = [type(e).__name__ for e in seen]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    progress = [e for e in seen if isinstance(e, NodeProgress)]
    assert [(p.step, p.total) for p in progress] == [(1, 3), (2, 3), (3, 3)]
    finished = [e for e in seen if isinstance(e, NodeFinished)]
    assert all(f.seconds >= 0 and f.peak_memory_bytes > 0 for f in finished)
    assert kinds == ["RunStarted", "NodeStarted", "NodeFinished", "NodeStarted"] + ["NodeProgress"] * 3 + ["NodeFinished", "RunFinished"]
    seen.clear()
    executor.run(graph({"1": {"type": "Const", "inputs": {"value": 1}}, "2": {"type": "Slow", "inputs": {"x": L("1", "int"), "steps": 3}}}), observers=[seen.append])
    assert [type(e) for e in seen] == [RunStarted, NodeCached, NodeCached, RunFinished]


def test_cancel_inside_a_long_node_stops_promptly_and_cache_stays_consistent(executor):
    g = graph({"1": {"type": "Const", "inputs": {"value": 7}}, "2": {"type": "Slow", "inputs": {"x": L("1", "int"), "steps": 500}}})
    cancel = CancelToken()

    def cancel_at_step_5(event):
        if isinstance(event, NodeProgress) and event.step == 5:
            cancel.cancel()

    with pytest.raises(Cancelled):
        executor.run(g, observers=[cancel_at_step_5], cancel=cancel)
    assert "Slow" not in CALLS  # it stopped inside, never finished
    CALLS.clear()
    g.nodes["2"].inputs["steps"] = 2
    result = executor.run(g)
    assert result.executed == ["2"] and result.cached == ["1"]


def test_cancel_from_another_thread_between_nodes(executor):
    g = graph({str(i): {"type": "Slow", "inputs": {"x": i, "steps": 5}} for i in range(1, 30)})
    cancel = CancelToken()
    timer = threading.Timer(0.2, cancel.cancel)
    timer.start()
    result = executor.run(g, targets=list(g.nodes), cancel=cancel, raise_errors=False)
    timer.join()
    assert result.status == "cancelled"
    assert 0 < len(result.executed) < 29


def test_lru_evicts_under_the_byte_budget(roots):
    executor = Executor(make_registry(), roots, memory_budget_bytes=4000)
    g = graph({str(i): {"type": "Blob", "inputs": {"size": 40 + i}} for i in range(10)})
    executor.run(g, targets=list(g.nodes))
    assert executor.cache.used_bytes <= 4000
    assert executor.cache.evictions > 0
    assert len(executor.cache) < 10


def test_disk_cache_survives_a_new_executor(roots):
    CALLS.clear()
    g = graph({"1": {"type": "Blob", "inputs": {"size": 5}}})
    Executor(make_registry(), roots).run(g, targets=["1"])
    assert CALLS == ["Blob"]
    CALLS.clear()
    seen = []
    result = Executor(make_registry(), roots).run(g, targets=["1"], observers=[seen.append])
    assert CALLS == [] and result.outputs["1"]["json"] == [0, 1, 2, 3, 4]
    assert any(isinstance(e, NodeCached) and e.source == "disk" for e in seen)


def test_code_version_is_in_the_key(roots):
    first = Executor(make_registry(), roots)
    g = graph({"1": {"type": "Const", "inputs": {"value": 2}}})
    sig = first.run(g, targets=["1"]).signatures["1"]
    registry = make_registry()
    registry.get("Const").version = "2"
    registry.get("Const")._code_version = None
    assert Executor(registry, roots).run(g, targets=["1"]).signatures["1"] != sig


def test_invalid_graph_is_rejected_before_anything_runs(executor):
    g = graph({"1": {"type": "Const", "inputs": {"value": 1}}, "2": {"type": "Scale", "inputs": {"x": L("1", "int"), "factor": 99}}})
    with pytest.raises(GraphError):
        executor.run(g, targets=["2"])
    assert CALLS == []


def test_multiple_outputs_by_name(executor):
    g = graph(
        {
            "1": {"type": "Split", "inputs": {"x": 7}},
            "2": {"type": "Sink", "inputs": {"x": L("1", "high")}},
        }
    )
    assert executor.run(g).outputs["2"]["float"] == 4


def test_int_links_into_float_but_not_image(executor):
    from nodegraph.validate import validate

    ok = graph({"1": {"type": "Const"}, "2": {"type": "Sink", "inputs": {"x": L("1", "int")}}})
    assert validate(ok, executor.registry) == []
    bad = graph({"1": {"type": "Const"}, "2": {"type": "TakesImage", "inputs": {"image": L("1", "int")}}})
    [problem] = validate(bad, executor.registry)
    assert problem.code == "type_mismatch" and problem.expected == "IMAGE" and problem.got == "INT"


def test_node_started_reports_plan_position(executor):
    seen = []
    executor.run(diamond(), observers=[seen.append])
    started = [e for e in seen if isinstance(e, NodeStarted)]
    assert [e.index for e in started] == list(range(5)) and all(e.total == 5 for e in started)


def test_a_file_replaced_on_disk_runs_its_reader_again_under_the_same_name(executor, roots):
    import os

    note = roots.inputs[0] / "notes.txt"
    note.write_text("first")
    g = graph({"1": {"type": "ReadText", "inputs": {"path": "notes.txt"}}})
    assert executor.run(g, targets=["1"]).outputs["1"]["string"] == "first"
    again = executor.run(g, targets=["1"])
    assert again.cached == ["1"] and CALLS.count("ReadText") == 1  # unchanged file: cached
    note.write_text("second, longer")
    os.utime(note, ns=(note.stat().st_atime_ns, note.stat().st_mtime_ns + 10**9))
    changed = executor.run(g, targets=["1"])
    assert changed.executed == ["1"] and changed.outputs["1"]["string"] == "second, longer"


def test_a_model_folder_retrained_under_the_same_name_misses_the_disk_cache(roots):
    folder = roots.models[0] / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    g = graph({"1": {"type": "CountModelFiles", "inputs": {"model": "tiny"}}})
    first = Executor(make_registry(), roots).run(g, targets=["1"])
    assert first.outputs["1"]["int"] == 1
    fresh = Executor(make_registry(), roots).run(g, targets=["1"])  # a new process: from disk
    assert fresh.cached == ["1"] and fresh.signatures["1"] == first.signatures["1"]
    (folder / "weights.safetensors").write_bytes(b"new weights")
    retrained = Executor(make_registry(), roots).run(g, targets=["1"])
    assert retrained.executed == ["1"] and retrained.outputs["1"]["int"] == 2
    # names that resolve to nothing (a Hub id) still key on the name alone, and the node reports them
    missing = Executor(make_registry(), roots).run(graph({"1": {"type": "CountModelFiles", "inputs": {"model": "org/absent"}}}),
                                                   targets=["1"], raise_errors=False)
    assert missing.status == "failed" and "org/absent" in str(missing.error)
