"""2D and 3D camera moves for Deforum-style animation: each frame is the last one moved.

Both nodes are backward warps built on the same sampler as FlowWarp (nodes/flow.py): for
every output pixel we compute where it comes from in the input, then read there. Both also
return that mapping as a FLOW (backward, see nodes/flow.py), so FlowWarp(image, flow) gives
the same picture and the motion can be compared with an estimated optical flow.

Screen convention (shared by both nodes): x to the right, y DOWN, pixel centres at integer
coordinates, angles in degrees. Positive translation_x / translation_y move the picture's
content right / down, in 2D and in 3D alike. Every number input is a plain FLOAT, so a frame
loop can feed a keyframe schedule into any of them.

Border modes: border (repeat the edge pixel; OpenCV/Deforum call it 'replicate'),
reflection (mirror), zeros (black), wrap (tile the picture).
"""

from __future__ import annotations

import math
from typing import Annotated, NamedTuple

from nodegraph import Doc, NodeInputError, Range, node
from nodegraph.lazy import lazy_import
from nodegraph.types import Depth, Flow, Image

from .depth import normalise_per_image, usable_range
from .flow import BORDER_DOC, MODE_DOC, Border, SampleMode, _check_image, pixel_grid, sample_image

torch = lazy_import("torch")

# Deforum's unit: 3D translations (and here near/far) are divided by 200.
DEFORUM_UNIT = 200.0
# Fixed-point steps of the 3D backward mapping (see Transform3D); 4 brings smooth depth to ~0.01 px.
REPROJECT_STEPS = 4


class Warped(NamedTuple):
    image: Image
    flow: Flow


def _finish(image, x, y, border: str, mode: str) -> Warped:
    out = sample_image(image, x, y, border, mode)
    if mode == "bicubic":
        out = out.clamp(0.0, 1.0)
    base_x, base_y = pixel_grid(x.shape[0], x.shape[1], x.shape[2], x.device, x.dtype)
    flow = torch.stack((x - base_x, y - base_y), dim=1)
    return Warped(out, flow)


# ---- 2D ------------------------------------------------------------------------------------


@node(category="transform", name="Transform2D")
def transform_2d(
    image: Image,
    zoom: Annotated[float, Range(min=0.001), Doc("scale about the centre; >1 zooms in (1.02 = 2% per frame)")] = 1.0,
    angle: Annotated[float, Doc("rotation in degrees, counter-clockwise on screen")] = 0.0,
    translation_x: Annotated[float, Doc("pixels; positive moves the content right")] = 0.0,
    translation_y: Annotated[float, Doc("pixels; positive moves the content down")] = 0.0,
    center_x: Annotated[float, Doc("rotation/zoom centre, 0 = left edge, 1 = right edge")] = 0.5,
    center_y: Annotated[float, Doc("rotation/zoom centre, 0 = top edge, 1 = bottom edge")] = 0.5,
    border: Annotated[Border, Doc(BORDER_DOC)] = "border",
    mode: Annotated[SampleMode, Doc(MODE_DOC)] = "bilinear",
) -> Warped:
    """Move, rotate and zoom a picture in the image plane (Deforum's 2D mode).

    The forward motion of a content point p is  p' = c + zoom·Rot(angle)·(p + t − c):
    first the translation t = (translation_x, translation_y) in pixels, then rotation
    (degrees, counter-clockwise as seen on screen) and zoom (>1 zooms in) about the centre
    c = (center_x·(W−1), center_y·(H−1)); centre 0.5, 0.5 is the exact middle. This is the
    order of Deforum's 2D matrix, so its schedules port over with the same meaning.
    Returns the moved image and the backward FLOW of the move."""
    _check_image(image, "image")
    if not zoom > 0:
        raise NodeInputError("zoom", "zoom must be positive", expected="> 0", got=repr(zoom))
    batch, _, height, width = image.shape
    qx, qy = pixel_grid(batch, height, width, image.device, torch.float32)
    cx, cy = float(center_x) * (width - 1), float(center_y) * (height - 1)
    theta = math.radians(float(angle))
    cos, sin = math.cos(theta), math.sin(theta)
    # Inverse of the forward map: undo zoom·rotation about c, then undo the translation.
    # With y pointing down, a counter-clockwise screen rotation is the matrix [[c, s], [-s, c]].
    ux, uy = (qx - cx) / zoom, (qy - cy) / zoom
    px = cos * ux - sin * uy + cx - float(translation_x)
    py = sin * ux + cos * uy + cy - float(translation_y)
    return _finish(image, px, py, border, mode)


