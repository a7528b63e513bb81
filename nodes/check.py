"""Measurements and checks: how a lesson proves that what it teaches really happened.

Measure something with a node (ImageDistance, ImageSize...), then compare it with Check.
Checks are output nodes, so running a lesson runs its checks, and because they read real
outputs a broken graph cannot pass them."""

from __future__ import annotations

import math
from typing import Annotated, Literal, NamedTuple

from nodegraph import Doc, NodeInputError, node
from nodegraph.lazy import lazy_import
from nodegraph.types import Check, Image

torch = lazy_import("torch")


class Size(NamedTuple):
    width: int
    height: int
    channels: int
    batch: int


@node(category="check", name="ImageSize")
def image_size(image: Image) -> Size:
    """Read the shape of an IMAGE tensor (B×C×H×W) as numbers."""
    batch, channels, height, width = (int(d) for d in image.shape)
    return Size(width, height, channels, batch)


def image_distance_value(a, b, metric: str) -> float:
    """The distance between two images under `metric` (shared with other packs' checks)."""
    if a.shape[-2:] != b.shape[-2:]:
        raise NodeInputError("b", "sizes differ", f"{tuple(a.shape[-2:])}", f"{tuple(b.shape[-2:])}")
    diff = a.float() - b.float()
    if metric == "mae":
        return float(diff.abs().mean())
    mse = float(diff.pow(2).mean())
    if metric == "mse":
        return mse
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)  # psnr, images in [0, 1]


@node(category="check", name="ImageDistance")
def image_distance(
    a: Image,
    b: Image,
    metric: Annotated[Literal["mae", "mse", "psnr"], Doc("psnr is in dB: higher means closer")] = "mae",
) -> float:
    """How far apart two images are: mean absolute error, mean squared error, or PSNR
    (peak signal-to-noise ratio, 10·log10(1/MSE) for images in [0, 1])."""
    return image_distance_value(a, b, metric)


_OPS = {
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "==": lambda v, t: math.isclose(v, t, rel_tol=1e-6, abs_tol=1e-9),
}


@node(category="check", name="Check", output_node=True)
def check(
    value: float,
    threshold: float = 0.0,
    op: Literal["<", "<=", ">", ">=", "=="] = ">=",
    name: Annotated[str, Doc("what this check shows, in a learner's words")] = "check",
) -> Check:
    """Compare a measured value with a threshold (a number, or another measurement linked
    in) and report pass or fail. `nodegraph lessons check` and the TUI show the result."""
    passed = bool(_OPS[op](float(value), float(threshold)))
    detail = f"{value:.4g} {op} {threshold:.4g}"
    return {"name": name, "passed": passed, "value": float(value), "detail": detail}
