"""Latents: the small picture Stable Diffusion actually works on.

What this pack teaches: SD does not denoise pixels. The VAE's encoder squeezes each 8×8
block of pixels (2×2 for the tiny test VAE: the *VAE factor*) into 4 numbers, so a 512×512
picture becomes a 4×64×64 latent, 48 times smaller; its decoder turns latents back into
pixels. Latents are multiplied by the VAE's ``scaling_factor`` (0.18215 for SD 1.x) so
that they have roughly unit variance, which is what the UNet was trained on.

A LATENT is a dict ``{"samples": B×4×h×w tensor}``, optionally with ``"noise_mask"``
(B×1×H×W, 1 = repaint) for inpainting with an ordinary model, and ``"inpaint_extra"`` for
inpainting models.
"""

from __future__ import annotations

from typing import Annotated, Literal

from nodegraph import Doc, NodeInputError, Range, node
from nodegraph.lazy import lazy_import
from nodegraph.types import Image, Latent, Mask, Model, Seed, Vae

from .device import generator_for, pick_device

torch = lazy_import("torch")

# How each of SD 1.x's 4 latent channels roughly maps to R, G, B (a least-squares fit of
# decoded colours on latents, widely used for cheap previews), plus an offset.
LATENT_RGB = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)
LATENT_RGB_BIAS = (0.5, 0.5, 0.5)


def latent_preview(samples: "torch.Tensor") -> "torch.Tensor":
    """A cheap RGB picture of a latent (no VAE): a fixed 4→3 linear map. Blurry and small,
    but enough to watch the picture appear while sampling."""
    samples = samples.detach()
    if samples.shape[1] != 4:
        samples = samples[:, :4]
    weights = torch.tensor(LATENT_RGB, dtype=torch.float32, device=samples.device)
    bias = torch.tensor(LATENT_RGB_BIAS, dtype=torch.float32, device=samples.device).view(1, 3, 1, 1)
    rgb = torch.einsum("bchw,cr->brhw", samples.float(), weights) + bias
    return rgb.clamp(0, 1).cpu()


def _check_size(value: int, factor: int, name: str) -> None:
    if value % factor:
        low = value - value % factor
        raise NodeInputError(
            name, f"{name} must be a multiple of the VAE factor {factor} (each latent cell covers {factor}×{factor} pixels)",
            expected=f"a multiple of {factor}, e.g. {max(low, factor)} or {low + factor}", got=str(value),
        )


def _check_vae(vae) -> None:
    if vae is None or getattr(vae, "vae", None) is None:
        raise NodeInputError("vae", "no VAE: load one with CheckpointLoader or LoadVAE", expected="a VAE handle", got="None")