# ---- 3D ------------------------------------------------------------------------------------


def depth_to_z(depth, near: float, far: float):
    """DEPTH (B×1×H×W, larger = nearer) → distance z along the view axis, B×H×W, in units of
    200 Deforum lengths.

    Each picture's depth is normalised to d in [0, 1], then read as disparity between the
    planes z_near = near/200 and z_far = far/200:

        1/z = d/z_near + (1 − d)/z_far        (d = 1 → z_near, d = 0 → z_far)

    Interpolating 1/z (not z) is what "disparity" means: equal steps in d are equal steps in
    parallax. A flat, missing or non-finite depth gives z = 1 everywhere (a wall one unit
    away), Deforum's behaviour without depth."""
    near_u, far_u = near / DEFORUM_UNIT, far / DEFORUM_UNIT
    _, _, usable = usable_range(depth)
    d = normalise_per_image(depth)[:, 0]
    z = 1.0 / (d / near_u + (1.0 - d) / far_u)
    return torch.where(usable.view(-1, 1, 1), z, torch.ones_like(z))


def _rotation(rx: float, ry: float, rz: float):
    """Content rotation (3×3) for the screen convention: +x tilts content down, +y pans it
    right, +z turns it counter-clockwise; applied x first, then y, then z."""
    ax, ay, az = (math.radians(v) for v in (rx, ry, rz))

    def about_x(a):
        c, s = math.cos(a), math.sin(a)
        return torch.tensor([[1.0, 0, 0], [0, c, -s], [0, s, c]])

    def about_y(a):
        c, s = math.cos(a), math.sin(a)
        return torch.tensor([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])

    def about_z(a):
        c, s = math.cos(a), math.sin(a)
        return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])

    return about_z(-az) @ about_y(ay) @ about_x(-ax)


