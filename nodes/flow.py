"""Optical flow: estimate how pixels moved between two frames, warp with it, look at it.

The FLOW convention (one convention for the whole project)
-----------------------------------------------------------
A FLOW is a float tensor B×2×H×W of pixel offsets (channel 0 = dx, channel 1 = dy; x to
the right, y down, pixel centres at integer coordinates). It is a **backward** flow:

    flow[t→t+1] at pixel p of frame t+1 is the offset to where that content was in frame t

so   frame_t+1(p) ≈ frame_t(p + flow(p))   and   ``FlowWarp(frame_t, flow) ≈ frame_t+1``.

A backward flow is what a warp needs: every output pixel knows where to read from, so
the warped picture has no holes (a forward flow would need splatting). We get it exactly,
not by negating a forward flow (Deforum's approximation): the estimators are simply asked
for the flow from frame t+1 back to frame t. If an object moves 3 px to the right between
t and t+1, the flow over that object is (-3, 0): "look 3 px to the left in the old frame".

Nodes
-----
OpticalFlow        two IMAGEs → FLOW (OpenCV DIS medium/fine, Farneback; torchvision RAFT
                   when you have its weights as a .safetensors file under a model root)
FlowWarp           IMAGE + FLOW → IMAGE (backward warp, border modes)
FlowVisualize      FLOW → IMAGE (HSV colour wheel)
FlowEndPointError  FLOW + reference FLOW → FLOAT (mean end-point error in pixels)

The sampling helpers here (`sample_image`, `pixel_grid`) are shared by the 2D/3D transform
nodes, so every warp in nodegraph uses the same coordinates and border modes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from nodegraph import Doc, NodeInputError, Range, RunContext, node
from nodegraph.lazy import lazy_import
from nodegraph.types import FileInput, Flow, Image

from .device import pick_device
from .image import image_to_uint8

torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")
np = lazy_import("numpy")

Border = Literal["border", "reflection", "zeros", "wrap"]
SampleMode = Literal["bilinear", "bicubic", "nearest"]

BORDER_DOC = (
    "what to show where the warp reads outside the picture: border = repeat the edge pixel "
    "(Deforum/OpenCV 'replicate'), reflection = mirror, zeros = black, wrap = tile"
)
MODE_DOC = "interpolation between pixels: bilinear (default), bicubic (sharper, may ring), nearest"

RAFT_HOWTO = (
    "RAFT needs weights on disk. On a machine with internet run:\n"
    "  python -c \"from torchvision.models.optical_flow import raft_large, Raft_Large_Weights; "
    "from safetensors.torch import save_file; "
    "save_file(raft_large(weights=Raft_Large_Weights.DEFAULT).state_dict(), 'raft_large.safetensors')\"\n"
    "(or raft_small / Raft_Small_Weights for the small model), copy the file under a model root "
    "(e.g. models/flow/raft_large.safetensors) and set weights_path to 'flow/raft_large.safetensors'. "
    "Pickled .pth checkpoints are refused: convert them to .safetensors as above."
)


# ---- shared sampling helpers ------------------------------------------------------------------


def pixel_grid(batch: int, height: int, width: int, device=None, dtype=None):
    """Pixel-centre coordinates (x, y), each B×H×W: x[b, i, j] = j, y[b, i, j] = i."""
    ys = torch.arange(height, device=device, dtype=dtype or torch.float32)
    xs = torch.arange(width, device=device, dtype=dtype or torch.float32)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return x.expand(batch, height, width), y.expand(batch, height, width)


def sample_image(image, x, y, border: str = "border", mode: str = "bilinear"):
    """Read `image` (B×C×H×W) at pixel coordinates x, y (each B×H'×W', pixel centres at
    integers, x right, y down). This is the one backward-warp primitive of nodegraph.

    Coordinates are normalised with align_corners=True, so an integer coordinate reads that
    pixel exactly: a whole-pixel shift is a lossless copy inside the picture."""
    out_dtype = image.dtype
    if image.dtype in (torch.float16, torch.bfloat16):
        image = image.float()  # half-precision coordinates would be off by a fraction of a pixel
    _, _, height, width = image.shape
    x = x.to(image.dtype)
    y = y.to(image.dtype)
    padding = border
    if border == "wrap":
        pad = 2  # bicubic reads two neighbours on each side
        image = F.pad(image, (pad, pad, pad, pad), mode="circular")
        x = torch.remainder(x, width) + pad
        y = torch.remainder(y, height) + pad
        height, width = height + 2 * pad, width + 2 * pad
        padding = "border"
    gx = 2.0 * x / max(width - 1, 1) - 1.0
    gy = 2.0 * y / max(height - 1, 1) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding, align_corners=True).to(out_dtype)


def _batch_pair(a, b, name_a: str, name_b: str):
    """Broadcast a batch of 1 against a batch of N; anything else must match."""
    if a.shape[-2:] != b.shape[-2:]:
        raise NodeInputError(
            name_b,
            f"{name_b} must have the same height and width as {name_a}",
            expected=f"H×W = {a.shape[-2]}×{a.shape[-1]}",
            got=f"{b.shape[-2]}×{b.shape[-1]}",
        )
    if a.shape[0] != b.shape[0]:
        if a.shape[0] == 1:
            a = a.expand(b.shape[0], *a.shape[1:])
        elif b.shape[0] == 1:
            b = b.expand(a.shape[0], *b.shape[1:])
        else:
            raise NodeInputError(
                name_b,
                f"batch sizes of {name_a} and {name_b} differ",
                expected=f"batch {a.shape[0]} (or 1)",
                got=f"batch {b.shape[0]}",
            )
    return a, b


def _check_image(image, name: str) -> None:
    if not hasattr(image, "shape") or image.ndim != 4 or image.shape[1] not in (1, 3):
        raise NodeInputError(name, "not an IMAGE tensor", expected="B×3×H×W float in [0, 1]",
                             got=str(tuple(getattr(image, "shape", ()))) or type(image).__name__)


def _check_flow(flow, name: str = "flow") -> None:
    if not hasattr(flow, "shape") or flow.ndim != 4 or flow.shape[1] != 2:
        raise NodeInputError(name, "not a FLOW tensor", expected="B×2×H×W pixel offsets",
                             got=str(tuple(getattr(flow, "shape", ()))) or type(flow).__name__)


def warp_with_flow(image, flow, border: str = "border", mode: str = "bilinear", strength: float = 1.0):
    """Backward warp: out(p) = image(p + strength·flow(p))."""
    image, flow = _batch_pair(image, flow, "image", "flow")
    flow = flow.to(device=image.device, dtype=torch.float32)
    x, y = pixel_grid(flow.shape[0], flow.shape[2], flow.shape[3], image.device, torch.float32)
    out = sample_image(image, x + strength * flow[:, 0], y + strength * flow[:, 1], border, mode)
    return out.clamp(0.0, 1.0) if mode == "bicubic" else out


def end_point_error(flow, reference, mask=None, margin: int = 0) -> float:
    """Mean end-point error in pixels: the average length of (flow - reference).

    mask (B×1×H×W or H×W, true = count) and margin (pixels ignored along every edge, where
    content enters or leaves the view and no flow can be right) restrict the average."""
    _check_flow(flow, "flow")
    _check_flow(reference, "reference")
    flow, reference = _batch_pair(flow, reference.to(flow.device, flow.dtype), "flow", "reference")
    error = (flow - reference).pow(2).sum(dim=1, keepdim=True).sqrt()
    keep = torch.ones_like(error, dtype=torch.bool)
    if mask is not None:
        keep = keep & torch.as_tensor(mask, device=error.device).bool().expand_as(error)
    if margin > 0:
        edge = torch.zeros_like(keep)
        edge[..., margin:-margin, margin:-margin] = True
        keep = keep & edge
    if not bool(keep.any()):
        raise ValueError("end_point_error: nothing left to compare after mask/margin")
    return float(error[keep].mean())


# ---- estimators -----------------------------------------------------------------------------


def _gray_uint8(image):
    """IMAGE B×C×H×W → list of H×W uint8 grey arrays (OpenCV's estimators work on grey bytes)."""
    import cv2

    arrays = image_to_uint8(image)
    if arrays.shape[-1] == 1:
        return [np.ascontiguousarray(a[:, :, 0]) for a in arrays]
    return [cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY) for a in arrays]


