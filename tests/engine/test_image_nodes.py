from __future__ import annotations

import pytest
import torch
from PIL import Image as PILImage

from nodegraph.context import CancelToken, RunContext
from nodegraph.errors import NodeExecutionError, NodeInputError
from nodegraph.executor import Executor
from nodegraph.graph import graph_from_data
from nodegraph.nodes import image as img


def ctx_for(roots, node_id="n"):
    return RunContext(node_id, "T", roots, CancelToken(), graph_json='{"format": "nodegraph/1"}')


def test_load_image_is_bchw_in_unit_range_with_alpha_as_mask(roots):
    pil = PILImage.new("RGBA", (5, 3), (255, 0, 0, 255))
    pil.putpixel((4, 2), (0, 0, 255, 0))
    pil.save(roots.inputs[0] / "dot.png")
    image, mask = img.load_image("dot.png", ctx=ctx_for(roots))
    assert image.shape == (1, 3, 3, 5) and image.dtype == torch.float32
    assert image[0, :, 0, 0].tolist() == [1.0, 0.0, 0.0]
    assert mask.shape == (1, 1, 3, 5) and mask.sum() == 1 and mask[0, 0, 2, 4] == 1


def test_load_rejects_non_images_with_the_input_name(roots):
    (roots.inputs[0] / "notes.png").write_text("not a png")
    with pytest.raises(NodeInputError) as info:
        img.load_image("notes.png", ctx=ctx_for(roots))
    assert info.value.input == "path"


def test_save_image_numbers_files_embeds_graph_and_leaves_no_temp_files(roots):
    batch = torch.rand(2, 3, 8, 8)
    ctx = ctx_for(roots)
    paths = img.save_image(batch, "shots/pic", ctx=ctx)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["pic_00001.png", "pic_00002.png"]
    with PILImage.open(paths[0]) as png:
        assert png.text["nodegraph"] == '{"format": "nodegraph/1"}'
        back = img.pil_to_image(png)
    assert (back - batch[:1]).abs().max() <= 0.5 / 255 + 1e-6
    assert [p.name for p in (roots.outputs / "shots").iterdir() if p.name.startswith(".")] == []
    assert img.save_image(batch[:1], "shots/pic", ctx=ctx)[0].endswith("pic_00003.png")
    assert len(ctx.files) == 3


def test_resize_crop_blend_grayscale():
    image = torch.rand(1, 3, 16, 32)
    assert img.resize_image(image, 8, 4, "area").shape == (1, 3, 4, 8)
    assert torch.equal(img.crop_image(image, 4, 2, 10, 6), image[:, :, 2:8, 4:14])
    with pytest.raises(NodeInputError) as info:
        img.crop_image(image, 30, 0, 10, 6)
    assert info.value.input == "width"
    black, white = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    assert torch.allclose(img.blend_images(black, white, 0.25), torch.full((1, 3, 4, 4), 0.25))
    assert torch.equal(img.blend_images(white, white, 1.0, "difference"), black)
    gray = img.image_to_grayscale(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1))
    assert torch.allclose(gray, torch.full((1, 3, 1, 1), 0.299))
    with pytest.raises(NodeInputError):
        img.blend_images(black, torch.zeros(1, 3, 5, 5))


def test_missing_file_fails_the_run_naming_node_and_input(roots):
    graph = graph_from_data({"format": "nodegraph/1", "nodes": {"7": {"type": "LoadImage", "inputs": {"path": "nope.png"}}}})
    with pytest.raises(NodeExecutionError) as info:
        Executor(roots=roots).run(graph, targets=["7"])
    assert "'7' (LoadImage)" in str(info.value) and "'path'" in str(info.value)
