"""Sampling: turning noise into a picture, one denoising step at a time.

What this pack teaches. Stable Diffusion was trained to *predict the noise* in a noisy
latent at any of 1000 noise levels (timesteps). Sampling runs that backwards:

1. start from random noise scaled to the largest noise level (or, for img2img, from an
   encoded picture with some noise added);
2. each step: ask the UNet what noise it sees (**PredictNoise**, once with the prompt and
   once with the negative prompt), steer with **CFGCombine**, and let the scheduler remove
   a part of that noise (**SchedulerStep**);
3. after the last step the latent is clean: VAEDecode turns it into pixels.

`KSampler` does all of this in one node, with ComfyUI's inputs and names. The same loop,
opened up, is PrepareSampling → (PredictNoise → CFGCombine → SchedulerStep) × steps; both
call the very same functions below, so they give bit-identical latents.

**Sampler names** (ComfyUI → diffusers scheduler class): euler → EulerDiscreteScheduler,
euler_ancestral → EulerAncestralDiscreteScheduler, heun → HeunDiscreteScheduler, lms →
LMSDiscreteScheduler, dpm_2 → KDPM2DiscreteScheduler, dpm_2_ancestral →
KDPM2AncestralDiscreteScheduler, dpmpp_2m → DPMSolverMultistepScheduler (dpmsolver++),
dpmpp_2m_sde → the same with sde-dpmsolver++, dpmpp_sde → DPMSolverSDEScheduler (needs the
torchsde package), ddim, ddpm, uni_pc, deis, lcm → their namesakes. **Schedules**: normal =
the scheduler's own spacing, karras / exponential / beta = Karras / exponential / beta sigma
spacing, simple and sgm_uniform = "trailing" timestep spacing.

**Denoise** (ComfyUI's meaning): with steps S and denoise d < 1 a schedule of int(S/d) steps
is built and only its last S steps run, starting from the input latent noised to that
level. So the number of UNet calls is always `steps`. diffusers' img2img `strength` s with
`num_inference_steps` N runs only int(N·s) steps of an N-step schedule: it equals our
steps = int(N·s), denoise = steps/N. Deforum's `strength` is the part of the picture
*kept*: denoise = 1 − Deforum strength.

Text-to-image starts from an all-zero latent (EmptyLatentImage): then the start is pure
noise × the scheduler's `init_noise_sigma` (as StableDiffusionPipeline does); any other
latent is noised with `scheduler.add_noise` at the first timestep (as
StableDiffusionImg2ImgPipeline does). Noise comes from a CPU generator seeded with `seed`,
the same generator then feeds the ancestral/SDE samplers, so a seed gives the same picture
as diffusers with ``torch.Generator("cpu").manual_seed(seed)``.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NamedTuple

from nodegraph import Doc, NodeInputError, Range, RunContext, node
from nodegraph.lazy import lazy_import
from nodegraph.types import Conditioning, Latent, Model, Seed, port_type

from .device import generator_for
from .guidance import Noise, cfg_combine

torch = lazy_import("torch")

SAMPLING = port_type("SAMPLING", "a sampling run in progress: scheduler, timesteps, current latent, generator")
Sampling = Annotated[Any, SAMPLING]

# ComfyUI name → (diffusers class, extra config)
SAMPLERS: dict[str, tuple[str, dict]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "dpm_2": ("KDPM2DiscreteScheduler", {}),
    "dpm_2_ancestral": ("KDPM2AncestralDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_sde": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "dpmpp_sde": ("DPMSolverSDEScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
    "uni_pc": ("UniPCMultistepScheduler", {}),
    "deis": ("DEISMultistepScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}
SCHEDULES: dict[str, dict] = {
    "normal": {},
    "karras": {"use_karras_sigmas": True},
    "exponential": {"use_exponential_sigmas": True},
    "beta": {"use_beta_sigmas": True},
    "simple": {"timestep_spacing": "trailing"},
    "sgm_uniform": {"timestep_spacing": "trailing"},
}
SamplerName = Literal[
    "euler", "euler_ancestral", "heun", "lms", "dpm_2", "dpm_2_ancestral", "dpmpp_2m", "dpmpp_2m_sde",
    "dpmpp_sde", "ddim", "ddpm", "uni_pc", "deis", "lcm",
]
ScheduleName = Literal["normal", "karras", "exponential", "beta", "simple", "sgm_uniform"]


def make_scheduler(config: dict, sampler_name: str, scheduler: str = "normal") -> Any:
    """A fresh diffusers scheduler for one sampling run (schedulers keep state: never share one)."""
    diffusers = lazy_import("diffusers")
    if sampler_name not in SAMPLERS:
        raise NodeInputError(
            "sampler_name", f"unknown sampler {sampler_name!r}",
            expected="one of: " + ", ".join(SAMPLERS), got=repr(sampler_name),
        )
    if scheduler not in SCHEDULES:
        raise NodeInputError(
            "scheduler", f"unknown scheduler {scheduler!r}",
            expected="one of: " + ", ".join(SCHEDULES), got=repr(scheduler),
        )
    class_name, extra = SAMPLERS[sampler_name]
    if sampler_name == "dpmpp_sde":
        import importlib.util

        if importlib.util.find_spec("torchsde") is None:
            raise NodeInputError("sampler_name", "dpmpp_sde needs the torchsde package, which is not installed")
    cls = getattr(diffusers, class_name)
    accepted = inspect.signature(cls.__init__).parameters
    options = dict(extra)
    for key, value in SCHEDULES[scheduler].items():
        if key not in accepted:
            able = [n for n, (c, _) in SAMPLERS.items() if key in inspect.signature(getattr(diffusers, c).__init__).parameters]
            raise NodeInputError(
                "scheduler", f"sampler {sampler_name!r} ({class_name}) has no {scheduler!r} schedule",
                expected=f"'normal', or a sampler that supports it: {', '.join(able)}", got=scheduler,
            )
        options[key] = value
    return cls.from_config(config, **options)


# ---- the state of one sampling run ------------------------------------------------------------


@dataclass(eq=False)
class SamplingState:
    model: Any
    scheduler: Any
    timesteps: Any  # the timesteps this run visits, in order
    latents: Any  # current x_t
    generator: Any
    index: int = 0  # next position in timesteps
    noise: Any = None
    init_latents: Any = None  # clean input latent (for inpainting masks)
    noise_mask: Any = None  # latent-sized mask, 1 = repaint
    extra_step: dict = field(default_factory=dict)
    inpaint_extra: Any = None  # mask + masked-image latent for 9-channel inpainting UNets

    @property
    def total(self) -> int:
        return len(self.timesteps)

    @property
    def done(self) -> bool:
        return self.index >= len(self.timesteps)

    @property
    def timestep(self) -> Any:
        return self.timesteps[self.index]

    def copy(self) -> "SamplingState":
        """An independent copy (the scheduler's multistep history and the generator included),
        so a node never changes a state another node may still read."""
        generator = torch.Generator(self.generator.device)
        generator.set_state(self.generator.get_state())
        clone = copy.copy(self)
        clone.scheduler = copy.deepcopy(self.scheduler)
        clone.generator = generator
        clone.extra_step = {k: (generator if v is self.generator else v) for k, v in self.extra_step.items()}
        return clone


def _latent_mask(mask: Any, latents: Any) -> Any:
    if mask is None:
        return None
    mask = mask.to(latents.device, latents.dtype)
    if mask.ndim == 3:
        mask = mask.unsqueeze(1)
    if mask.shape[-2:] != latents.shape[-2:]:
        mask = torch.nn.functional.interpolate(mask, size=latents.shape[-2:], mode="nearest")
    return mask


def prepare_sampling(
    model: Any,
    latent_image: dict,
    seed: int,
    steps: int,
    sampler_name: str,
    scheduler: str,
    denoise: float = 1.0,
    start_at_step: int = 0,
    end_at_step: int | None = None,
    add_noise: bool = True,
) -> SamplingState:
    """Build the scheduler, pick the timesteps, draw the noise and noise the input latent."""
    if not isinstance(latent_image, dict) or "samples" not in latent_image:
        raise NodeInputError("latent_image", "not a LATENT", expected="a dict with 'samples'", got=type(latent_image).__name__)
    if not 0.0 < denoise <= 1.0:
        raise NodeInputError("denoise", "denoise must be in (0, 1]", expected="0 < denoise <= 1", got=str(denoise))
    sched = make_scheduler(model.scheduler_config, sampler_name, scheduler)
    unet = model.unet
    device, dtype = unet.device, unet.dtype
    samples = latent_image["samples"].to(device=device, dtype=dtype)
    expected_channels = 4 if model.is_inpaint else model.in_channels
    if samples.shape[1] != expected_channels:
        raise NodeInputError(
            "latent_image", "the latent has the wrong number of channels for this model",
            expected=f"{expected_channels} channels", got=f"{samples.shape[1]}",
        )
    if denoise < 1.0:
        total = int(steps / denoise)
        begin = total - steps
        end = total
    else:
        total = steps
        begin = start_at_step
        end = steps if end_at_step is None else min(end_at_step, steps)
    sched.set_timesteps(total, device=device)
    order = getattr(sched, "order", 1)
    timesteps = sched.timesteps[begin * order : end * order] if order == 1 or end < total else sched.timesteps[begin * order :]
    if begin > 0 and hasattr(sched, "set_begin_index"):
        sched.set_begin_index(begin * order)

    generator = generator_for(seed)
    noise = torch.randn(samples.shape, generator=generator, dtype=dtype, device="cpu").to(device)
    if not add_noise or len(timesteps) == 0:
        latents = samples
    elif begin == 0 and not bool(samples.any()):
        latents = noise * sched.init_noise_sigma  # text-to-image: pure noise
    else:
        latents = sched.add_noise(samples, noise, timesteps[:1].repeat(samples.shape[0]))

    extra = {}
    accepted = inspect.signature(sched.step).parameters
    if "eta" in accepted:
        extra["eta"] = 0.0
    if "generator" in accepted:
        extra["generator"] = generator
    mask = _latent_mask(latent_image.get("noise_mask"), samples)
    inpaint_extra = None
    if model.is_inpaint:
        inpaint_extra = latent_image.get("inpaint_extra")
        if inpaint_extra is None:
            raise NodeInputError(
                "latent_image", "an inpainting model (9 input channels) needs a latent from InpaintLatent "
                "(it carries the mask and the masked picture's latent)",
            )
        inpaint_extra = inpaint_extra.to(device=device, dtype=dtype)
        mask = None  # the inpainting UNet repaints by itself; no blending needed
    return SamplingState(model, sched, timesteps, latents, generator, 0, noise, samples, mask, extra, inpaint_extra)


def _embeds(conditioning: Any, batch: int, input_name: str) -> list[Any]:
    if not isinstance(conditioning, list) or not conditioning or "embeds" not in conditioning[0]:
        raise NodeInputError(input_name, "not a CONDITIONING", expected="output of CLIPTextEncode", got=type(conditioning).__name__)
    out = []
    for entry in conditioning:
        embeds = entry["embeds"]
        if embeds.shape[0] != batch:
            embeds = embeds.repeat(batch // embeds.shape[0], 1, 1) if batch % embeds.shape[0] == 0 else embeds[:1].repeat(batch, 1, 1)
        out.append(embeds)
    return out


def _control_residuals(state: SamplingState, x_in: Any, t: Any, context: Any, controls: list[list[dict]], batch: int):
    """Sum of the ControlNet residuals for the batch (one control list per conditioning entry)."""
    from .controlnet import control_residuals

    return control_residuals(state, x_in, t, context, controls, batch)


def predict_noise(state: SamplingState, positive: Any, negative: Any | None = None) -> tuple[Any, Any | None]:
    """One UNet call: the noise seen in the current latent, with the positive prompt and
    (when given) with the negative one, batched together as [negative, positive] like diffusers.
    Several entries in a conditioning (ConditioningCombine) are predicted and averaged."""
    unet = state.model.unet
    x = state.latents
    t = state.timestep
    batch = x.shape[0]
    pos = _embeds(positive, batch, "positive")
    neg = _embeds(negative, batch, "negative") if negative is not None else []
    groups = neg + pos
    controls = [e.get("controls", []) for e in (list(negative) if negative is not None else []) + list(positive)]
    x_in = state.scheduler.scale_model_input(torch.cat([x] * len(groups)) if len(groups) > 1 else x, t)
    if state.model.is_inpaint:
        x_in = torch.cat([x_in, _inpaint_extra(state, len(groups))], dim=1)
    with torch.no_grad():
        if len({g.shape[1] for g in groups}) == 1:
            context = torch.cat(groups).to(x.dtype)
            residuals = _control_residuals(state, x_in[:, :4], t, context, controls, batch) if any(controls) else {}
            eps = unet(x_in, t, encoder_hidden_states=context, return_dict=False, **residuals)[0]
            preds = list(eps.chunk(len(groups)))
        else:  # different prompt lengths cannot share a batch
            preds = []
            for number, group in enumerate(groups):
                part = x_in[number * batch : (number + 1) * batch]
                ctrl = [controls[number]]
                residuals = _control_residuals(state, part[:, :4], t, group, ctrl, batch) if any(ctrl) else {}
                preds.append(unet(part, t, encoder_hidden_states=group.to(x.dtype), return_dict=False, **residuals)[0])
    uncond_preds, cond_preds = preds[: len(neg)], preds[len(neg) :]
    cond = cond_preds[0] if len(cond_preds) == 1 else torch.stack(cond_preds).mean(0)
    uncond = None
    if uncond_preds:
        uncond = uncond_preds[0] if len(uncond_preds) == 1 else torch.stack(uncond_preds).mean(0)
    return cond, uncond


def _inpaint_extra(state: SamplingState, copies: int) -> Any:
    """Inpainting UNets also read the mask and the masked picture's latent (5 extra channels)."""
    extra = state.inpaint_extra
    return torch.cat([extra] * copies) if copies > 1 else extra


def scheduler_step(state: SamplingState, noise_pred: Any, to_clean: bool = False) -> SamplingState:
    """Let the scheduler remove predicted noise: x_t → x_(t-1). Changes `state` in place.
    With `to_clean` the step jumps to the scheduler's estimate of the clean latent
    (`pred_original_sample`): for Euler that is exactly a step down to noise level 0."""
    t = state.timestep
    out = state.scheduler.step(noise_pred, t, state.latents, **state.extra_step, return_dict=True)
    clean = getattr(out, "pred_original_sample", None) if to_clean else None
    state.latents = clean if clean is not None else out.prev_sample
    if state.noise_mask is not None and not state.model.is_inpaint:
        # keep the unmasked area: the original latent, noised to the level of the next step
        known = state.init_latents
        if state.index + 1 < len(state.timesteps):
            next_t = state.timesteps[state.index + 1 : state.index + 2]
            known = state.scheduler.add_noise(known, state.noise, next_t.repeat(known.shape[0]))
        state.latents = (1 - state.noise_mask) * known + state.noise_mask * state.latents
    state.index += 1
    return state


def _result(state: SamplingState, latent_image: dict) -> dict:
    out = {k: v for k, v in latent_image.items() if k != "samples"}
    out["samples"] = state.latents
    return out


def run_sampling(
    state: SamplingState,
    positive: Any,
    negative: Any,
    cfg: float,
    guidance_rescale: float = 0.0,
    ctx: RunContext | None = None,
    finish_clean: bool = False,
) -> SamplingState:
    """The fused loop: predict → CFG → step, reporting progress with a preview each step."""
    from .latent import latent_preview

    use_negative = negative if cfg != 1.0 else None  # ComfyUI: cfg 1 skips the negative pass
    total = state.total
    with torch.no_grad():
        while not state.done:
            cond, uncond = predict_noise(state, positive, use_negative)
            last = state.index == total - 1
            scheduler_step(state, cfg_combine(cond, uncond, cfg, guidance_rescale), to_clean=finish_clean and last)
            if ctx is not None:
                ctx.progress(state.index, total, preview=latent_preview(state.latents))
    return state


# ---- nodes ----------------------------------------------------------------------------------------

StepsInput = Annotated[int, Range(1, 10000), Doc("how many denoising steps (UNet calls per prompt)")]
CfgInput = Annotated[float, Range(0.0, 30.0, step=0.5), Doc("classifier-free guidance scale")]
DenoiseInput = Annotated[float, Range(0.0, 1.0, step=0.01), Doc("1 = from pure noise; less keeps more of the input latent")]


@node(category="sampling", name="KSampler")
def ksampler(
    model: Model,
    positive: Conditioning,
    negative: Conditioning,
    latent_image: Latent,
    ctx: RunContext,
    seed: Seed = 0,
    steps: StepsInput = 20,
    cfg: CfgInput = 8.0,
    sampler_name: Annotated[SamplerName, Doc("the solver (see the pack docs for the diffusers class)")] = "euler",
    scheduler: Annotated[ScheduleName, Doc("how the noise levels are spaced")] = "normal",
    denoise: DenoiseInput = 1.0,
    guidance_rescale: Annotated[float, Range(0.0, 1.0, step=0.05)] = 0.0,
) -> Latent:
    """Denoise a latent in `steps` steps, guided by the prompts: the whole loop in one node.
    With denoise < 1 it runs the last `steps` steps of a longer schedule (img2img)."""
    state = prepare_sampling(model, latent_image, seed, steps, sampler_name, scheduler, denoise)
    return _result(run_sampling(state, positive, negative, cfg, guidance_rescale, ctx), latent_image)


@node(category="sampling", name="KSamplerAdvanced")
def ksampler_advanced(
    model: Model,
    positive: Conditioning,
    negative: Conditioning,
    latent_image: Latent,
    ctx: RunContext,
    add_noise: Annotated[bool, Doc("noise the input first (off when continuing another sampler's work)")] = True,
    noise_seed: Seed = 0,
    steps: StepsInput = 20,
    cfg: CfgInput = 8.0,
    sampler_name: SamplerName = "euler",
    scheduler: ScheduleName = "normal",
    start_at_step: Annotated[int, Range(0, 10000)] = 0,
    end_at_step: Annotated[int, Range(0, 10000)] = 10000,
    return_with_leftover_noise: Annotated[bool, Doc("stop early and keep the remaining noise")] = False,
) -> Latent:
    """Run only steps start_at_step … end_at_step of a `steps`-step schedule. Two of these
    in a row (the first returning its leftover noise, the second with add_noise off) give
    the same picture as one KSampler: the basis of refiner and hand-off workflows."""
    if start_at_step >= min(end_at_step, steps):
        return dict(latent_image)
    state = prepare_sampling(
        model, latent_image, noise_seed, steps, sampler_name, scheduler, 1.0, start_at_step, end_at_step, add_noise
    )
    finish_clean = not return_with_leftover_noise and end_at_step < steps
    state = run_sampling(state, positive, negative, cfg, 0.0, ctx, finish_clean=finish_clean)
    return _result(state, latent_image)


class PreparedSampling(NamedTuple):
    sampling: Sampling
    latent: Latent


@node(category="sampling/loop", name="PrepareSampling")
def prepare_sampling_node(
    model: Model,
    latent_image: Latent,
    seed: Seed = 0,
    steps: StepsInput = 20,
    sampler_name: SamplerName = "euler",
    scheduler: ScheduleName = "normal",
    denoise: DenoiseInput = 1.0,
) -> PreparedSampling:
    """Start the opened-up loop: build the scheduler, list its timesteps, draw the starting
    noise. Then wire PredictNoise → CFGCombine → SchedulerStep once per step."""
    state = prepare_sampling(model, latent_image, seed, steps, sampler_name, scheduler, denoise)
    return PreparedSampling(state, {**latent_image, "samples": state.latents})


class NoisePair(NamedTuple):
    cond: Noise
    uncond: Noise


@node(category="sampling/loop", name="PredictNoise")
def predict_noise_node(
    sampling: Sampling,
    positive: Conditioning,
    negative: Conditioning | None = None,
) -> NoisePair:
    """One UNet call: what noise does the model see in the current latent at this timestep,
    with the positive prompt (cond) and with the negative prompt (uncond)?"""
    state = sampling.copy()  # scale_model_input may touch scheduler state: keep the input pristine
    if state.done:
        raise NodeInputError("sampling", "all steps of this sampling run are done")
    return NoisePair(*predict_noise(state, positive, negative))


class Stepped(NamedTuple):
    sampling: Sampling
    latent: Latent


@node(category="sampling/loop", name="SchedulerStep")
def scheduler_step_node(sampling: Sampling, noise: Noise, ctx: RunContext) -> Stepped:
    """Remove the predicted noise for one step (x_t → x_t-1) with the scheduler's update rule."""
    from .latent import latent_preview

    if sampling.done:
        raise NodeInputError("sampling", "all steps of this sampling run are done")
    state = sampling.copy()
    if hasattr(state.scheduler, "is_scale_input_called"):
        state.scheduler.is_scale_input_called = True  # PredictNoise scaled the input on its own copy
    state = scheduler_step(state, noise)
    ctx.progress(state.index, state.total, preview=latent_preview(state.latents))
    return Stepped(state, {"samples": state.latents})


def noise_levels(scheduler: Any) -> list[float]:
    """The noise level σ at each step of a scheduler's run, as a number every sampler shares:
    σ = √((1 − ᾱ_t) / ᾱ_t), the noise-to-signal ratio (the Euler family stores it directly)."""
    if getattr(scheduler, "sigmas", None) is not None and len(scheduler.sigmas) == len(scheduler.timesteps) + 1:
        return [float(s) for s in scheduler.sigmas[:-1]]
    alphas = scheduler.alphas_cumprod[scheduler.timesteps.long()]
    return [float(s) for s in ((1 - alphas) / alphas).sqrt()]


@node(category="sampling", name="NoiseSchedulePlot", output="path")
def noise_schedule_plot(
    model: Model,
    ctx: RunContext,
    steps: StepsInput = 20,
    sampler_name: Annotated[SamplerName, Doc("whose schedule to draw (the Euler family supports every spacing)")] = "euler",
    filename: Annotated[str, Doc("PNG under the output root")] = "noise_schedule.png",
) -> str:
    """Plot how much noise is left at each of `steps` steps (σ, log scale), once per spacing
    (normal, karras, exponential...). Every spacing starts at the model's noisiest level and
    ends near zero; they differ in where they spend their steps: karras spends more of them
    on the small, detail-making noise levels at the end."""
    lines = []
    for name in SCHEDULES:
        try:
            sched = make_scheduler(model.scheduler_config, sampler_name, name)
        except NodeInputError:
            continue  # this sampler has no such spacing
        sched.set_timesteps(steps)
        lines.append((name, range(len(sched.timesteps)), noise_levels(sched), {"marker": ".", "lw": 1.2}))
    if not filename.lower().endswith(".png"):
        filename += ".png"
    path = ctx.output_path(filename, "filename")
    from .plots import save_line_plot

    save_line_plot(path, lines, xlabel="step", ylabel="noise level σ", log_y=True,
                   title=f"{sampler_name}: noise left at each of {steps} steps")
    return str(ctx.wrote(path))
