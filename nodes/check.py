"""Measurements and checks: how a lesson proves that what it teaches really happened.

Measure something with a node (ImageDistance, ImageSize...), then compare it with Check.
Checks are output nodes, so running a lesson runs its checks, and because they read real
outputs a broken graph cannot pass them."""

from __future__ import annotations

import math
from typing import Annotated, Literal, NamedTuple

from nodegraph import Doc, NodeInputError, Range, RunContext, node
from nodegraph.frames import FrameStream
from nodegraph.lazy import lazy_import
from nodegraph.types import Check, Flow, Frames, Image, Mask

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


MaskInput = Annotated[Mask, Doc("optional B×1×H×W (or 1×1×H×W) mask: where to measure")]
Region = Annotated[Literal["inside", "outside"], Doc("with a mask: measure where it is 1, or where it is 0")]


def region_of(mask, like, region: str, what: str):
    """Boolean B×1×H×W selection of the pixels of `like` inside (mask > 0.5) or outside
    `mask`, with a clear error when the mask does not fit `what` (the measured input)."""
    size = tuple(like.shape[-2:])
    if not hasattr(mask, "shape") or mask.ndim != 4 or mask.shape[1] != 1 or tuple(mask.shape[-2:]) != size:
        raise NodeInputError("mask", f"not a mask of the {what}'s size", expected=f"B×1×{size[0]}×{size[1]}",
                             got=str(tuple(getattr(mask, "shape", ()))) or type(mask).__name__)
    if mask.shape[0] not in (1, like.shape[0]):
        raise NodeInputError("mask", f"batch sizes of mask and {what} differ", expected=f"batch {like.shape[0]} (or 1)",
                             got=f"batch {mask.shape[0]}")
    keep = (mask.to(like.device).float() > 0.5).expand(like.shape[0], 1, *size)
    if region == "outside":
        keep = ~keep
    if not bool(keep.any()):
        raise NodeInputError("mask", f"no pixel is {region} the mask", expected="a mask with some pixels to measure")
    return keep


def image_distance_value(a, b, metric: str, mask=None, region: str = "inside") -> float:
    """The distance between two images under `metric` (shared with other packs' checks),
    over every pixel or only those inside/outside `mask`."""
    if a.shape[-2:] != b.shape[-2:]:
        raise NodeInputError("b", "sizes differ", f"{tuple(a.shape[-2:])}", f"{tuple(b.shape[-2:])}")
    diff = a.float() - b.float()
    if mask is not None:
        keep = region_of(mask, diff, region, "image").expand_as(diff)
        diff = diff[keep]
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
    mask: MaskInput | None = None,
    region: Region = "inside",
) -> float:
    """How far apart two images are: mean absolute error, mean squared error, or PSNR
    (peak signal-to-noise ratio, 10·log10(1/MSE) for images in [0, 1]). With a mask, only
    the pixels inside it (or outside it) count: did an inpainter keep what it should?"""
    return image_distance_value(a, b, metric, mask, region)


def edge_agreement_value(edges, hint, tolerance: int = 1) -> float:
    """F1 score of two edge maps (white lines on black): an edge pixel of one counts as
    matched when the other has an edge within `tolerance` pixels. 1 = the same lines."""
    if edges.shape[-2:] != hint.shape[-2:]:
        raise NodeInputError("hint", "sizes differ", f"{tuple(edges.shape[-2:])}", f"{tuple(hint.shape[-2:])}")
    grow = lambda e: torch.nn.functional.max_pool2d(e, 2 * tolerance + 1, 1, tolerance)  # noqa: E731
    out, ref = (edges[:, :1].float() > 0.5).float(), (hint[:, :1].float() > 0.5).float()
    precision = float((out * grow(ref)).sum() / out.sum().clamp(min=1))
    recall = float((ref * grow(out)).sum() / ref.sum().clamp(min=1))
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@node(category="check", name="EdgeAgreement", output="f1")
def edge_agreement(
    edges: Annotated[Image, Doc("edges of the result, e.g. CannyEdges of the generated picture")],
    hint: Annotated[Image, Doc("the edges asked for, e.g. the ControlNet hint")],
    tolerance: Annotated[int, Range(0, 8), Doc("how many pixels apart two edges may be and still match")] = 1,
) -> float:
    """Do two edge maps draw the same lines? F1 of their edge pixels (0..1): the harmonic
    mean of "how many result edges lie on a hint edge" and "how many hint edges the result
    drew". Measures how closely a ControlNet followed its hint."""
    return edge_agreement_value(edges, hint, tolerance)


