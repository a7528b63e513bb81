"""Our nodes compute what diffusers' pipelines compute, on the same tiny components."""

from __future__ import annotations

import pytest

from nodegraph.nodes.latent import empty_latent_image, vae_decode, vae_encode
from nodegraph.nodes.models import checkpoint_loader
from nodegraph.nodes.sampling import ksampler
from nodegraph.nodes.text import clip_text_encode

PROMPT = "a photo of an astronaut riding a horse"
NEGATIVE = "blurry, low quality"
SEED = 1234
SIZE = 64  # the tiny VAE has factor 2: a 32×32 latent


def _scheduler_for(name, config):
    import diffusers

    if name == "euler":
        return diffusers.EulerDiscreteScheduler.from_config(config)
    if name == "euler_ancestral":
        return diffusers.EulerAncestralDiscreteScheduler.from_config(config)
    if name == "dpmpp_2m+karras":
        return diffusers.DPMSolverMultistepScheduler.from_config(
            config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True
        )
    if name == "ddim":
        return diffusers.DDIMScheduler.from_config(config)
    raise KeyError(name)


def ours_txt2img(ctx, sampler_name, scheduler, steps=20, cfg=7.5, clip_skip=1, guidance_rescale=0.0):
    model, clip, vae = checkpoint_loader("tiny-sd", ctx)
    positive = clip_text_encode(clip, PROMPT, clip_skip=clip_skip)
    negative = clip_text_encode(clip, NEGATIVE, clip_skip=1)
    latent = empty_latent_image(SIZE, SIZE, 1, vae=vae)
    out = ksampler(model, positive, negative, latent, ctx, seed=SEED, steps=steps, cfg=cfg,
                   sampler_name=sampler_name, scheduler=scheduler, guidance_rescale=guidance_rescale)
    return vae_decode(vae, out)


def theirs_txt2img(pipe, name, steps=20, cfg=7.5, clip_skip=None, guidance_rescale=0.0):
    import torch

    pipe.scheduler = _scheduler_for(name, pipe.base_scheduler_config)
    generator = torch.Generator("cpu").manual_seed(SEED)
    return pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps, guidance_scale=cfg,
                generator=generator, height=SIZE, width=SIZE, output_type="pt", clip_skip=clip_skip,
                guidance_rescale=guidance_rescale).images


@pytest.mark.parametrize(
    "name, sampler_name, scheduler",
    [
        ("euler", "euler", "normal"),
        ("euler_ancestral", "euler_ancestral", "normal"),
        ("dpmpp_2m+karras", "dpmpp_2m", "karras"),
        ("ddim", "ddim", "normal"),
    ],
)
def test_txt2img_matches_stable_diffusion_pipeline(ctx, tiny_pipe, name, sampler_name, scheduler):
    ours = ours_txt2img(ctx, sampler_name, scheduler)
    theirs = theirs_txt2img(tiny_pipe, name)
    assert ours.shape == theirs.shape == (1, 3, SIZE, SIZE)
    diff = (ours - theirs).abs().max().item()
    print(f"txt2img {name}: max abs diff {diff:.3g}")
    assert diff <= 1e-4
    # and the sampler really did something: a different seed gives a different picture
    assert ours.std() > 0


def test_guidance_rescale_matches(ctx, tiny_pipe):
    ours = ours_txt2img(ctx, "euler", "normal", steps=6, guidance_rescale=0.7)
    theirs = theirs_txt2img(tiny_pipe, "euler", steps=6, guidance_rescale=0.7)
    diff = (ours - theirs).abs().max().item()
    print(f"txt2img euler guidance_rescale=0.7: max abs diff {diff:.3g}")
    assert diff <= 1e-4
    plain = ours_txt2img(ctx, "euler", "normal", steps=6)
    assert (plain - ours).abs().max() > 1e-4


def test_clip_skip_is_penultimate_layer_with_final_norm(ctx, tiny_pipe):
    """A1111 clip skip 2 == diffusers clip_skip=1: hidden_states[-2] then final_layer_norm.
    (diffusers 0.42's own clip_skip path reaches for `text_encoder.text_model`, which
    transformers 5 removed, so we compare with the formula directly.)"""
    import torch

    _, clip, _ = checkpoint_loader("tiny-sd", ctx)
    ours = clip_text_encode(clip, PROMPT, clip_skip=2)[0]["embeds"]
    ids = tiny_pipe.tokenizer(PROMPT, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = tiny_pipe.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
        expected = tiny_pipe.text_encoder.final_layer_norm(hidden)
    assert torch.equal(ours, expected)
    last = clip_text_encode(clip, PROMPT, clip_skip=1)[0]["embeds"]
    assert not torch.allclose(ours, last)


def test_img2img_matches_img2img_pipeline(ctx, models_dir, tiny_pipe):
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionImg2ImgPipeline
    from diffusers.image_processor import VaeImageProcessor

    model, clip, vae = checkpoint_loader("tiny-sd", ctx)
    torch.manual_seed(7)
    image = torch.rand(1, 3, SIZE, SIZE)
    latent = vae_encode(vae, image)  # mean of the VAE posterior, × scaling_factor

    # our encode == diffusers' preprocessing + encoder mean
    pre = VaeImageProcessor(vae_scale_factor=2).preprocess(image)
    with torch.no_grad():
        reference = tiny_pipe.vae.encode(pre).latent_dist.mode() * tiny_pipe.vae.config.scaling_factor
    assert (latent["samples"] - reference).abs().max().item() <= 1e-6

    # diffusers: num_inference_steps 10 at strength 0.5 runs 5 steps;
    # ComfyUI meaning: steps 5 at denoise 0.5 runs the last 5 of a 10-step schedule
    positive = clip_text_encode(clip, PROMPT)
    negative = clip_text_encode(clip, NEGATIVE)
    ours = vae_decode(vae, ksampler(model, positive, negative, latent, ctx, seed=SEED, steps=5, cfg=7.5,
                                    sampler_name="euler", scheduler="normal", denoise=0.5))
    pipe = StableDiffusionImg2ImgPipeline(**tiny_pipe.components)
    pipe.scheduler = EulerDiscreteScheduler.from_config(tiny_pipe.base_scheduler_config)
    pipe.set_progress_bar_config(disable=True)
    # a 4-channel image is taken as ready-made latents: the same latents we feed our KSampler
    theirs = pipe(PROMPT, image=latent["samples"], strength=0.5, num_inference_steps=10, guidance_scale=7.5,
                  negative_prompt=NEGATIVE, generator=torch.Generator("cpu").manual_seed(SEED), output_type="pt").images
    diff = (ours - theirs).abs().max().item()
    print(f"img2img euler strength 0.5: max abs diff {diff:.3g}")
    assert diff <= 1e-4
