"""Inpainting with an ordinary (4-channel) model: a latent noise mask, as
StableDiffusionInpaintPipeline does it; and the inpainting-model (9-channel) path."""

from __future__ import annotations

import pytest

from nodegraph.errors import NodeInputError
from nodegraph.nodes.latent import inpaint_latent, set_latent_noise_mask, vae_decode, vae_encode
from nodegraph.nodes.models import ModelHandle, checkpoint_loader
from nodegraph.nodes.sampling import ksampler
from nodegraph.nodes.text import clip_text_encode

PROMPT, NEGATIVE, SEED = "a cat on a sofa", "", 21


@pytest.fixture
def picture_and_mask():
    import torch

    torch.manual_seed(11)
    picture = torch.rand(1, 3, 64, 64)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., :, 32:] = 1.0  # repaint the right half
    return picture, mask


def test_latent_noise_mask_matches_inpaint_pipeline(ctx, tiny_pipe, picture_and_mask):
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionInpaintPipeline

    picture, mask = picture_and_mask
    model, clip, vae = checkpoint_loader("tiny-sd", ctx)
    latent = set_latent_noise_mask(vae_encode(vae, picture), mask)
    positive, negative = clip_text_encode(clip, PROMPT), clip_text_encode(clip, NEGATIVE)
    # diffusers strength 0.6 of 10 steps == ComfyUI steps 6 at denoise 0.6
    out = ksampler(model, positive, negative, latent, ctx, seed=SEED, steps=6, cfg=7.5, denoise=0.6)
    ours = vae_decode(vae, out)

    pipe = StableDiffusionInpaintPipeline(**tiny_pipe.components)
    pipe.scheduler = EulerDiscreteScheduler.from_config(tiny_pipe.base_scheduler_config)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(PROMPT, image=latent["samples"], mask_image=mask, masked_image_latents=latent["samples"],
                  negative_prompt=NEGATIVE, strength=0.6, num_inference_steps=10, guidance_scale=7.5,
                  height=64, width=64, generator=torch.Generator("cpu").manual_seed(SEED), output_type="pt").images
    diff = (ours - theirs).abs().max().item()
    print(f"inpaint (noise mask) euler strength 0.6: max abs diff {diff:.3g}")
    assert diff <= 1e-4
    # the unmasked half of the latent is the original latent exactly
    assert torch.equal(out["samples"][..., :16], latent["samples"][..., :16])
    assert not torch.allclose(out["samples"][..., 16:], latent["samples"][..., 16:])


def test_inpainting_model_path(ctx, picture_and_mask):
    import torch
    from diffusers import UNet2DConditionModel

    picture, mask = picture_and_mask
    model, clip, vae = checkpoint_loader("tiny-sd", ctx)
    torch.manual_seed(0)
    unet9 = UNet2DConditionModel(  # an inpainting UNet reads 4 + 1 + 4 channels
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=9, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8, norm_num_groups=2,
    ).eval()
    inpaint_model = ModelHandle(unet9, model.scheduler_config)
    positive, negative = clip_text_encode(clip, PROMPT), clip_text_encode(clip, NEGATIVE)
    latent = inpaint_latent(vae, picture, mask)
    assert latent["inpaint_extra"].shape == (1, 5, 32, 32)
    out = ksampler(inpaint_model, positive, negative, latent, ctx, seed=1, steps=3)
    assert out["samples"].shape == (1, 4, 32, 32) and torch.isfinite(out["samples"]).all()
    # an ordinary latent is refused with a clear message
    with pytest.raises(NodeInputError, match="InpaintLatent"):
        ksampler(inpaint_model, positive, negative, vae_encode(vae, picture), ctx, steps=2)
