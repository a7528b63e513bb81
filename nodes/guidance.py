"""Classifier-free guidance (CFG): how strongly the picture follows the prompt.

What this node teaches: at every step the UNet is asked twice what noise it sees: once
with the prompt (`cond`) and once with the negative/empty prompt (`uncond`). Their
difference points "towards the prompt"; CFG walks `scale` times that far:

    noise = uncond + scale · (cond − uncond)

scale 1 is just the prompt's prediction; 7–8 is usual; large values over-saturate.
`guidance_rescale` (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are
Flawed", §3.4) pulls the result's standard deviation back towards the cond prediction's, which
tames the burnt look of high scales: 0 = off, 0.7 is the paper's choice.
"""

from __future__ import annotations

from typing import Annotated, Any

from nodegraph import Doc, Range, node
from nodegraph.lazy import lazy_import
from nodegraph.types import port_type

torch = lazy_import("torch")

NOISE = port_type("NOISE", "a noise prediction: tensor shaped like the latent samples")
Noise = Annotated[Any, NOISE]


def cfg_combine(cond: Any, uncond: Any | None, scale: float, guidance_rescale: float = 0.0) -> Any:
    """The one implementation used by KSampler and by the CFGCombine node."""
    if uncond is None:
        return cond
    noise = uncond + scale * (cond - uncond)
    if guidance_rescale > 0.0:
        dims = list(range(1, cond.ndim))
        std_text = cond.std(dim=dims, keepdim=True)
        std_cfg = noise.std(dim=dims, keepdim=True)
        rescaled = noise * (std_text / std_cfg)
        noise = guidance_rescale * rescaled + (1 - guidance_rescale) * noise
    return noise


@node(category="sampling/loop", name="CFGCombine")
def cfg_combine_node(
    cond: Annotated[Noise, Doc("noise predicted with the positive prompt")],
    uncond: Annotated[Noise, Doc("noise predicted with the negative prompt (none: no guidance)")] | None = None,
    cfg: Annotated[float, Range(0.0, 30.0, step=0.5), Doc("guidance scale")] = 8.0,
    guidance_rescale: Annotated[float, Range(0.0, 1.0, step=0.05)] = 0.0,
) -> Noise:
    """Classifier-free guidance: uncond + cfg·(cond − uncond), with optional rescale."""
    return cfg_combine(cond, uncond, cfg, guidance_rescale)
