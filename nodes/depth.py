"""Depth from a single picture, and a coloured preview of it.

The DEPTH convention (one convention for the whole project)
-----------------------------------------------------------
A DEPTH is a float tensor B×1×H×W where **larger = nearer**: it is a (relative)
disparity, proportional to 1/distance, not a distance. That is what monocular depth models
such as MiDaS/DPT and Depth Anything predict (their "relative depth" is inverse depth), so
their output is used as is. With normalize="per_image" every picture is rescaled to [0, 1]
(1 = the nearest thing in that picture, 0 = the farthest); the scale of a relative model's
output means nothing across pictures, so this is the default. Models that predict metric
distance (config ``depth_estimation_type = "metric"``, ZoeDepth) are converted with 1/z
before anything else, so they follow the same convention.

A depth that is flat (or not finite) carries no 3D information: normalising gives all
zeros, and Transform3D treats it as a flat wall at z = 1 (see nodes/transform.py).

Nodes
-----
EstimateDepth   IMAGE → DEPTH: backend "transformers" (AutoModelForDepthEstimation from a
                folder under a model root, or a Hub id when online/cached) or "minisd"
                (the project's own tiny depth net, trained on the synthetic world by
                TrainDepthNet: a folder under a model root, "minisd-depth" by default).
DepthPreview    DEPTH → IMAGE through a matplotlib colormap (near = bright for inferno).

The MiniSD depth net
--------------------
A small convolutional encoder–decoder (a tiny U-Net, about 0.15 M parameters): the encoder
halves the picture three times (64 → 32 → 16 → 8 px) while widening the features, the
decoder doubles it back, and at each size it is handed the encoder's features of that
size (the skip connections, which keep outlines sharp). The last layer is a sigmoid: the
net predicts the *normalised* disparity of the world's ground truth (1 = the nearest
object in the picture, 0 = the background), which is exactly this project's DEPTH
convention. Its folder holds ``config.json`` (architecture and sizes) and
``model.safetensors``; :func:`load_depth_net` reads it, nodes/train.py's TrainDepthNet
writes it. It knows only the synthetic world: flat shapes on simple backgrounds.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from nodegraph import Doc, NodeInputError, RunContext, node
from nodegraph.lazy import lazy_import
from nodegraph.types import Depth, Image

from .device import pick_device
from .models import NET_WEIGHTS, read_net_folder, save_net_folder
from .image import image_to_pil

torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")

Normalize = Literal["per_image", "none"]

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"
MINISD_DEPTH_MODEL = "minisd-depth"  # the folder the minisd backend reads by default
DEPTH_NET_ARCHITECTURE = "MiniSDDepthNet"


# ---- the MiniSD depth net ---------------------------------------------------------------------


def depth_net_config(channels: tuple[int, ...] = (8, 16, 32, 64), image_size: int = 64) -> dict:
    """The depth net's config.json: widths per resolution level (each level halves the
    picture), and the picture size it was trained at (inputs are resized to it)."""
    return {
        "architecture": DEPTH_NET_ARCHITECTURE,
        "in_channels": 3,
        "channels": [int(c) for c in channels],
        "image_size": int(image_size),
        "norm_num_groups": 8,
        "output": "normalised disparity in [0, 1] (1 = nearest), sigmoid",
    }


@lru_cache(maxsize=1)
def _depth_net_class():
    """The nn.Module class, made on first use (so importing this pack does not import torch)."""
    nn = torch.nn

    def block(c_in: int, c_out: int, groups: int):
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(math.gcd(groups, c_out), c_out), nn.SiLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(math.gcd(groups, c_out), c_out), nn.SiLU(),
        )

    class MiniSDDepthNet(nn.Module):
        """IMAGE B×3×H×W in [0, 1] (H, W multiples of 2^(levels-1)) → B×1×H×W in [0, 1]."""

        def __init__(self, config: dict) -> None:
            super().__init__()
            self.config = dict(config)
            ch, g = list(config["channels"]), int(config.get("norm_num_groups", 8))
            self.stem = block(config.get("in_channels", 3), ch[0], g)
            self.down = nn.ModuleList(nn.Conv2d(a, a, 3, stride=2, padding=1) for a in ch[:-1])
            self.encode = nn.ModuleList(block(a, b, g) for a, b in zip(ch[:-1], ch[1:]))
            self.up = nn.ModuleList(nn.Conv2d(b, a, 3, padding=1) for a, b in zip(ch[:-1], ch[1:]))
            self.decode = nn.ModuleList(block(2 * a, a, g) for a in ch[:-1])
            self.head = nn.Conv2d(ch[0], 1, 1)
            # Most of a world picture is background (normalised disparity 0): start the
            # sigmoid near 0 there instead of at 0.5, or the first hundreds of steps only
            # slide the whole map down.
            nn.init.constant_(self.head.bias, -3.0)

        def forward(self, image):
            x = self.stem(image * 2 - 1)
            skips = []
            for down, encode in zip(self.down, self.encode):
                skips.append(x)
                x = encode(down(x))
            for up, decode, skip in zip(reversed(self.up), reversed(self.decode), reversed(skips)):
                x = up(F.interpolate(x, size=skip.shape[-2:], mode="nearest"))
                x = decode(torch.cat([x, skip], dim=1))
            return torch.sigmoid(self.head(x))

    return MiniSDDepthNet


def build_depth_net(config: dict | None = None):
    """A fresh (randomly initialised) MiniSD depth net."""
    return _depth_net_class()(config or depth_net_config())


def save_depth_net(net, folder: Path) -> None:
    """config.json + model.safetensors in `folder` (which must exist)."""
    save_net_folder(net, folder)


def load_depth_net(folder: Path | str, device: Any = None):
    """Read a depth net folder written by TrainDepthNet (config.json + model.safetensors);
    returns the network in eval mode on `device` (default: pick_device())."""
    return read_net_folder(folder, DEPTH_NET_ARCHITECTURE, build_depth_net, "MiniSD depth net").to(device or pick_device())


@lru_cache(maxsize=2)
def _load_minisd_depth(folder: str, stamp: float):
    return load_depth_net(folder)


def _run_minisd(image, model: str, ctx: RunContext):
    """The MiniSD depth net on each picture: resized to its training size, then back."""
    name = model or MINISD_DEPTH_MODEL
    train_hint = "train it with graphs/train/minisd_depth.json (TrainDepthNet writes models/minisd-depth)"
    try:
        folder = ctx.roots.resolve_read(name, "model")
    except FileNotFoundError:
        shown = ", ".join(str(b) for b in ctx.roots.models) or "(none configured)"
        raise NodeInputError("model", f"no MiniSD depth net folder {name!r} under the model roots ({shown}); {train_hint}",
                             expected="a folder written by TrainDepthNet", got=repr(name)) from None
    try:
        net = _load_minisd_depth(str(folder), (folder / NET_WEIGHTS).stat().st_mtime)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise NodeInputError("model", f"cannot load the MiniSD depth net from {folder}: {str(exc).splitlines()[0]}",
                             expected="a folder written by TrainDepthNet", got=repr(name)) from None
    ctx.progress(0, 1, text="depth (MiniSD depth net)")
    size = int(net.config["image_size"])
    device = next(net.parameters()).device
    pixels = image[:, :3] if image.shape[1] == 3 else image.repeat(1, 3, 1, 1)
    pixels = pixels.to(device).float()
    height, width = image.shape[-2:]
    with torch.inference_mode():
        if (height, width) != (size, size):
            pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        predicted = net(pixels.clamp(0, 1))
        if (height, width) != (size, size):
            predicted = F.interpolate(predicted, size=(height, width), mode="bilinear", align_corners=False)
    ctx.progress(1, 1, text="depth (MiniSD depth net)")
    return predicted.to(image.device)


def usable_range(values):
    """Per picture (B×...): (low, high, usable) where usable is false for flat or non-finite
    values. "Flat" is relative to the values' size, so tiny but varied outputs still count."""
    flat = values.flatten(1).float()
    finite = torch.isfinite(flat).all(dim=1)
    safe = torch.where(torch.isfinite(flat), flat, torch.zeros_like(flat))
    low, high = safe.amin(dim=1), safe.amax(dim=1)
    scale = torch.maximum(low.abs(), high.abs())
    usable = finite & (high - low > 1e-6 * scale) & (high > low)
    return low, high, usable


