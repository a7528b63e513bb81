"""Frame loops: a body run once per frame, feedback without cycles, schedules, streaming."""

from __future__ import annotations

import gc
import weakref

import pytest

from nodegraph import node
from nodegraph.context import CancelToken
from nodegraph.errors import Cancelled, GraphError, NodeExecutionError
from nodegraph.events import NodeProgress
from nodegraph.executor import Executor
from nodegraph.graph import dumps_graph, graph_from_data, parse_graph
from nodegraph.registry import Registry, load_builtin_nodes
from nodegraph.types import Frames, Image

CALLS: list[str] = []


class Box:
    """A value we can hold a weak reference to (to prove frames are not retained)."""

    def __init__(self, value: float) -> None:
        self.value = value


LIVE: "weakref.WeakSet[Box]" = weakref.WeakSet()


def make_registry() -> Registry:
    registry = Registry()
    registry.include(load_builtin_nodes(), categories=("loop",))
    with registry.loading("tests"):

        @node(name="Start")
        def start(value: float = 1.0) -> Image:
            return Box(value)

        @node(name="Step")
        def step(previous: Image, frame: int, add: float = 0.0, scale: float = 1.0) -> Image:
            CALLS.append("Step")
            if scale < 0:
                raise ValueError("scale must not be negative")
            box = Box(previous.value * scale + add + frame)
            LIVE.add(box)
            return box

        @node(name="Offset")
        def offset(value: float = 0.0) -> float:
            CALLS.append("Offset")
            return value

        @node(name="Collect", output_node=True)
        def collect(frames: Frames) -> list[float]:
            values = []
            for box in frames:
                values.append(box.value)
                values.append(len(LIVE))  # how many produced frames are still alive right now
            return values

        @node(name="Total", output_node=True)
        def total(frames: Frames) -> float:
            return sum(box.value for box in frames)

    return registry


def loop_graph(frames=4, seed_behavior="iter", step_inputs=None, extra_outer=None):
    step = {"previous": {"from": ["s", "previous"]}, "frame": {"from": ["s", "frame"]}}
    step.update(step_inputs or {})
    nodes = {
        "1": {"type": "Start", "inputs": {"value": 1.0}},
        "2": {
            "type": "FrameLoop",
            "inputs": {"init_image": {"from": ["1", "image"]}, "frames": frames, "seed": 5, "seed_behavior": seed_behavior},
            "body": {
                "nodes": {
                    "s": {"type": "LoopState"},
                    "b": {"type": "Step", "inputs": step},
                    "r": {"type": "LoopResult", "inputs": {"image": {"from": ["b", "image"]}}},
                }
            },
        },
        "3": {"type": "Collect", "inputs": {"frames": {"from": ["2", "frames"]}}},
    }
    nodes.update(extra_outer or {})
    return graph_from_data({"format": "nodegraph/1", "nodes": nodes})


@pytest.fixture
def executor(roots):
    CALLS.clear()
    return Executor(make_registry(), roots)


def test_each_frame_is_made_from_the_previous_one(executor):
    values = executor.run(loop_graph(4)).outputs["3"]["json"][::2]
    # v0 = 1 + 0, v1 = v0 + 1, v2 = v1 + 2, v3 = v2 + 3
    assert values == [1.0, 2.0, 4.0, 7.0]
    assert CALLS.count("Step") == 4


def test_frames_stream_without_being_held(executor):
    values = executor.run(loop_graph(50)).outputs["3"]["json"]
    alive_while_consuming = values[1::2]
    gc.collect()
    assert max(alive_while_consuming) <= 3  # the current frame and the one before it, not all 50


def test_schedules_on_number_inputs_inside_the_body(executor):
    g = loop_graph(3, step_inputs={"add": {"schedule": "0:(10), 2:(30)"}})
    values = executor.run(g).outputs["3"]["json"][::2]
    # add = 10, 20, 30 (linear between keys)
    assert values == [11.0, 11 + 20 + 1, 11 + 20 + 1 + 30 + 2]