def _opencv_flow(prev_frame, next_frame, method: str, ctx: RunContext | None):
    import cv2

    if method in ("dis_medium", "dis_fine"):
        estimator = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        if method == "dis_fine":
            # Our "fine" setting: refine down to full resolution (the medium preset stops one
            # pyramid level above), denser patches and more gradient-descent steps.
            estimator.setFinestScale(0)
            estimator.setPatchStride(2)
            estimator.setGradientDescentIterations(50)
    flows = []
    prev_gray, next_gray = _gray_uint8(prev_frame), _gray_uint8(next_frame)
    for index, (older, newer) in enumerate(zip(prev_gray, next_gray)):
        if ctx is not None:
            ctx.progress(index, len(prev_gray), text=f"flow {index + 1}/{len(prev_gray)}")
        # Ask for the flow from the NEWER frame to the OLDER one: OpenCV's flow from a to b
        # says where each pixel of a is found in b, which for (next, prev) is our backward flow.
        if method == "farneback":
            flow = cv2.calcOpticalFlowFarneback(
                newer, older, None, pyr_scale=0.5, levels=4, winsize=15, iterations=5,
                poly_n=5, poly_sigma=1.2, flags=cv2.OPTFLOW_FARNEBACK_GAUSSIAN,
            )
        else:
            flow = estimator.calc(newer, older, None)
        flows.append(torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1))
    return torch.stack(flows).float().to(prev_frame.device)


