"""Per-frame colour steps of a Deforum-style animation: colour match, contrast, noise.

Each animation frame is the previous one warped and re-sampled; small colour shifts add up
frame after frame. Matching every frame's histogram to a reference frame (Deforum's
``color_coherence``) keeps the palette steady; ``contrast`` and ``noise`` are the other two
knobs applied before the next img2img step.

Colour spaces, written down once because tools disagree:

* IMAGE is RGB (never BGR), float in [0, 1].
* LAB here is scikit-image's CIE L*a*b* (D65) on float RGB: L in 0..100, a and b roughly
  -128..127 -- the same scale as kornia's ``rgb_to_lab``, *not* OpenCV's uint8 LAB (which
  maps L to 0..255 and offsets a/b by 128).
* HSV is scikit-image's: H, S and V all in 0..1 (hue is matched as a plain channel, as
  Deforum does; it does not wrap around).
"""

from __future__ import annotations

from typing import Annotated, Literal

from nodegraph import Doc, NodeInputError, Range, node
from nodegraph.lazy import lazy_import
from nodegraph.types import Image, Seed

torch = lazy_import("torch")
np = lazy_import("numpy")

ColorSpace = Literal["LAB", "HSV", "RGB"]


def _check_image(image, input_name: str) -> None:
    if not hasattr(image, "dim") or image.dim() != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise NodeInputError(input_name, "needs an RGB IMAGE batch", expected="B×3×H×W tensor", got=str(shape))
    if image.shape[0] == 0:
        raise NodeInputError(input_name, "the image batch is empty", expected="at least one image", got="0")


def _to_hwc(image, index: int):
    """One picture of an IMAGE batch → float64 H×W×3 numpy array in [0, 1]."""
    return image[index].detach().to("cpu", torch.float64).clamp(0, 1).permute(1, 2, 0).numpy()


def rgb_to_space(rgb, space: str):
    """float RGB H×W×3 in [0,1] → the colour space (see the module docstring for scales)."""
    from skimage import color

    if space == "LAB":
        return color.rgb2lab(rgb)
    if space == "HSV":
        return color.rgb2hsv(rgb)
    return rgb


def space_to_rgb(values, space: str):
    from skimage import color

    if space == "LAB":
        rgb = color.lab2rgb(values)
    elif space == "HSV":
        rgb = color.hsv2rgb(np.clip(values, 0.0, 1.0))
    else:
        rgb = values
    return np.clip(rgb, 0.0, 1.0)


def match_histograms_image(image, reference, space: str = "LAB"):
    """Histogram-match each picture of `image` to `reference` (1 picture, or one per picture)."""
    from skimage.exposure import match_histograms

    out = []
    for i in range(image.shape[0]):
        ref_index = i if reference.shape[0] == image.shape[0] else 0
        source = rgb_to_space(_to_hwc(image, i), space)
        target = rgb_to_space(_to_hwc(reference, ref_index), space)
        matched = match_histograms(source, target, channel_axis=-1)
        out.append(torch.from_numpy(space_to_rgb(matched, space)).permute(2, 0, 1))
    return torch.stack(out).to(image.device, image.dtype if image.is_floating_point() else torch.float32)


def mean_lab_distance(a, b) -> float:
    """Mean per-pixel CIE76 distance (ΔE) between two IMAGE batches of the same shape."""
    from skimage import color

    total = 0.0
    for i in range(a.shape[0]):
        la = color.rgb2lab(_to_hwc(a, i))
        lb = color.rgb2lab(_to_hwc(b, i if b.shape[0] == a.shape[0] else 0))
        total += float(np.sqrt(((la - lb) ** 2).sum(-1)).mean())
    return total / a.shape[0]


@node(category="color", name="ColorMatch")
def color_match(
    image: Image,
    reference: Image,
    space: Annotated[ColorSpace, Doc("colour space the histograms are matched in (Deforum's default: LAB)")] = "LAB",
    strength: Annotated[float, Range(0.0, 1.0, step=0.05), Doc("0 keeps the image, 1 fully matched")] = 1.0,
) -> Image:
    """Match the colour histograms of `image` to those of `reference` (Deforum colour coherence).

    The reference is usually the first frame of the animation. Its size may differ from the
    image's; a batch of one reference is used for every picture of the image batch."""
    _check_image(image, "image")
    _check_image(reference, "reference")
    if reference.shape[0] not in (1, image.shape[0]):
        raise NodeInputError(
            "reference",
            "batch size must be 1 or the same as the image's",
            expected=f"1 or {image.shape[0]}",
            got=str(reference.shape[0]),
        )
    if strength == 0:
        return image
    matched = match_histograms_image(image, reference, space)
    if strength >= 1:
        return matched
    return (image.float() * (1 - strength) + matched * strength).clamp(0, 1)


@node(category="color", name="Contrast")
def contrast(
    image: Image,
    amount: Annotated[float, Range(0.0, 10.0, step=0.01), Doc("1 leaves the image unchanged")] = 1.0,
    mode: Annotated[
        Literal["scale", "around_mean"],
        Doc("scale: multiply pixel values (Deforum's contrast_schedule); around_mean: stretch around the mean grey"),
    ] = "scale",
) -> Image:
    """Deforum's per-frame contrast.

    ``scale`` is what Deforum's ``contrast_schedule`` does: every pixel value is multiplied
    by `amount` (so it also brightens or darkens); the result is clipped to [0, 1] (Deforum
    casts to uint8 without clipping, which wraps bright pixels round to dark ones).
    ``around_mean`` is classic contrast (as PIL's ImageEnhance.Contrast): values move away
    from (amount > 1) or towards (amount < 1) each picture's mean grey level."""
    _check_image(image, "image")
    x = image.float()
    if mode == "scale":
        return (x * amount).clamp(0, 1)
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    grey_mean = (x * weights).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    return (grey_mean + (x - grey_mean) * amount).clamp(0, 1)


def make_noise(shape, seed: int, noise_type: str = "gaussian"):
    """Seeded noise on the CPU (same seed, same noise on every machine), unit scale."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed) % (2**64))
    if noise_type == "uniform":
        return torch.rand(shape, generator=generator) * 2 - 1
    return torch.randn(shape, generator=generator)


@node(category="color", name="AddNoise")
def add_noise(
    image: Image,
    amount: Annotated[
        float,
        Range(0.0, 2.0, step=0.005),
        Doc("Deforum noise_schedule value: noise strength on the -1..1 pixel scale (default 0.065)"),
    ] = 0.065,
    seed: Seed = 0,
    noise_type: Annotated[
        Literal["gaussian", "uniform"], Doc("gaussian: normal noise; uniform: evenly spread in -1..1")
    ] = "gaussian",
) -> Image:
    """Add seeded noise to an image before the next img2img step (Deforum's noise_schedule).

    Deforum adds ``amount × noise`` to the frame on the -1..1 pixel scale that the VAE
    sees; on IMAGE's 0..1 scale that is ``amount / 2 × noise``, which is what this node adds
    (then clips to [0, 1]). Gaussian noise has standard deviation 1 before scaling, uniform
    noise spans -1..1. Use a different seed per frame (the frame loop's seed) or every frame
    gets the same grain."""
    _check_image(image, "image")
    if amount == 0:
        return image
    noise = make_noise(tuple(image.shape), seed, noise_type).to(image.device, torch.float32)
    return (image.float() + noise * (amount / 2.0)).clamp(0, 1)
