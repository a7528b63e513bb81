"""ControlNet: parity with StableDiffusionControlNetPipeline, multi-ControlNet, canny."""

from __future__ import annotations

import pytest

from nodegraph.errors import NodeInputError
from nodegraph.nodes.controlnet import canny_edges, controlnet_apply
from nodegraph.nodes.latent import empty_latent_image, vae_decode
from nodegraph.nodes.models import checkpoint_loader, load_controlnet
from nodegraph.nodes.sampling import ksampler
from nodegraph.nodes.text import clip_text_encode

PROMPT, NEGATIVE, SEED = "a house by a lake", "ugly", 99


@pytest.fixture
def hint():
    import torch

    torch.manual_seed(0)
    picture = torch.rand(1, 3, 64, 64)
    return canny_edges(picture)


def test_canny_gives_edge_image(hint):
    assert hint.shape == (1, 3, 64, 64)
    assert set(hint.unique().tolist()) <= {0.0, 1.0} and hint.max() == 1.0


@pytest.mark.parametrize("start, end", [(0.0, 1.0), (0.0, 0.5)])
def test_controlnet_matches_controlnet_pipeline(ctx, tiny_pipe, hint, start, end):
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionControlNetPipeline

    model, clip, vae = checkpoint_loader("tiny-sd", ctx)
    net = load_controlnet("tiny-controlnet", ctx)
    positive, negative = controlnet_apply(
        clip_text_encode(clip, PROMPT), clip_text_encode(clip, NEGATIVE), net, hint,
        strength=0.8, start_percent=start, end_percent=end, vae=vae,
    )
    latent = empty_latent_image(64, 64, 1, vae=vae)
    ours = vae_decode(vae, ksampler(model, positive, negative, latent, ctx, seed=SEED, steps=8, cfg=7.5))

    pipe = StableDiffusionControlNetPipeline(**tiny_pipe.components, controlnet=net.controlnet)
    pipe.scheduler = EulerDiscreteScheduler.from_config(tiny_pipe.base_scheduler_config)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(PROMPT, image=hint, negative_prompt=NEGATIVE, num_inference_steps=8, guidance_scale=7.5,
                  controlnet_conditioning_scale=0.8, control_guidance_start=start, control_guidance_end=end,
                  generator=torch.Generator("cpu").manual_seed(SEED), output_type="pt", height=64, width=64).images
    diff = (ours - theirs).abs().max().item()
    print(f"controlnet euler start={start} end={end}: max abs diff {diff:.3g}")
    assert diff <= 1e-4
    # the ControlNet changes the picture
    plain = vae_decode(vae, ksampler(model, clip_text_encode(clip, PROMPT), clip_text_encode(clip, NEGATIVE),
                                     latent, ctx, seed=SEED, steps=8, cfg=7.5))
    assert (plain - ours).abs().max() > 1e-3


def test_multi_controlnet_adds_residuals(ctx, hint):
    import torch

    model, clip, vae = checkpoint_loader("tiny-sd", ctx)
    net = load_controlnet("tiny-controlnet", ctx)
    pos, neg = clip_text_encode(clip, PROMPT), clip_text_encode(clip, NEGATIVE)
    latent = empty_latent_image(64, 64, 1, vae=vae)
    # two half-strength copies of the same ControlNet and hint == one at full strength
    p1, n1 = controlnet_apply(pos, neg, net, hint, strength=0.5)
    p2, n2 = controlnet_apply(p1, n1, net, hint, strength=0.5)
    p3, n3 = controlnet_apply(pos, neg, net, hint, strength=1.0)
    twice = ksampler(model, p2, n2, latent, ctx, seed=1, steps=3)["samples"]
    once = ksampler(model, p3, n3, latent, ctx, seed=1, steps=3)["samples"]
    assert torch.allclose(twice, once, atol=1e-4)


def test_controlnet_hint_size_mismatch_is_clear(ctx, hint):
    model, clip, vae = checkpoint_loader("tiny-sd", ctx)
    net = load_controlnet("tiny-controlnet", ctx)
    pos, neg = controlnet_apply(clip_text_encode(clip, PROMPT), clip_text_encode(clip, NEGATIVE), net, hint)
    latent = empty_latent_image(32, 32, 1, vae=vae)  # a 32 px picture but a 64 px hint
    with pytest.raises(NodeInputError, match="hint image does not match") as err:
        ksampler(model, pos, neg, latent, ctx, steps=2)
    assert "32×32" in str(err.value) and "64×64" in str(err.value)


def test_controlnet_factor_mismatch_with_vae_is_clear(ctx, hint):
    model, clip, vae = checkpoint_loader("tiny-sd", ctx)
    net = load_controlnet("tiny-controlnet", ctx)

    from diffusers import AutoencoderKL

    from nodegraph.nodes.models import VaeHandle

    # a real (tiny) VAE with SD's factor 8: four encoder levels
    vae8 = VaeHandle(AutoencoderKL(block_out_channels=[4, 4, 4, 4], norm_num_groups=2,
                                   down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4))
    assert vae8.scale_factor == 8
    with pytest.raises(NodeInputError, match="different factor") as err:
        controlnet_apply(clip_text_encode(clip, PROMPT), clip_text_encode(clip, NEGATIVE), net, hint, vae=vae8)
    assert "downscale 8" in str(err.value) and "downscale 2" in str(err.value)


def test_depth_hint_from_depth_map():
    import torch

    from nodegraph.nodes.controlnet import depth_hint

    depth = torch.linspace(0, 4, 16).view(1, 1, 4, 4)
    hint = depth_hint(depth)
    assert hint.shape == (1, 3, 4, 4) and hint.min() == 0 and hint.max() == 1
    assert torch.equal(depth_hint(torch.ones(1, 1, 4, 4)), torch.full((1, 3, 4, 4), 0.5))
