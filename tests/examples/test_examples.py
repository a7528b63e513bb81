"""Every shipped example graph validates; the model-free ones run end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodegraph.config import builtin_input_roots, builtin_model_roots
from nodegraph.executor import Executor
from nodegraph.graph import load_graph
from nodegraph.validate import validate

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "graphs" / "examples").glob("*.json"))


@pytest.fixture
def asset_roots(roots):
    roots.inputs += builtin_input_roots()
    roots.models += builtin_model_roots()
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


@pytest.mark.parametrize("name", ["txt2img", "img2img", "inpaint", "controlnet"])
def test_stable_diffusion_examples_run_offline_on_the_shipped_fixture(name, registry, asset_roots):
    import torch

    torch.set_num_threads(1)
    graph = load_graph(Path(EXAMPLES[0]).parent / f"{name}.json")
    assert "SD 1.5" in graph.meta["real_model"]  # says which loader input to change
    result = Executor(registry, asset_roots).run(graph)
    [png] = result.files
    assert png.name.startswith(name) and png.stat().st_size > 0


def test_shipped_tiny_fixture_is_the_one_the_tests_build(tmp_path):
    """nodes/assets/models/tiny-sd was written by tests/diffusion/conftest.py's builder."""
    import sys

    from safetensors.torch import load_file

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.diffusion.conftest import save_diffusers_folder

    built = save_diffusers_folder(tmp_path / "tiny-sd")
    shipped = builtin_model_roots()[0] / "tiny-sd"
    for part in ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        a, b = load_file(built / part), load_file(shipped / part)
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.mark.parametrize("name", ["deforum_2d", "deforum_3d"])
def test_deforum_examples_render_a_short_clip(name, registry, asset_roots):
    """The full per-frame recipe (warp, colour match, noise, img2img, decode) on 3 frames."""
    import torch

    from nodegraph.nodes.video import probe_video

    torch.set_num_threads(1)
    graph = load_graph(Path(EXAMPLES[0]).parent / f"{name}.json")
    graph.nodes["5"].inputs["frames"] = 3
    graph.nodes["5"].body.nodes["k"].inputs["steps"] = 2
    [video] = Executor(registry, asset_roots).run(graph).files
    info = probe_video(video)
    assert (info.frames, info.width, info.height) == (3, 64, 64)