@node(category="latent", name="EmptyLatentImage")
def empty_latent_image(
    width: Annotated[int, Range(8, 8192, step=8)] = 512,
    height: Annotated[int, Range(8, 8192, step=8)] = 512,
    batch_size: Annotated[int, Range(1, 64)] = 1,
    vae: Annotated[Vae, Doc("optional: use this VAE's factor and channels (default SD: 8 and 4)")] | None = None,
) -> Latent:
    """An all-zero latent of the right size: the starting point of text-to-image (the
    sampler replaces it by pure noise). width and height are in pixels."""
    factor = vae.scale_factor if vae is not None else 8
    channels = vae.latent_channels if vae is not None else 4
    _check_size(width, factor, "width")
    _check_size(height, factor, "height")
    samples = torch.zeros(batch_size, channels, height // factor, width // factor, device=pick_device())
    return {"samples": samples}


@node(category="latent", name="VAEEncode")
def vae_encode(
    vae: Vae,
    pixels: Image,
    sample_mode: Annotated[Literal["mean", "sample"], Doc("mean = deterministic; sample = draw from the VAE's distribution")] = "mean",
    seed: Seed = 0,
) -> Latent:
    """Pixels → latent: the VAE encoder, then × scaling_factor. The encoder really outputs a
    Gaussian (mean and spread) per latent value; `mean` takes its centre."""
    _check_vae(vae)
    model = vae.vae
    _check_size(pixels.shape[-1], vae.scale_factor, "width")
    _check_size(pixels.shape[-2], vae.scale_factor, "height")
    x = pixels.to(device=model.device, dtype=model.dtype) * 2.0 - 1.0
    with torch.no_grad():
        dist = model.encode(x).latent_dist
        if sample_mode == "sample":
            noise = torch.randn(dist.mean.shape, generator=generator_for(seed), dtype=dist.mean.dtype)
            latents = dist.mean + dist.std * noise.to(dist.mean.device)
        else:
            latents = dist.mode()
    return {"samples": latents * vae.scaling_factor}


@node(category="latent", name="VAEDecode")
def vae_decode(vae: Vae, samples: Latent) -> Image:
    """Latent → pixels: divide by scaling_factor, run the VAE decoder, map [-1, 1] to [0, 1]."""
    _check_vae(vae)
    model = vae.vae
    latents = samples["samples"].to(device=model.device, dtype=model.dtype)
    with torch.no_grad():
        image = model.decode(latents / vae.scaling_factor, return_dict=False)[0]
    return (image * 0.5 + 0.5).clamp(0, 1).float()


@node(category="latent", name="SetLatentNoiseMask")
def set_latent_noise_mask(samples: Latent, mask: Mask) -> Latent:
    """Inpainting with any model: only the masked area (mask 1) is repainted; after every
    step the rest is reset to the original latent noised to the current level."""
    if mask.ndim == 3:
        mask = mask.unsqueeze(1)
    return {**samples, "noise_mask": mask}


@node(category="latent", name="InpaintLatent")
def inpaint_latent(vae: Vae, pixels: Image, mask: Mask) -> Latent:
    """For inpainting models (9-channel UNet): the latent of the picture with the masked area
    blanked, plus the mask at latent size, which the UNet reads next to the noisy latent."""
    _check_vae(vae)
    if mask.ndim == 3:
        mask = mask.unsqueeze(1)
    mask = (mask >= 0.5).to(pixels.dtype)
    masked = pixels * (1 - mask) + 0.5 * mask  # grey (0 in [-1, 1]) where repainting
    encoded = vae_encode(vae, masked)["samples"]
    small = torch.nn.functional.interpolate(mask.to(encoded), size=encoded.shape[-2:])
    return {"samples": torch.zeros_like(encoded), "inpaint_extra": torch.cat([small, encoded], dim=1)}


@node(category="latent", name="AddNoiseAtStep")
def add_noise_at_step(
    model: Model,
    samples: Latent,
    seed: Seed = 0,
    steps: Annotated[int, Range(1, 1000)] = 20,
    step: Annotated[int, Range(0, 1000), Doc("0 = the noisiest level of the schedule")] = 0,
    sampler_name: str = "ddim",
    scheduler: str = "normal",
) -> Latent:
    """The forward process, for the lesson: x_t = √ᾱ_t · x_0 + √(1−ᾱ_t) · ε (or x_0 + σ·ε for
    the Euler family), at the timestep `step` of a `steps`-step schedule. Decode the result
    to see how much of the picture survives at each level."""
    from .sampling import make_scheduler

    sched = make_scheduler(model.scheduler_config, sampler_name, scheduler)
    sched.set_timesteps(steps)
    if not 0 <= step < len(sched.timesteps):
        raise NodeInputError("step", "step outside the schedule", expected=f"0 <= step < {len(sched.timesteps)}", got=str(step))
    x0 = samples["samples"]
    noise = torch.randn(x0.shape, generator=generator_for(seed), dtype=x0.dtype).to(x0.device)
    t = sched.timesteps[step : step + 1].repeat(x0.shape[0])
    if hasattr(sched, "set_begin_index"):
        sched.set_begin_index(step)
    return {**samples, "samples": sched.add_noise(x0, noise, t)}


@node(category="latent", name="LatentPreview")
def latent_preview_node(samples: Latent) -> Image:
    """See a latent without decoding it: a fixed linear map from the 4 latent channels to
    RGB. The same picture the samplers send as progress previews."""
    return latent_preview(samples["samples"])
