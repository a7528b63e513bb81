"""ControlNet: steering the *layout* of a picture with a hint image (edges, depth, pose).

What this pack teaches: a ControlNet is a trainable copy of the UNet's encoder half. It
reads the noisy latent, the prompt and a hint image, and produces one residual per UNet
resolution level; these are *added* to the UNet's own skip connections. Its last layers
were initialised to zero, so training started from "no effect" and learned only what the
hint adds.

ControlNetApply attaches a ControlNet to both prompts (positive and negative), like
ComfyUI's Apply ControlNet: ``strength`` multiplies the residuals, and the ControlNet only
acts on steps whose position in the run lies within [start_percent, end_percent]
(diffusers' ``control_guidance_start/end``: step i of n is active unless i/n < start or
(i+1)/n > end). Apply several in a row for multi-ControlNet: their residuals add up.
"""

from __future__ import annotations

from typing import Annotated, Any, NamedTuple

from nodegraph import Doc, NodeInputError, Range, node
from nodegraph.lazy import lazy_import
from nodegraph.types import Conditioning, ControlNet, Depth, Image, Vae

torch = lazy_import("torch")
kornia = lazy_import("kornia")


class ControlledPair(NamedTuple):
    positive: Conditioning
    negative: Conditioning


def _with_control(conditioning: Any, control: dict, input_name: str) -> list[dict]:
    if not isinstance(conditioning, list) or not conditioning:
        raise NodeInputError(input_name, "not a CONDITIONING", expected="output of CLIPTextEncode")
    return [{**entry, "controls": list(entry.get("controls", [])) + [control]} for entry in conditioning]


@node(category="conditioning/controlnet", name="ControlNetApply")
def controlnet_apply(
    positive: Conditioning,
    negative: Conditioning,
    control_net: ControlNet,
    image: Annotated[Image, Doc("the hint (edges, depth...) at the picture's size, values 0..1")],
    strength: Annotated[float, Range(0.0, 10.0, step=0.01)] = 1.0,
    start_percent: Annotated[float, Range(0.0, 1.0, step=0.001)] = 0.0,
    end_percent: Annotated[float, Range(0.0, 1.0, step=0.001)] = 1.0,
    vae: Annotated[Vae, Doc("optional: checks the ControlNet fits this VAE's factor")] | None = None,
) -> ControlledPair:
    """Attach a ControlNet and its hint image to both prompts."""
    if start_percent > end_percent:
        raise NodeInputError("end_percent", "end_percent is before start_percent",
                             expected=f">= {start_percent}", got=str(end_percent))
    if vae is not None and control_net.downscale != vae.scale_factor:
        raise NodeInputError(
            "control_net",
            "this ControlNet's hint encoder shrinks images by a different factor than the VAE, "
            "so its features cannot line up with the latent",
            expected=f"downscale {vae.scale_factor} (the VAE factor)", got=f"downscale {control_net.downscale}",
        )
    control = {"net": control_net, "image": image, "strength": float(strength),
               "start": float(start_percent), "end": float(end_percent)}
    return ControlledPair(_with_control(positive, control, "positive"), _with_control(negative, control, "negative"))


def _hint(control: dict, latents_shape: Any, device: Any, dtype: Any) -> Any:
    net = control["net"]
    factor = net.downscale
    image = control["image"]
    want = (latents_shape[-2] * factor, latents_shape[-1] * factor)
    if tuple(image.shape[-2:]) != want:
        raise NodeInputError(
            "positive",
            f"the ControlNet hint image does not match the latent: this ControlNet turns a {want[1]}×{want[0]} "
            f"hint into the {latents_shape[-1]}×{latents_shape[-2]} latent (factor {factor})",
            expected=f"a hint of {want[1]}×{want[0]} pixels", got=f"{image.shape[-1]}×{image.shape[-2]}",
        )
    return image.to(device=device, dtype=dtype)


def control_residuals(state: Any, x_in: Any, t: Any, context: Any, controls: list[list[dict]], batch: int) -> dict:
    """Down/mid residuals for one batched UNet call. `controls` has one list per conditioning
    group in the batch (each group is `batch` rows). A control shared by every group runs once
    on the whole batch (like diffusers); otherwise its rows get zeros where it is absent."""
    i, n = state.index, state.total
    down, mid = None, None
    seen: list[int] = []
    for group_controls in controls:
        for control in group_controls:
            if id(control) in seen:
                continue
            seen.append(id(control))
            keep = 1.0 - float(i / n < control["start"] or (i + 1) / n > control["end"])
            scale = control["strength"] * keep
            if scale == 0.0:
                continue
            rows = [g for g, gc in enumerate(controls) if any(c is control for c in gc)]
            net = control["net"].controlnet
            hint = _hint(control, x_in.shape, x_in.device, net.dtype)
            if hint.shape[0] != batch:
                hint = hint.repeat_interleave(batch // hint.shape[0] if batch % hint.shape[0] == 0 else 1, dim=0)[:batch]
            index = torch.cat([torch.arange(g * batch, (g + 1) * batch) for g in rows]).to(x_in.device)
            sub_x = x_in if len(rows) == len(controls) else x_in[index]
            sub_ctx = context if len(rows) == len(controls) else context[index]
            hints = torch.cat([hint] * len(rows)) if len(rows) > 1 else hint
            with torch.no_grad():
                d, m = net(sub_x, t, encoder_hidden_states=sub_ctx, controlnet_cond=hints,
                           conditioning_scale=scale, return_dict=False)
            if len(rows) != len(controls):
                d = [torch.zeros((x_in.shape[0],) + r.shape[1:], dtype=r.dtype, device=r.device).index_copy(0, index, r) for r in d]
                m = torch.zeros((x_in.shape[0],) + m.shape[1:], dtype=m.dtype, device=m.device).index_copy(0, index, m)
            if down is None:
                down, mid = list(d), m
            else:
                down = [a + b for a, b in zip(down, d)]
                mid = mid + m
    if down is None:
        return {}
    return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}


@node(category="conditioning/controlnet", name="CannyEdges")
def canny_edges(
    image: Image,
    low_threshold: Annotated[float, Range(0.0, 1.0, step=0.01)] = 0.1,
    high_threshold: Annotated[float, Range(0.0, 1.0, step=0.01)] = 0.2,
) -> Image:
    """Canny edge detection (kornia): the classic ControlNet hint. White lines on black
    where the brightness changes sharply; the thresholds decide which edges survive."""
    if low_threshold > high_threshold:
        raise NodeInputError("high_threshold", "high_threshold is below low_threshold",
                             expected=f">= {low_threshold}", got=str(high_threshold))
    _, edges = kornia.filters.canny(image.float(), low_threshold, high_threshold)
    return edges.clamp(0, 1).repeat(1, 3, 1, 1)


@node(category="conditioning/controlnet", name="DepthHint")
def depth_hint(depth: Annotated[Depth, Doc("from a depth node: larger = nearer")]) -> Image:
    """Turn a DEPTH map into the hint image a depth ControlNet expects: near is white, far is
    black, stretched to use the whole 0..1 range (a flat map becomes mid-grey)."""
    low = depth.amin(dim=(1, 2, 3), keepdim=True)
    high = depth.amax(dim=(1, 2, 3), keepdim=True)
    span = high - low
    scaled = torch.where(span > 0, (depth - low) / span.clamp_min(1e-12), torch.full_like(depth, 0.5))
    return scaled.float().clamp(0, 1).repeat(1, 3, 1, 1)