def normalise_per_image(depth):
    """Rescale each picture of a DEPTH to [0, 1] (1 = nearest); flat or non-finite → zeros."""
    low, high, usable = usable_range(depth)
    shape = (-1,) + (1,) * (depth.ndim - 1)
    low, high, usable = low.view(shape), high.view(shape), usable.view(shape)
    span = torch.where(usable, high - low, torch.ones_like(high))
    scaled = (depth.float() - low) / span
    return torch.where(usable, scaled, torch.zeros_like(scaled)).clamp(0.0, 1.0)


def _is_metric(config) -> bool:
    return getattr(config, "depth_estimation_type", None) == "metric" or getattr(config, "model_type", "") == "zoedepth"


@lru_cache(maxsize=2)
def _load_transformers_depth(source: str, stamp: float, local: bool):
    """(processor, model on pick_device()); cached by folder (and its config's mtime) or Hub id."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    processor = AutoImageProcessor.from_pretrained(source, local_files_only=local)
    model = AutoModelForDepthEstimation.from_pretrained(source, local_files_only=local)
    return processor, model.eval().to(pick_device())


def _resolve_model(model: str, ctx: RunContext):
    """A folder under a model root → (path, mtime, True); else a Hub id → (id, 0, False)."""
    if not model:
        raise NodeInputError("model", "no depth model given", expected="a folder under a model root or a Hub id")
    try:
        folder = ctx.roots.resolve_read(model, "model")
    except FileNotFoundError:
        folder = None
    if folder is not None and folder.is_dir():
        for needed, how in (("config.json", "save the model with save_pretrained(folder)"),
                            ("preprocessor_config.json", "save the image processor too: processor.save_pretrained(folder)")):
            if not (folder / needed).exists():
                raise NodeInputError("model", f"the folder has no {needed}: {how}", got=str(folder))
        return str(folder), (folder / "config.json").stat().st_mtime, True
    shown = ", ".join(str(b) for b in ctx.roots.models) or "(none configured)"
    looks_like_hub_id = model.count("/") == 1 and not model.startswith((".", "/", "~")) and ".." not in model
    if not looks_like_hub_id:
        raise NodeInputError("model", f"no model folder {model!r} under the model roots ({shown})",
                             expected="a folder with config.json + preprocessor_config.json, or a Hub id 'org/name'")
    return model, 0.0, False


def _run_transformers(image, model: str, ctx: RunContext):
    source, stamp, local = _resolve_model(model or DEFAULT_DEPTH_MODEL, ctx)
    try:
        processor, net = _load_transformers_depth(source, stamp, local)
    except (OSError, ValueError) as exc:
        where = "folder" if local else "Hub id (no such folder under the model roots either)"
        hint = "" if local else (
            " Offline? Download it once with `hf download " + source + " --local-dir "
            "models/depth/<name>` and point `model` at that folder under a model root."
        )
        raise NodeInputError("model", f"cannot load depth model from {where} {source!r}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}.{hint}") from None
    device = next(net.parameters()).device
    batch, _, height, width = image.shape
    results = []
    with torch.inference_mode():
        for index in range(batch):
            ctx.progress(index, batch, text=f"depth {index + 1}/{batch}")
            inputs = processor(images=[image_to_pil(image, index)], return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(device, next(net.parameters()).dtype)
            predicted = net(pixel_values=pixel_values).predicted_depth  # 1×h×w
            predicted = predicted.reshape(1, 1, *predicted.shape[-2:]).float()
            if _is_metric(net.config):
                predicted = 1.0 / predicted.clamp_min(1e-6)  # distance → disparity (larger = nearer)
            predicted = F.interpolate(predicted, size=(height, width), mode="bicubic", align_corners=False)
            results.append(predicted.to(image.device))
    return torch.cat(results)


@node(category="depth", name="EstimateDepth", output="depth")
def estimate_depth(
    ctx: RunContext,
    image: Image,
    backend: Annotated[
        Literal["minisd", "transformers"],
        Doc("minisd: the project's tiny depth net trained on the synthetic world (TrainDepthNet), "
            "shipped, works offline; transformers: DPT / Depth-Anything via AutoModelForDepthEstimation"),
    ] = "minisd",
    model: Annotated[
        str,
        Doc("empty = the backend's default (minisd: the shipped 'minisd-depth'; transformers: "
            f"{DEFAULT_DEPTH_MODEL} when online). minisd backend: a TrainDepthNet folder under a model "
            "root; transformers backend: a folder under a model root (config.json, "
            "preprocessor_config.json, weights) or a Hub id such as Intel/dpt-hybrid-midas"),
    ] = "",
    normalize: Annotated[
        Normalize, Doc("per_image: rescale each picture to [0, 1] (1 = nearest); none: the model's raw disparity")
    ] = "per_image",
) -> Depth:
    """Guess how far away each pixel is, from one picture.

    Output: DEPTH B×1×H×W at the image's size, larger = nearer (relative inverse depth, as
    these models predict it; metric models are converted with 1/z; the MiniSD depth net
    predicts it directly, already in [0, 1]). The model is loaded once and kept (a small
    cache keyed by folder or Hub id)."""
    if not hasattr(image, "shape") or image.ndim != 4 or image.shape[1] not in (1, 3):
        raise NodeInputError("image", "not an IMAGE tensor", expected="B×3×H×W float in [0, 1]",
                             got=str(tuple(getattr(image, "shape", ()))))
    if backend == "minisd":
        depth = _run_minisd(image, model, ctx)
    elif backend == "transformers":
        depth = _run_transformers(image, model, ctx)
    else:
        raise NodeInputError("backend", "unknown depth backend", expected="transformers or minisd", got=repr(backend))
    if normalize == "per_image":
        return normalise_per_image(depth)
    return depth


COLORMAPS = Literal["inferno", "magma", "viridis", "plasma", "turbo", "gray"]


@node(category="depth", name="DepthPreview", output="image")
def depth_preview(
    depth: Depth,
    colormap: Annotated[COLORMAPS, Doc("matplotlib colormap; inferno/magma: near = bright yellow, far = black")] = "inferno",
    normalize: Annotated[Normalize, Doc("per_image: stretch each picture to the full colour range; "
                                        "none: values are taken as already in [0, 1]")] = "per_image",
) -> Image:
    """Show a DEPTH as a colour picture: the colormap's bright end is near, dark end far."""
    import matplotlib

    if not hasattr(depth, "shape") or depth.ndim != 4 or depth.shape[1] != 1:
        raise NodeInputError("depth", "not a DEPTH tensor", expected="B×1×H×W",
                             got=str(tuple(getattr(depth, "shape", ()))))
    values = normalise_per_image(depth) if normalize == "per_image" else depth.float().nan_to_num(0.0).clamp(0.0, 1.0)
    lut = torch.as_tensor(matplotlib.colormaps[colormap](range(256))[:, :3], dtype=torch.float32, device=values.device)
    index = (values[:, 0] * 255.0).round().long().clamp(0, 255)
    return lut[index].permute(0, 3, 1, 2).contiguous()
