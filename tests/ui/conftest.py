"""Fixtures for the TUI tests: roots under tmp_path (plus the packaged example pictures),
a private recent-files list, a copy of the example graph, and a registry with a slow node
for cancel / responsiveness / live-preview tests."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import pytest

from nodegraph import Range, RunContext, node
from nodegraph.config import builtin_input_roots, packaged_dir
from nodegraph.context import Roots
from nodegraph.registry import Registry, load_builtin_nodes
from nodegraph.types import Image

EXAMPLE = packaged_dir("graphs") / "examples" / "image_basics.json"


@pytest.fixture(autouse=True)
def private_recent(tmp_path, monkeypatch):
    monkeypatch.setenv("NODEGRAPH_RECENT", str(tmp_path / "recent.json"))


@pytest.fixture
def ui_roots(tmp_path) -> Roots:
    made = Roots(
        inputs=[tmp_path / "input", *builtin_input_roots()],
        outputs=tmp_path / "output",
        models=[tmp_path / "models"],
        cache=tmp_path / "cache",
    )
    for folder in (made.inputs[0], made.outputs, *made.models, made.cache):
        folder.mkdir(parents=True, exist_ok=True)
    return made


@pytest.fixture
def example_graph(tmp_path) -> Path:
    target = tmp_path / "image_basics.json"
    shutil.copyfile(EXAMPLE, target)
    return target


@pytest.fixture
def builtin_registry() -> Registry:
    return load_builtin_nodes()


def make_slow_registry() -> Registry:
    """SlowImage: `steps` steps of 20 ms each (2000 steps: 40 s, always cancelled by the tests), a progress event with a preview per step."""
    registry = Registry()
    with registry.loading("tests"):

        @node(category="test", name="SlowImage")
        def slow_image(steps: Annotated[int, Range(1, 10_000)] = 100, ctx: RunContext = None) -> Image:
            import torch

            image = torch.zeros(1, 3, 8, 8)
            for step in range(1, steps + 1):
                time.sleep(0.02)
                image[:, 0, : step % 8 + 1, :] = 1.0
                ctx.progress(step, steps, preview=image.clone())
            return image

        @node(category="test", name="Show", output_node=True)
        def show(image: Image) -> Image:
            return image

    return registry


@pytest.fixture
def slow_registry() -> Registry:
    return make_slow_registry()


@pytest.fixture
def slow_graph(tmp_path) -> Path:
    path = tmp_path / "slow.json"
    path.write_text(
        '{"format": "nodegraph/1", "meta": {"title": "slow"}, "nodes": {'
        '"1": {"type": "SlowImage", "inputs": {"steps": 2000}},'
        '"2": {"type": "Show", "inputs": {"image": {"from": ["1", "image"]}}}}}\n'
    )
    return path
