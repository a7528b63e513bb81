"""Optical flow nodes on synthetic frames with known motion.

Stated accuracy (128×128 textured frames, mean end-point error, 8-px edge margin):
  DIS fine < 0.25 px, DIS medium < 0.5 px, Farneback < 0.5 px
(measured on this machine: about 0.01 / 0.03 / 0.15 px on a 2.5, -1.25 px shift and
0.04 / 0.08 / 0.18 px on a 4% zoom + 2° rotation)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nodegraph import CancelToken, NodeInputError, RunContext
from nodegraph.nodes import flow as fl
from nodegraph.nodes import transform as tr

THRESHOLDS = {"dis_fine": 0.25, "dis_medium": 0.5, "farneback": 0.5}


def scene(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Smooth random colour texture with a red disc and a blue box on it (1×3×H×W)."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(1, 3, height // 8, width // 8, generator=g), size=(height, width),
                         mode="bicubic", align_corners=False)
    fine = F.interpolate(torch.rand(1, 3, height // 2, width // 2, generator=g), size=(height, width),
                         mode="bilinear", align_corners=False)
    img = 0.7 * base + 0.3 * fine
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    disc = (yy - height * 0.3) ** 2 + (xx - width * 0.35) ** 2 < (height * 0.12) ** 2
    img[:, :, disc] = torch.tensor([0.9, 0.2, 0.1]).view(1, 3, 1)
    img[:, :, int(height * 0.6):int(height * 0.8), int(width * 0.55):int(width * 0.85)] = (
        torch.tensor([0.1, 0.3, 0.8]).view(1, 3, 1, 1))
    return img.clamp(0, 1)


def shifted_pair(size: int, dx: int, dy: int):
    """prev, next and the true backward flow for content moving by (dx, dy) whole pixels."""
    big = scene(size + 16, size + 16)
    prev = big[..., 8:8 + size, 8:8 + size]
    nxt = big[..., 8 - dy:8 - dy + size, 8 - dx:8 - dx + size]  # next(p) = prev(p - d)
    true = torch.zeros(1, 2, size, size)
    true[:, 0], true[:, 1] = -dx, -dy
    return prev, nxt, true


@pytest.fixture
def ctx(roots):
    return RunContext("t", "T", roots, CancelToken())


def test_true_flow_warp_reproduces_next_frame():
    prev, nxt, true = shifted_pair(64, 3, -2)
    for border in ("border", "reflection", "zeros", "wrap"):
        warped = fl.flow_warp(prev, true, border=border)
        # valid region: p + flow inside prev, i.e. x >= 3 and y < 62
        assert torch.allclose(warped[..., :62, 3:], nxt[..., :62, 3:], atol=1e-5), border
    rolled = torch.roll(prev, shifts=(-2, 3), dims=(2, 3))
    assert torch.allclose(fl.flow_warp(prev, true, border="wrap"), rolled, atol=1e-5)
    assert fl.flow_warp(prev, true, border="zeros")[..., :, :3].abs().max() < 1e-6  # black (up to float round-off)


@pytest.mark.parametrize("method", ["dis_fine", "dis_medium", "farneback"])
def test_estimated_flow_on_known_shift(ctx, method):
    prev, nxt, true = shifted_pair(128, 3, -2)
    flow = fl.optical_flow(ctx, prev, nxt, method=method)
    assert flow.shape == (1, 2, 128, 128) and flow.dtype == torch.float32
    epe = fl.end_point_error(flow, true, margin=8)
    assert epe < THRESHOLDS[method], f"{method}: EPE {epe:.3f} px"


@pytest.mark.parametrize("method", ["dis_fine", "dis_medium", "farneback"])
def test_subpixel_and_zoom_motion(ctx, method):
    """Ground truth from Transform2D's flow output: sub-pixel shift, then zoom + rotation."""
    img = scene(128, 128, seed=1)
    for motion in ({"translation_x": 2.5, "translation_y": -1.25}, {"zoom": 1.04, "angle": 2.0}):
        moved = tr.transform_2d(img, **motion)
        flow = fl.optical_flow(ctx, img, moved.image, method=method)
        epe = fl.end_point_error(flow, moved.flow, margin=8)
        assert epe < THRESHOLDS[method], f"{method} {motion}: EPE {epe:.3f} px"
        # The flow-warped previous frame is much closer to the next frame than the unwarped one.
        inner = (..., slice(8, -8), slice(8, -8))
        mse_warped = (fl.flow_warp(img, flow) - moved.image)[inner].pow(2).mean()
        mse_still = (img - moved.image)[inner].pow(2).mean()
        assert mse_warped < 0.05 * mse_still, (method, motion, float(mse_warped), float(mse_still))


def test_moving_object_on_still_background(ctx):
    """A box moves 3 px right over a still background: the flow says (-3, 0) on the box."""
    background = scene(128, 128, seed=2)
    patch = scene(32, 32, seed=3)
    prev, nxt = background.clone(), background.clone()
    prev[..., 48:80, 40:72] = patch
    nxt[..., 48:80, 43:75] = patch
    flow = fl.optical_flow(ctx, prev, nxt, method="dis_fine")
    box = flow[..., 52:76, 47:71]  # inside the box, away from its edges
    assert (box[:, 0] + 3).abs().mean() < 0.3 and box[:, 1].abs().mean() < 0.3
    still = flow[..., 4:40, 4:124]  # background far from the box
    assert still.norm(dim=1).mean() < 0.3
    mse_warped = (fl.flow_warp(prev, flow) - nxt).pow(2).mean()
    assert mse_warped < 0.2 * (prev - nxt).pow(2).mean()