@lru_cache(maxsize=2)
def _load_raft(path: str, stamp: float):
    """A torchvision RAFT (small or large, recognised from the state dict) on pick_device()."""
    from safetensors.torch import load_file
    from torchvision.models.optical_flow import raft_large, raft_small

    state = load_file(path)
    for build in (raft_small, raft_large):
        model = build(weights=None, progress=False)
        if set(model.state_dict()) != set(state):
            continue
        model.load_state_dict(state, strict=True)
        return model.eval().to(pick_device())
    raise ValueError("the file is not a torchvision raft_small or raft_large state dict")


def _raft_flow(prev_frame, next_frame, weights_path: str, updates: int, ctx: RunContext | None):
    if not weights_path:
        raise NodeInputError("weights_path", "method 'raft' needs RAFT weights. " + RAFT_HOWTO,
                             expected="a .safetensors file under a model root", got="''")
    if Path(weights_path).suffix.lower() != ".safetensors":
        raise NodeInputError("weights_path", "only .safetensors weights are loaded (pickle is refused). "
                             + RAFT_HOWTO, expected="*.safetensors", got=repr(weights_path))
    if ctx is None:
        raise NodeInputError("weights_path", "RAFT needs a run context to find the model roots")
    path = ctx.input_path(weights_path, "weights_path", root="model")
    try:
        model = _load_raft(str(path), path.stat().st_mtime)
    except ValueError as exc:
        raise NodeInputError("weights_path", f"{exc}. " + RAFT_HOWTO, got=str(path)) from None
    device = pick_device()
    batch, _, height, width = prev_frame.shape

    def prepare(image):
        image = image[:, :3] if image.shape[1] == 3 else image.expand(-1, 3, -1, -1)
        return image.to(device, torch.float32) * 2.0 - 1.0  # RAFT wants [-1, 1]

    # RAFT needs at least 128 px per side and sizes divisible by 8: upscale small frames
    # (and scale the flow back), then pad the rest with repeated edges (and crop it off).
    work_h, work_w = max(height, 128), max(width, 128)
    first, second = prepare(next_frame), prepare(prev_frame)  # newer → older = backward flow
    if (work_h, work_w) != (height, width):
        first = F.interpolate(first, size=(work_h, work_w), mode="bilinear", align_corners=True)
        second = F.interpolate(second, size=(work_h, work_w), mode="bilinear", align_corners=True)
    pad_h, pad_w = (-work_h) % 8, (-work_w) % 8
    if pad_h or pad_w:
        first = F.pad(first, (0, pad_w, 0, pad_h), mode="replicate")
        second = F.pad(second, (0, pad_w, 0, pad_h), mode="replicate")
    flows = []
    with torch.inference_mode():
        for index in range(batch):
            if ctx is not None:
                ctx.progress(index, batch, text=f"RAFT {index + 1}/{batch}")
            predictions = model(first[index : index + 1], second[index : index + 1], num_flow_updates=updates)
            flows.append(predictions[-1][:, :, :work_h, :work_w])
    flow = torch.cat(flows)
    if (work_h, work_w) != (height, width):
        flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=True)
        scale = torch.tensor([(width - 1) / max(work_w - 1, 1), (height - 1) / max(work_h - 1, 1)],
                             device=flow.device, dtype=flow.dtype)
        flow = flow * scale.view(1, 2, 1, 1)
    return flow.float().to(prev_frame.device)


# ---- nodes ----------------------------------------------------------------------------------


