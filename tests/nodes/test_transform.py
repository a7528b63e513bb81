"""2D and 3D transform nodes: exact whole-pixel moves, identities, zoom about the centre,
depth parallax, and agreement between each transform's image and its FLOW output."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nodegraph import NodeInputError
from nodegraph.nodes import flow as fl
from nodegraph.nodes import transform as tr


def scene(height: int = 64, width: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    img = F.interpolate(torch.rand(1, 3, height // 8, width // 8, generator=g), size=(height, width),
                        mode="bicubic", align_corners=False)
    img[..., height // 4:height // 2, width // 4:width // 2] = torch.tensor([0.9, 0.8, 0.1]).view(1, 3, 1, 1)
    return img.clamp(0, 1)


def test_2d_whole_pixel_translation_is_exact_inside_the_valid_region():
    img = scene()
    for border in ("border", "reflection", "zeros", "wrap"):
        out = tr.transform_2d(img, translation_x=5, translation_y=-3, border=border)
        # content moves right 5, up 3: out[y, x] = img[y + 3, x - 5]
        assert torch.allclose(out.image[..., :61, 5:], img[..., 3:, :59], atol=1e-5), border
        assert torch.allclose(out.flow[:, 0], torch.full((1, 64, 64), -5.0), atol=1e-4)
        assert torch.allclose(out.flow[:, 1], torch.full((1, 64, 64), 3.0), atol=1e-4)
    wrapped = tr.transform_2d(img, translation_x=5, translation_y=-3, border="wrap").image
    assert torch.allclose(wrapped, torch.roll(img, shifts=(-3, 5), dims=(2, 3)), atol=1e-5)
    assert tr.transform_2d(img, translation_x=5, border="zeros").image[..., :5].abs().max() < 1e-6


def test_2d_identity_zoom_and_rotation_directions():
    img = scene()
    same = tr.transform_2d(img)
    assert torch.allclose(same.image, img, atol=1e-5) and same.flow.abs().max() < 1e-4
    zoomed = tr.transform_2d(img, zoom=1.5)
    flow = zoomed.flow[0]
    # zoom in: each output pixel reads from nearer the middle; the centre stays put
    assert flow[0, 0, 0] > 0 and flow[1, 0, 0] > 0 and flow[0, -1, -1] < 0 and flow[1, -1, -1] < 0
    assert torch.allclose(flow[0, 0, 0], torch.tensor(31.5 * (1 / 1.5 - 1) * -1), atol=1e-3)
    # counter-clockwise: a dot right of the centre ends up above it
    dot = torch.zeros(1, 3, 65, 65)
    dot[..., 32, 42] = 1.0
    turned = tr.transform_2d(dot, angle=90.0, border="zeros").image
    y, x = divmod(int(turned[0, 0].argmax()), 65)
    assert (y, x) == (22, 32)
    # centre_x/center_y move the pivot: zooming about the top-left corner keeps it fixed
    corner = tr.transform_2d(img, zoom=2.0, center_x=0.0, center_y=0.0)
    assert corner.flow[0, :, 0, 0].abs().max() < 1e-5
    assert torch.allclose(corner.image[..., 0, 0], img[..., 0, 0], atol=1e-5)


@pytest.mark.parametrize("border", ["border", "reflection", "zeros", "wrap"])
def test_2d_image_equals_flow_warp_with_its_flow(border):
    img = scene()
    out = tr.transform_2d(img, zoom=1.1, angle=12.0, translation_x=3.3, translation_y=-1.7,
                          center_x=0.4, center_y=0.6, border=border)
    again = fl.flow_warp(img, out.flow, border=border)
    assert torch.allclose(out.image, again, atol=1e-5)


def test_3d_zero_motion_is_identity():
    img = scene()
    depth = torch.rand(1, 1, 64, 64)
    for d in (None, depth):
        out = tr.transform_3d(img, d)
        assert torch.allclose(out.image, img, atol=1e-5)
        assert out.flow.abs().max() < 1e-3


def test_3d_forward_motion_zooms_about_the_centre():
    img = scene(65, 65)
    out = tr.transform_3d(img, None, translation_z=10.0)  # 10/200 = 0.05 units towards a wall at z=1
    assert out.flow[0, :, 32, 32].abs().max() < 1e-4  # centre fixed
    expected = tr.transform_2d(img, zoom=1.0 / (1.0 - 10.0 / 200.0))
    assert torch.allclose(out.flow, expected.flow, atol=1e-3)
    assert torch.allclose(out.image, expected.image, atol=1e-4)
    # with depth: the centre still stays, and near things grow faster than far ones
    yy, xx = torch.meshgrid(torch.arange(65.0), torch.arange(65.0), indexing="ij")
    depth = (xx / 64.0).view(1, 1, 65, 65)  # left far, right near
    deep = tr.transform_3d(img, depth, translation_z=10.0).flow[0]
    assert deep[:, 32, 32].abs().max() < 1e-3
    assert deep[0, 32, 60].abs() > 5 * deep[0, 32, 4].abs()


def test_3d_flat_or_broken_depth_falls_back_to_a_wall():
    img = scene()
    reference = tr.transform_3d(img, None, translation_x=15.0, translation_z=8.0, rotation_3d_y=1.0)
    flat = torch.full((1, 1, 64, 64), 0.37)
    broken = torch.rand(1, 1, 64, 64)
    broken[..., 5, 5] = float("nan")
    for depth in (flat, broken):
        out = tr.transform_3d(img, depth, translation_x=15.0, translation_z=8.0, rotation_3d_y=1.0)
        assert torch.allclose(out.image, reference.image, atol=1e-5)
    assert torch.allclose(tr.depth_to_z(flat, 200.0, 10000.0), torch.ones(1, 64, 64))


def test_depth_to_z_formula():
    d = torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3)
    z = tr.depth_to_z(d, near=200.0, far=10000.0)[0, 0]
    assert z[2] == pytest.approx(1.0) and z[0] == pytest.approx(50.0)
    assert 1 / z[1] == pytest.approx(0.5 / 1.0 + 0.5 / 50.0)


def test_3d_directions_match_2d():
    img = scene(65, 65)
    # roll matches the 2D angle (counter-clockwise)
    rolled = tr.transform_3d(img, None, rotation_3d_z=7.0)
    assert torch.allclose(rolled.flow, tr.transform_2d(img, angle=7.0).flow, atol=1e-3)
    focal = (65 / 2) / math.tan(math.radians(70 / 2))
    # sideways on a wall at z=1: content moves right by focal·tx/200 pixels
    moved = tr.transform_3d(img, None, translation_x=20.0, translation_y=-10.0)
    assert moved.flow[0, 0].mean() == pytest.approx(-focal * 20 / 200, rel=1e-3)
    assert moved.flow[0, 1].mean() == pytest.approx(focal * 10 / 200, rel=1e-3)
    # pan and tilt move the content like translation_x / translation_y
    assert tr.transform_3d(img, None, rotation_3d_y=2.0).flow[0, 0, 32, 32] < -1.0
    assert tr.transform_3d(img, None, rotation_3d_x=2.0).flow[0, 1, 32, 32] < -1.0
    # parallax: with depth, near content (right) moves more than far content (left)
    depth = torch.linspace(0, 1, 65).view(1, 1, 1, 65).expand(1, 1, 65, 65)
    side = tr.transform_3d(img, depth, translation_x=20.0).flow[0, 0]
    assert side[32, 64].abs() > 10 * side[32, 0].abs()


def test_3d_backward_map_inverts_the_forward_projection():
    """Project each input pixel forward through the camera move; the node's backward flow at
    the landing point must lead back to it (the fixed-point solve), for smooth depth."""
    size = 64
    yy, xx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    depth = (0.5 + 0.5 * torch.sin(xx / 10) * torch.cos(yy / 13)).view(1, 1, size, size)
    motion = {"translation_x": 30.0, "translation_z": 20.0, "rotation_3d_y": 1.0}
    out = tr.transform_3d(torch.rand(1, 3, size, size), depth, **motion)
    z = tr.depth_to_z(depth, 200.0, 10000.0)[0]
    focal, c = (size / 2) / math.tan(math.radians(35)), (size - 1) / 2
    points = torch.stack(((xx - c) / focal * z, (yy - c) / focal * z, z), -1)
    shift = torch.tensor([-30.0, 0.0, 20.0]) / 200
    moved = (points - shift) @ tr._rotation(0.0, 1.0, 0.0).T
    qx, qy = focal * moved[..., 0] / moved[..., 2] + c, focal * moved[..., 1] / moved[..., 2] + c
    back_x = fl.sample_image(out.flow[:, :1] + xx, qx[None], qy[None])[0, 0]
    back_y = fl.sample_image(out.flow[:, 1:] + yy, qx[None], qy[None])[0, 0]
    inside = (qx > 2) & (qx < size - 3) & (qy > 2) & (qy < size - 3)
    error = ((back_x - xx) ** 2 + (back_y - yy) ** 2).sqrt()[inside]
    assert error.mean() < 0.05 and error.median() < 0.02


def test_3d_flow_output_matches_the_image():
    img = scene()
    depth = torch.rand(1, 1, 8, 8)
    depth = F.interpolate(depth, size=(64, 64), mode="bilinear", align_corners=False)
    out = tr.transform_3d(img, depth, translation_x=5.0, translation_z=6.0, rotation_3d_x=1.0, border="reflection")
    assert torch.allclose(out.image, fl.flow_warp(img, out.flow, border="reflection"), atol=1e-5)


def test_bad_inputs_are_named():
    img = scene()
    with pytest.raises(NodeInputError) as info:
        tr.transform_3d(img, torch.rand(1, 1, 32, 32))
    assert info.value.input == "depth"
    with pytest.raises(NodeInputError) as info:
        tr.transform_3d(img, None, near=500.0, far=100.0)
    assert info.value.input == "far"
    with pytest.raises(NodeInputError):
        tr.transform_2d(img, zoom=0.0)


def test_specs_expose_plain_float_inputs():
    spec3 = tr.transform_3d.__nodegraph_spec__
    for name in ("translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y",
                 "rotation_3d_z", "fov", "near", "far"):
        assert spec3.inputs[name].type_names == "FLOAT", name
    assert set(spec3.outputs) == {"image", "flow"}
    assert spec3.inputs["depth"].optional
    spec2 = tr.transform_2d.__nodegraph_spec__
    for name in ("zoom", "angle", "translation_x", "translation_y", "center_x", "center_y"):
        assert spec2.inputs[name].type_names == "FLOAT", name
    assert spec2.inputs["border"].choices == ("border", "reflection", "zeros", "wrap")