def test_flow_through_the_node_spec(ctx):
    prev, nxt, true = shifted_pair(64, 2, 1)
    spec = fl.optical_flow.__nodegraph_spec__
    assert set(spec.inputs) == {"prev_frame", "next_frame", "method", "weights_path", "raft_iterations"}
    out = spec.call({"prev_frame": prev, "next_frame": nxt, "method": "dis_fine"}, ctx)
    assert fl.end_point_error(out["flow"], true, margin=4) < 0.25
    warp = fl.flow_warp.__nodegraph_spec__.call({"image": prev, "flow": out["flow"]}, ctx)["image"]
    assert warp.shape == prev.shape


def test_batches_and_mismatched_sizes(ctx):
    prev, nxt, true = shifted_pair(64, 1, 1)
    flow = fl.optical_flow(ctx, torch.cat([prev, nxt]), torch.cat([nxt, prev]), method="dis_medium")
    assert flow.shape == (2, 2, 64, 64)
    assert fl.end_point_error(flow[:1], true, margin=4) < 0.5
    assert fl.end_point_error(flow[1:], -true, margin=4) < 0.5
    with pytest.raises(NodeInputError) as info:
        fl.optical_flow(ctx, prev, nxt[..., :32], method="dis_fine")
    assert info.value.input == "next_frame"
    with pytest.raises(NodeInputError):
        fl.flow_warp(prev, torch.zeros(1, 2, 32, 64))
    with pytest.raises(NodeInputError):
        fl.flow_warp(prev, torch.zeros(1, 3, 64, 64))


def test_end_point_error_helper():
    a = torch.zeros(1, 2, 8, 8)
    b = a.clone()
    b[:, 0], b[:, 1] = 3.0, 4.0
    assert fl.end_point_error(a, a) == 0.0
    assert fl.end_point_error(a, b) == pytest.approx(5.0)
    b[..., 0, :] = 100.0
    assert fl.end_point_error(a, b, margin=1) == pytest.approx(5.0)
    assert fl.flow_end_point_error(a, b, margin=1) == pytest.approx(5.0)


def test_flow_visualize_colours():
    flow = torch.zeros(1, 2, 4, 12)
    flow[..., 4:8] = torch.tensor([2.0, 0.0]).view(1, 2, 1, 1)  # pointing right
    flow[..., 8:] = torch.tensor([0.0, -2.0]).view(1, 2, 1, 1)  # pointing up
    rgb = fl.flow_visualize(flow)
    assert rgb.shape == (1, 3, 4, 12) and rgb.min() >= 0 and rgb.max() <= 1
    assert torch.allclose(rgb[..., :4], torch.ones(1, 3, 4, 4), atol=1e-5)  # still = white
    right = rgb[0, :, 0, 5]
    assert right[0] > 0.9 and right[1] < 0.1 and right[2] < 0.1  # right = red
    up = rgb[0, :, 0, 9]
    assert up[2] > 0.9 and up[1] < 0.1  # up = purple/blue
    half = fl.flow_visualize(flow, max_magnitude=4.0)[0, :, 0, 5]
    assert 0.4 < half[1] < 0.6  # half the magnitude → half saturation


def test_raft_without_weights_says_how_to_get_them(ctx):
    prev, nxt, _ = shifted_pair(64, 1, 0)
    with pytest.raises(NodeInputError) as info:
        fl.optical_flow(ctx, prev, nxt, method="raft")
    assert info.value.input == "weights_path" and "safetensors" in str(info.value) and "raft_large" in str(info.value)
    with pytest.raises(NodeInputError) as info:
        fl.optical_flow(ctx, prev, nxt, method="raft", weights_path="flow/raft_small.pth")
    assert "pickle" in str(info.value)
    with pytest.raises(NodeInputError) as info:
        fl.optical_flow(ctx, prev, nxt, method="raft", weights_path="flow/missing.safetensors")
    assert "not found" in str(info.value)


def test_raft_small_from_safetensors(ctx, roots):
    """Untrained raft_small (no download): checks loading, resizing, padding and shapes only."""
    from safetensors.torch import save_file
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    (roots.models[0] / "flow").mkdir()
    save_file(raft_small(weights=None).state_dict(), roots.models[0] / "flow" / "raft_small.safetensors")
    save_file({"weight": torch.zeros(3)}, roots.models[0] / "flow" / "other.safetensors")
    big = scene(140, 140)
    # 60×130: height upsized to RAFT's minimum 128, width padded from 130 to 136 (a multiple of 8)
    prev, nxt = big[..., :60, :130], big[..., 2:62, 1:131]
    flow = fl.optical_flow(ctx, prev, nxt, method="raft", weights_path="flow/raft_small.safetensors",
                           raft_iterations=2)
    assert flow.shape == (1, 2, 60, 130) and torch.isfinite(flow).all()
    assert fl._load_raft.cache_info().currsize >= 1
    with pytest.raises(NodeInputError) as info:
        fl.optical_flow(ctx, prev, nxt, method="raft", weights_path="flow/other.safetensors")
    assert "not a torchvision" in str(info.value)