def test_body_can_read_outer_nodes_and_they_are_cached_once(executor):
    g = loop_graph(3, step_inputs={"add": {"from": ["o", "float"]}}, extra_outer={"o": {"type": "Offset", "inputs": {"value": 100.0}}})
    values = executor.run(g).outputs["3"]["json"][::2]
    assert values == [101.0, 202.0, 304.0] and CALLS.count("Offset") == 1
    CALLS.clear()
    g.nodes["o"].inputs["value"] = 0.0  # the loop reads it: the loop and its sink re-run
    assert executor.run(g).outputs["3"]["json"][::2] == [1.0, 2.0, 4.0]


def test_unchanged_rerun_reuses_the_sink(executor):
    g = loop_graph(3)
    executor.run(g)
    CALLS.clear()
    result = executor.run(g)
    assert CALLS == [] and result.executed == []


def test_loop_progress_and_cancel_mid_stream(executor):
    g = loop_graph(1000)
    cancel = CancelToken()
    seen = []

    def watch(event):
        seen.append(event)
        if isinstance(event, NodeProgress) and event.node_id == "2" and event.step == 3:
            cancel.cancel()

    with pytest.raises(Cancelled):
        executor.run(g, observers=[watch], cancel=cancel)
    assert 3 <= CALLS.count("Step") <= 4
    steps = [e.step for e in seen if isinstance(e, NodeProgress) and e.node_id == "2"]
    assert steps[:3] == [1, 2, 3] and all(e.total == 1000 for e in seen if isinstance(e, NodeProgress))


@pytest.mark.parametrize(
    "behavior,expected",
    [("fixed", [5, 5, 5]), ("iter", [5, 6, 7])],
)
def test_seed_behaviours(executor, behavior, expected):
    g = loop_graph(3, seed_behavior=behavior, step_inputs={"frame": {"from": ["s", "seed"]}})
    values = executor.run(g).outputs["3"]["json"][::2]
    made = [values[0] - 1] + [values[i] - values[i - 1] for i in range(1, 3)]
    assert made == expected


def test_random_seed_behaviour_is_repeatable(executor, roots):
    g = loop_graph(4, seed_behavior="random", step_inputs={"frame": {"from": ["s", "seed"]}})
    first = executor.run(g).outputs["3"]["json"][::2]
    again = Executor(make_registry(), roots).run(g).outputs["3"]["json"][::2]
    assert first == again and len(set(first)) == 4


def test_loop_graph_round_trips_byte_identical():
    text = dumps_graph(loop_graph(4, step_inputs={"add": {"schedule": "0:(1), 9:(2)"}}))
    assert dumps_graph(parse_graph(text)) == text


def test_body_problems_are_reported_with_their_path(executor):
    g = loop_graph(3, step_inputs={"add": {"schedule": "0:(__import__('os'))"}, "scale": {"schedule": "0:(2)"}})
    g.nodes["2"].body.nodes["x"] = g.nodes["2"].body.nodes["r"].model_copy()
    problems = pytest.raises(GraphError, executor.run, g).value.problems
    assert {(p.node_id, p.code) for p in problems} == {("2/b", "bad_schedule"), ("2", "loop_result")}
    [bad] = [p for p in problems if p.code == "bad_schedule"]
    assert bad.input == "add" and "__import__" in bad.message  # the good schedule on `scale` passes


def test_schedule_outside_a_loop_is_refused(executor):
    g = graph_from_data({"format": "nodegraph/1", "nodes": {"o": {"type": "Offset", "inputs": {"value": {"schedule": "0:(1)"}}}}})
    [problem] = pytest.raises(GraphError, executor.run, g, targets=["o"]).value.problems
    assert problem.code == "bad_schedule" and "FrameLoop" in problem.message


def test_loop_without_body_and_body_on_plain_node(executor):
    g = loop_graph(2)
    g.nodes["2"].body = None
    g.nodes["1"].body = loop_graph(2).nodes["2"].body
    codes = {p.code for p in pytest.raises(GraphError, executor.run, g).value.problems}
    assert {"missing_body", "unexpected_body"} <= codes


def test_failure_inside_the_body_names_the_body_node(executor):
    g = loop_graph(3, step_inputs={"scale": {"schedule": "0:(1), 2:(-1)"}})
    with pytest.raises(NodeExecutionError) as info:
        executor.run(g)
    assert "'2/b' (Step)" in str(info.value) and "scale must not be negative" in str(info.value)
    assert CALLS.count("Step") == 3  # frames 0 and 1 were made; frame 2 was tried and failed
