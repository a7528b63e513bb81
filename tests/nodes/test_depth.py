"""Depth nodes: a tiny DPT built offline from a config, saved with save_pretrained under a
model root and loaded through EstimateDepth; the DEPTH convention; the preview; the MiniSD
backend's errors (loading a trained MiniSD depth net is tested in test_train.py)."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from nodegraph import CancelToken, NodeInputError, RunContext
from nodegraph.nodes import depth as dp


@pytest.fixture(scope="module")
def tiny_dpt(tmp_path_factory):
    """A ~120k-parameter DPTForDepthEstimation + DPTImageProcessor saved in a folder."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(0)
    config = DPTConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=37, image_size=32,
        patch_size=8, neck_hidden_sizes=[16, 16, 32, 32], fusion_hidden_size=16,
        reassemble_factors=[4, 2, 1, 0.5], is_hybrid=False, backbone_out_indices=[0, 1, 2, 3],
    )
    model = DPTForDepthEstimation(config).eval()
    # An untrained head ends in a ReLU that outputs ~0 everywhere; lift it so the output varies.
    with torch.no_grad():
        model.head.head[4].weight.normal_(0.0, 1.0)
        model.head.head[4].bias.fill_(2.0)
    processor = DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False, ensure_multiple_of=1)
    folder = tmp_path_factory.mktemp("dpt") / "tiny-dpt"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, model, processor


@pytest.fixture
def ctx(roots, tiny_dpt):
    shutil.copytree(tiny_dpt[0], roots.models[0] / "depth" / "tiny-dpt")
    return RunContext("t", "T", roots, CancelToken())


def picture(batch: int = 1, height: int = 40, width: int = 56) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return F.interpolate(torch.rand(batch, 3, 5, 7, generator=g), size=(height, width), mode="bilinear",
                         align_corners=False)


def test_estimate_depth_with_tiny_dpt_from_the_model_root(ctx, tiny_dpt):
    _, model, processor = tiny_dpt
    image = picture(batch=2)
    raw = dp.estimate_depth(ctx, image, backend="transformers", model="depth/tiny-dpt", normalize="none")
    assert raw.shape == (2, 1, 40, 56) and raw.dtype == torch.float32 and torch.isfinite(raw).all()
    # the node's raw output is the model's predicted (inverse) depth resized to the picture
    from nodegraph.nodes.image import image_to_pil

    with torch.no_grad():
        pixels = processor(images=[image_to_pil(image, 1)], return_tensors="pt")["pixel_values"]
        expected = model(pixel_values=pixels).predicted_depth[:, None]
    expected = F.interpolate(expected, size=(40, 56), mode="bicubic", align_corners=False)
    assert torch.allclose(raw[1:], expected, atol=1e-4)
    # per_image: each picture spans [0, 1] exactly (1 = nearest = largest model output)
    depth = dp.estimate_depth(ctx, image, backend="transformers", model="depth/tiny-dpt")
    for index in range(2):
        assert depth[index].min() == pytest.approx(0.0) and depth[index].max() == pytest.approx(1.0)
        assert int(depth[index].argmax()) == int(raw[index].argmax())
    # loaded once: the second and third calls hit the cache
    assert dp._load_transformers_depth.cache_info().hits >= 1


def test_estimate_depth_through_the_node_spec(ctx):
    spec = dp.estimate_depth.__nodegraph_spec__
    assert spec.inputs["backend"].choices == ("minisd", "transformers")
    assert spec.inputs["backend"].default == "minisd"  # the shipped depth net: works offline
    assert spec.inputs["normalize"].choices == ("per_image", "none")
    out = spec.call({"image": picture(), "backend": "transformers", "model": "depth/tiny-dpt"}, ctx)
    assert out["depth"].shape == (1, 1, 40, 56)


def test_minisd_backend_without_a_trained_folder_says_how_to_get_one(ctx, roots):
    with pytest.raises(NodeInputError) as info:
        dp.estimate_depth(ctx, picture(), backend="minisd")  # default: models/minisd-depth, absent
    assert info.value.input == "model" and "'minisd-depth'" in str(info.value)
    assert "TrainDepthNet" in str(info.value) or "graphs/train" in str(info.value)
    with pytest.raises(NodeInputError) as info:  # a transformers folder is not a MiniSD depth net
        dp.estimate_depth(ctx, picture(), backend="minisd", model="depth/tiny-dpt")
    assert info.value.input == "model" and "MiniSD depth net" in str(info.value)


def test_minisd_depth_net_round_trips_through_its_folder(tmp_path):
    torch.manual_seed(0)
    net = dp.build_depth_net().eval()
    dp.save_depth_net(net, tmp_path)
    loaded = dp.load_depth_net(tmp_path, torch.device("cpu"))
    image = picture(batch=2, height=64, width=64)
    with torch.no_grad():
        assert torch.equal(loaded(image), net(image))
    assert loaded(image).shape == (2, 1, 64, 64)


def test_missing_or_incomplete_model_folders(ctx, roots):
    with pytest.raises(NodeInputError) as info:
        dp.estimate_depth(ctx, picture(), backend="transformers", model="nothing-here")
    assert info.value.input == "model" and "model roots" in str(info.value)
    with pytest.raises(NodeInputError) as info:  # Hub id, offline and not cached
        dp.estimate_depth(ctx, picture(), backend="transformers", model="nobody/no-such-depth-model")
    assert "hf download" in str(info.value)
    incomplete = roots.models[0] / "depth" / "no-processor"
    shutil.copytree(roots.models[0] / "depth" / "tiny-dpt", incomplete)
    (incomplete / "preprocessor_config.json").unlink()
    with pytest.raises(NodeInputError) as info:
        dp.estimate_depth(ctx, picture(), backend="transformers", model="depth/no-processor")
    assert "preprocessor_config.json" in str(info.value)
    with pytest.raises(NodeInputError):
        dp.estimate_depth(ctx, picture(), model="../../etc")


def test_normalise_per_image_handles_flat_and_nan():
    ramp = torch.linspace(3.0, 7.0, 16).view(1, 1, 4, 4)
    flat = torch.full((1, 1, 4, 4), 5.0)
    broken = ramp.clone()
    broken[..., 0, 0] = float("nan")
    tiny = ramp * 1e-9  # small but varied outputs still count
    out = dp.normalise_per_image(torch.cat([ramp, flat, broken, tiny]))
    assert out[0].min() == 0 and out[0].max() == 1
    assert torch.allclose(out[0], out[3], atol=1e-5)
    assert (out[1] == 0).all() and (out[2] == 0).all()


def test_depth_preview_colours():
    depth = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(2, 1, 8, 32)
    rgb = dp.depth_preview(depth)
    assert rgb.shape == (2, 3, 8, 32) and rgb.min() >= 0 and rgb.max() <= 1
    brightness = rgb[0].mean(dim=(0, 1))
    assert (brightness[1:] >= brightness[:-1] - 1e-6).all()  # inferno: nearer = brighter
    gray = dp.depth_preview(depth * 10 + 3, colormap="gray")  # per_image stretches to 0..1
    assert torch.allclose(gray[:, 0:1], depth, atol=1 / 255 + 1e-6)
    raw = dp.depth_preview(depth * 0.5, colormap="gray", normalize="none")
    assert raw.max() <= 0.51
    with pytest.raises(NodeInputError):
        dp.depth_preview(torch.rand(1, 3, 8, 8))