@node(category="check", name="FlowMagnitude", output="pixels")
def flow_magnitude(
    flow: Annotated[Flow, Doc("a backward FLOW B×2×H×W (from OpticalFlow, Transform2D/3D, the world)")],
    mask: MaskInput | None = None,
    region: Region = "inside",
) -> float:
    """How far the content moved: the mean length of the flow's (dx, dy) offsets, in pixels.

    With a mask, only pixels inside it (mask > 0.5) or outside it count, so you can compare
    the motion of a near object with that of the far background (parallax)."""
    if not hasattr(flow, "shape") or flow.ndim != 4 or flow.shape[1] != 2:
        raise NodeInputError("flow", "not a FLOW tensor", expected="B×2×H×W pixel offsets",
                             got=str(tuple(getattr(flow, "shape", ()))) or type(flow).__name__)
    length = flow.float().pow(2).sum(dim=1, keepdim=True).sqrt()
    if mask is None:
        return float(length.mean())
    return float(length[region_of(mask, length, region, "flow")].mean())


@node(category="check", name="FrameAt", output="image")
def frame_at(
    frames: Frames | Image,
    index: Annotated[int, Doc("which frame: 0 = the first, -1 = the last (negative counts from the end)")] = 0,
) -> Image:
    """Pick one frame of a stream as an IMAGE (1×3×H×W), to look at it or measure it.

    A stream is made while it is read: picking frame i renders frames 0..i again (a frame
    loop re-runs its body), so prefer early frames or short loops. A negative index needs a
    stream that knows its length."""
    index = int(index)
    if hasattr(frames, "dim"):
        count = int(frames.shape[0])
        if not -count <= index < count:
            raise NodeInputError("index", "no such frame", expected=f"{-count} .. {count - 1}", got=str(index))
        return frames[index : index + 1 if index != -1 else None]
    if not isinstance(frames, (FrameStream, list, tuple)):
        raise NodeInputError("frames", "needs FRAMES or an IMAGE batch", expected="FRAMES or IMAGE", got=type(frames).__name__)
    if index < 0:
        count = frames.count if isinstance(frames, FrameStream) else len(frames)
        if count is None:
            raise NodeInputError("index", "this stream does not know its length: use a positive index", got=str(index))
        if index < -count:
            raise NodeInputError("index", "no such frame", expected=f"{-count} .. {count - 1}", got=str(index))
        index += count
    seen = 0
    for item in frames:
        item = item.unsqueeze(0) if item.dim() == 3 else item
        if index < seen + item.shape[0]:
            return item[index - seen : index - seen + 1]
        seen += int(item.shape[0])
    raise NodeInputError("index", "no such frame", expected=f"0 .. {seen - 1}", got=str(index))


class VideoFacts(NamedTuple):
    frames: int
    width: int
    height: int
    fps: float
    duration: float


@node(category="check", name="VideoInfo")
def video_info(
    ctx: RunContext,
    path: Annotated[str, Doc("a video file: link VideoEncode's path, or a name under the output or input roots")],
) -> VideoFacts:
    """Read a written video back: how many frames it really holds, its size, fps and
    length in seconds (ffmpeg decodes it once). Use it to check what an encoder wrote."""
    from .video import probe_video

    try:
        found = ctx.roots.resolve_write(path)  # what a writer node just made
    except PermissionError:
        found = None
    if found is None or not found.is_file():
        found = ctx.input_path(path, "path")
    try:
        info = probe_video(found)
    except Exception as exc:  # not a video ffmpeg can read
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NodeInputError("path", f"cannot read {found.name} as a video: {reason}") from None
    return VideoFacts(info.frames, info.width, info.height, info.fps, info.duration)


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
