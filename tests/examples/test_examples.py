"""Every shipped example graph validates; the model-free ones run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodegraph.config import builtin_input_roots
from nodegraph.executor import Executor
from nodegraph.graph import load_graph
from nodegraph.validate import validate

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "graphs" / "examples").glob("*.json"))


@pytest.fixture
def asset_roots(roots):
    roots.inputs += builtin_input_roots()
    return roots


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_validates(path, registry, asset_roots):
    assert validate(load_graph(path), registry, asset_roots) == []


def test_animation_loop_streams_into_a_video(registry, asset_roots):
    from nodegraph.nodes.video import probe_video

    graph = load_graph(Path(EXAMPLES[0]).parent / "animation_2d_warp.json")
    graph.nodes["2"].inputs["frames"] = 6
    result = Executor(registry, asset_roots).run(graph)
    [video] = result.files
    info = probe_video(video)
    assert (info.frames, info.width, info.height) == (6, 128, 128)
    assert abs(info.fps - 12.0) < 0.01
