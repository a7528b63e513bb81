"""Colour match, contrast and noise on IMAGE tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nodegraph import NodeInputError
from nodegraph.nodes.color import add_noise, color_match, contrast, mean_lab_distance
from nodegraph.nodes.image import uint8_to_image


@pytest.fixture(scope="module")
def photo():
    """A real photograph (scikit-image's bundled cat), 64×96, as an IMAGE."""
    from skimage import data, transform

    array = transform.resize(data.chelsea(), (64, 96), anti_aliasing=True)
    return uint8_to_image((array * 255).round().astype(np.uint8))


def drift(image, hue=0.0, brightness=1.0):
    """What many frames of warp + img2img do to colours: rotate hue, scale brightness."""
    from skimage import color

    hsv = color.rgb2hsv(image[0].permute(1, 2, 0).double().numpy())
    hsv[..., 0] = (hsv[..., 0] + hue) % 1.0
    hsv[..., 2] = np.clip(hsv[..., 2] * brightness, 0, 1)
    return torch.from_numpy(color.hsv2rgb(hsv)).permute(2, 0, 1)[None].float()


def mean_lab(image):
    from skimage import color

    return color.rgb2lab(image[0].permute(1, 2, 0).double().numpy()).reshape(-1, 3).mean(0)


@pytest.mark.parametrize("space", ["LAB", "HSV", "RGB"])
@pytest.mark.parametrize("hue, brightness", [(0.04, 0.85), (0.0, 0.7), (0.08, 1.0)])
def test_color_match_pulls_drifted_frame_back_to_reference(photo, space, hue, brightness):
    drifted = drift(photo, hue, brightness)
    before = mean_lab_distance(drifted, photo)
    assert before > 8  # the drift is visible (ΔE)
    matched = color_match(drifted, photo, space)
    after = mean_lab_distance(matched, photo)
    assert after < 0.6 * before, (before, after)
    # the mean colour is restored too
    assert np.linalg.norm(mean_lab(matched) - mean_lab(photo)) < 1.0
    assert matched.shape == photo.shape and matched.dtype == torch.float32
    assert float(matched.min()) >= 0 and float(matched.max()) <= 1


def test_color_match_to_a_differently_sized_reference_and_batches(photo):
    small_ref = torch.nn.functional.interpolate(photo, size=(32, 48), mode="area")
    frames = torch.cat([drift(photo, 0.03, 0.8), drift(photo, 0.0, 1.2)])
    matched = color_match(frames, small_ref, "LAB")
    assert matched.shape == frames.shape
    for i in range(2):
        assert mean_lab_distance(matched[i : i + 1], photo) < mean_lab_distance(frames[i : i + 1], photo)


def test_color_match_strength_blends(photo):
    drifted = drift(photo, 0.0, 0.7)
    assert torch.equal(color_match(drifted, photo, "LAB", 0.0), drifted)
    half = color_match(drifted, photo, "LAB", 0.5)
    full = color_match(drifted, photo, "LAB", 1.0)
    assert torch.allclose(half, (drifted + full) / 2, atol=1e-6)


def test_color_match_keeps_rgb_channel_order():
    """A reddish image matched to a blue reference turns blue (no BGR mix-up)."""
    torch.manual_seed(0)
    red = torch.rand(1, 3, 24, 24) * torch.tensor([0.9, 0.2, 0.2]).view(1, 3, 1, 1)
    blue = torch.rand(1, 3, 24, 24) * torch.tensor([0.2, 0.2, 0.9]).view(1, 3, 1, 1)
    for space in ("LAB", "HSV", "RGB"):
        out = color_match(red, blue, space)
        means = out.mean(dim=(0, 2, 3))
        assert means[2] > means[0], (space, means)


def test_color_match_rejects_bad_inputs(photo):
    with pytest.raises(NodeInputError, match="reference"):
        color_match(photo, torch.rand(1, 1, 8, 8))
    with pytest.raises(NodeInputError, match="batch size"):
        color_match(torch.cat([photo] * 3), torch.cat([photo] * 2))


def test_contrast_scale_is_deforum_multiply_and_clips():
    x = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    out = contrast(x, 1.5)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([0.3, 0.75, 1.0]))  # 1.2 clipped, never wrapped
    assert torch.equal(contrast(x, 1.0), x.float())


def test_contrast_around_mean_keeps_mean_and_spreads(photo):
    more = contrast(photo, 1.5, "around_mean")
    less = contrast(photo, 0.5, "around_mean")
    assert float(more.std()) > float(photo.std()) > float(less.std())
    assert abs(float(less.mean()) - float(photo.mean())) < 0.02
    flat = contrast(photo, 0.0, "around_mean")
    assert float(flat.std(dim=(2, 3)).max()) < 1e-6  # amount 0: one flat grey


def test_add_noise_seeded_and_scaled_like_deforum():
    grey = torch.full((1, 3, 64, 64), 0.5)
    a = add_noise(grey, 0.065, seed=7)
    b = add_noise(grey, 0.065, seed=7)
    c = add_noise(grey, 0.065, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # Deforum adds amount × N(0,1) on the -1..1 scale: std amount/2 on IMAGE's 0..1 scale
    assert float((a - grey).std()) == pytest.approx(0.065 / 2, rel=0.05)
    assert float((a - grey).mean()) == pytest.approx(0.0, abs=0.003)
    uniform = add_noise(grey, 0.2, seed=1, noise_type="uniform") - grey
    assert float(uniform.abs().max()) <= 0.1 + 1e-6
    assert float(uniform.std()) == pytest.approx(0.1 / 3**0.5, rel=0.05)
    assert torch.equal(add_noise(grey, 0.0, 3), grey)
    loud = add_noise(grey, 2.0, 3)
    assert float(loud.min()) >= 0 and float(loud.max()) <= 1