@node(category="flow", name="OpticalFlow", output="flow")
def optical_flow(
    ctx: RunContext,
    prev_frame: Annotated[Image, Doc("the earlier frame (t)")],
    next_frame: Annotated[Image, Doc("the later frame (t+1)")],
    method: Annotated[
        Literal["dis_medium", "dis_fine", "farneback", "raft"],
        Doc("dis_medium: fast; dis_fine: DIS refined to full resolution; farneback: classic "
            "dense polynomial flow; raft: a neural network (needs weights_path)"),
    ] = "dis_fine",
    weights_path: Annotated[
        str, FileInput(root="model", extensions=(".safetensors",)),
        Doc("RAFT only: torchvision raft_small/raft_large state dict as .safetensors under a model root"),
    ] = "",
    raft_iterations: Annotated[int, Range(1, 32), Doc("RAFT only: refinement steps (more = slower, finer)")] = 12,
) -> Flow:
    """Estimate the motion between two frames as a backward FLOW.

    The result at pixel p of next_frame is the offset (dx, dy) to where that content was in
    prev_frame, so FlowWarp(prev_frame, flow) ≈ next_frame. An object moving 3 px right
    gives (-3, 0) over it. OpenCV's DIS and Farneback run on grey bytes on the CPU; RAFT runs
    on the picked device and upsizes frames smaller than 128 px (and pads to a multiple of 8)
    internally, giving the flow back at the input size."""
    _check_image(prev_frame, "prev_frame")
    _check_image(next_frame, "next_frame")
    prev_frame, next_frame = _batch_pair(prev_frame, next_frame, "prev_frame", "next_frame")
    if method == "raft":
        return _raft_flow(prev_frame, next_frame, weights_path, int(raft_iterations), ctx)
    if method not in ("dis_medium", "dis_fine", "farneback"):
        raise NodeInputError("method", "unknown flow method", expected="dis_medium, dis_fine, farneback or raft",
                             got=repr(method))
    return _opencv_flow(prev_frame, next_frame, method, ctx)


@node(category="flow", name="FlowWarp", output="image")
def flow_warp(
    image: Annotated[Image, Doc("the frame to move (frame t)")],
    flow: Annotated[Flow, Doc("backward flow t→t+1 (from OpticalFlow, or a transform's flow output)")],
    border: Annotated[Border, Doc(BORDER_DOC)] = "border",
    mode: Annotated[SampleMode, Doc(MODE_DOC)] = "bilinear",
    strength: Annotated[float, Doc("multiplies the flow: 1 = full motion, 0.5 = half way, -1 = reverse-ish")] = 1.0,
) -> Image:
    """Move an image along a backward FLOW: out(p) = image(p + strength·flow(p)).

    With the flow from OpticalFlow(frame_t, frame_t+1) this predicts frame_t+1 from frame_t;
    every output pixel reads from one place in the input, so there are no holes. Where the
    read falls outside the picture, `border` decides what you see."""
    _check_image(image, "image")
    _check_flow(flow)
    return warp_with_flow(image, flow, border, mode, float(strength))


@node(category="flow", name="FlowVisualize", output="image")
def flow_visualize(
    flow: Annotated[Flow, Doc("backward flow B×2×H×W")],
    max_magnitude: Annotated[
        float, Range(0.0), Doc("offset length shown at full colour; 0 = the largest in each picture")
    ] = 0.0,
) -> Image:
    """Colour a FLOW with the usual HSV wheel: hue = direction, saturation = length.

    No motion is white; an offset pointing right (+x) is red, and the hue turns with the
    angle towards +y (down): down is yellow-green, left is cyan-blue, up is purple. Remember
    a FLOW is backward: it points to where the content came FROM, opposite to its motion."""
    import kornia

    _check_flow(flow)
    flow = flow.float()
    dx, dy = flow[:, 0], flow[:, 1]
    magnitude = torch.sqrt(dx * dx + dy * dy)
    angle = torch.remainder(torch.atan2(dy, dx), 2 * torch.pi)
    if max_magnitude > 0:
        scale = torch.full((flow.shape[0], 1, 1), float(max_magnitude), device=flow.device)
    else:
        scale = magnitude.flatten(1).amax(dim=1).clamp_min(1e-6).view(-1, 1, 1)
    saturation = (magnitude / scale).clamp(0.0, 1.0)
    hsv = torch.stack((angle, saturation, torch.ones_like(saturation)), dim=1)
    return kornia.color.hsv_to_rgb(hsv).clamp(0.0, 1.0)


@node(category="flow", name="FlowEndPointError", output="epe")
def flow_end_point_error(
    flow: Annotated[Flow, Doc("the estimated backward flow")],
    reference: Annotated[Flow, Doc("the true backward flow (e.g. from a transform node or the world)")],
    margin: Annotated[int, Range(0), Doc("pixels ignored along each edge (content entering the view)")] = 0,
) -> float:
    """Mean end-point error in pixels: the average distance between the estimated and the
    true offset. Under 1 px is good for small motions; both flows follow the same
    (backward) convention."""
    return end_point_error(flow, reference, margin=int(margin))