@node(category="transform", name="Transform3D")
def transform_3d(
    image: Image,
    depth: Annotated[Depth, Doc("depth of `image` (larger = nearer); none = flat wall at z = 1")] | None = None,
    translation_x: Annotated[float, Doc("Deforum units (1/200 of a unit); positive moves content right")] = 0.0,
    translation_y: Annotated[float, Doc("Deforum units; positive moves content down")] = 0.0,
    translation_z: Annotated[float, Doc("Deforum units; positive moves the camera forward (zoom in)")] = 0.0,
    rotation_3d_x: Annotated[float, Doc("degrees; positive tilts the view so content moves down")] = 0.0,
    rotation_3d_y: Annotated[float, Doc("degrees; positive pans the view so content moves right")] = 0.0,
    rotation_3d_z: Annotated[float, Doc("degrees; positive rolls the content counter-clockwise")] = 0.0,
    fov: Annotated[float, Range(1.0, 179.0), Doc("horizontal field of view in degrees")] = 70.0,
    near: Annotated[float, Range(min=0.001), Doc("distance of the nearest depth (Deforum units)")] = 200.0,
    far: Annotated[float, Range(min=0.001), Doc("distance of the farthest depth (Deforum units)")] = 10000.0,
    border: Annotated[Border, Doc(BORDER_DOC)] = "border",
    mode: Annotated[SampleMode, Doc(MODE_DOC)] = "bilinear",
) -> Warped:
    """Move a camera through the picture using its depth (Deforum's 3D mode).

    1. Depth → distance: z from the normalised DEPTH as disparity between near/200 and
       far/200 (see depth_to_z: 1/z = d/z_near + (1−d)/z_far); flat or missing depth → z = 1.
    2. Pinhole camera: focal length f = (W/2)/tan(fov/2) pixels, centre at the middle pixel;
       a pixel p at distance z is the 3D point P = z·K⁻¹·(p, 1).
    3. The content moves by P' = Rot·(P − C): C is the camera shift, translation/200 (x and
       y signed so positive values move the content right/down, z positive = forward), Rot
       the rotation_3d angles in degrees (x, then y, then z).
    4. Backward warp: for each output pixel q we need the input pixel p that lands on it. Its
       new distance depends on p itself, so p is found by a short fixed-point iteration
       (4 steps) starting at p = q: exact for no motion, pure rotation and flat depth.
    Pure translation_z keeps the middle pixel fixed and zooms about it (1.75 per frame at
    z = 1 → ×1.0088). Returns the image and the backward FLOW of the move."""
    _check_image(image, "image")
    if not near < far:
        raise NodeInputError("far", "far must be larger than near", expected=f"> {near}", got=repr(far))
    if not 0.0 < fov < 180.0:
        raise NodeInputError("fov", "field of view must be between 0 and 180 degrees", got=repr(fov))
    batch, _, height, width = image.shape
    device, dtype = image.device, torch.float32
    if depth is None:
        z_map = torch.ones(batch, height, width, device=device, dtype=dtype)
    else:
        if not hasattr(depth, "shape") or depth.ndim != 4 or depth.shape[1] != 1:
            raise NodeInputError("depth", "not a DEPTH tensor", expected="B×1×H×W",
                                 got=str(tuple(getattr(depth, "shape", ()))))
        if depth.shape[-2:] != image.shape[-2:]:
            raise NodeInputError("depth", "depth and image sizes differ (resize one of them first)",
                                 expected=f"H×W = {height}×{width}", got=f"{depth.shape[-2]}×{depth.shape[-1]}")
        if depth.shape[0] not in (1, batch):
            raise NodeInputError("depth", "batch sizes of depth and image differ",
                                 expected=f"batch {batch} (or 1)", got=f"batch {depth.shape[0]}")
        z_map = depth_to_z(depth.to(device), float(near), float(far)).expand(batch, height, width)

    focal = (width / 2.0) / math.tan(math.radians(float(fov)) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    rot = _rotation(float(rotation_3d_x), float(rotation_3d_y), float(rotation_3d_z)).to(device, dtype)
    shift = torch.tensor([-float(translation_x), -float(translation_y), float(translation_z)], dtype=dtype)
    shift = (shift / DEFORUM_UNIT).to(device)

    qx, qy = pixel_grid(batch, height, width, device, dtype)
    # Ray direction of each output pixel in the moved camera (z component 1).
    ray_q = torch.stack(((qx - cx) / focal, (qy - cy) / focal, torch.ones_like(qx)), dim=-1)
    z_img = z_map.unsqueeze(1)
    px, py = qx, qy
    valid = torch.ones_like(qx, dtype=torch.bool)
    for _ in range(REPROJECT_STEPS):
        z_old = sample_image(z_img, px, py, "border", "bilinear")[:, 0]
        point = torch.stack(((px - cx) / focal, (py - cy) / focal, torch.ones_like(px)), dim=-1) * z_old.unsqueeze(-1)
        z_new = ((point - shift) @ rot.T)[..., 2]  # distance of that point in the moved view
        back = (ray_q * z_new.unsqueeze(-1)) @ rot + shift  # Rot⁻¹ = Rotᵀ
        in_front = (z_new > 1e-6) & (back[..., 2] > 1e-6)
        safe_z = torch.where(in_front, back[..., 2], torch.ones_like(back[..., 2]))
        px = torch.where(in_front, focal * back[..., 0] / safe_z + cx, torch.full_like(px, -1e4))
        py = torch.where(in_front, focal * back[..., 1] / safe_z + cy, torch.full_like(py, -1e4))
        valid = in_front
    px = torch.where(valid, px, torch.full_like(px, -1e4))
    return _finish(image, px, py, border, mode)
