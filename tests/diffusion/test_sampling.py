"""The opened-up loop, KSamplerAdvanced, progress/cancel, denoise semantics, tokens."""

from __future__ import annotations

import pytest

from nodegraph.context import CancelToken, RunContext
from nodegraph.errors import Cancelled
from nodegraph.nodes.guidance import cfg_combine_node
from nodegraph.nodes.latent import add_noise_at_step, empty_latent_image, latent_preview_node
from nodegraph.nodes.models import checkpoint_loader
from nodegraph.nodes.sampling import (
    ksampler,
    ksampler_advanced,
    predict_noise_node,
    prepare_sampling_node,
    scheduler_step_node,
)
from nodegraph.nodes.text import (
    clip_text_encode,
    conditioning_average,
    conditioning_combine,
    conditioning_concat,
    parse_weighted,
    tokenize,
)


@pytest.fixture
def parts(ctx):
    model, clip, vae = checkpoint_loader("tiny-sd", ctx)
    positive = clip_text_encode(clip, "a red (car:1.3) on a road")
    negative = clip_text_encode(clip, "")
    latent = empty_latent_image(32, 32, 1, vae=vae)
    return model, clip, vae, positive, negative, latent


@pytest.mark.parametrize("sampler_name, scheduler", [("euler_ancestral", "normal"), ("dpmpp_2m", "karras")])
def test_opened_loop_is_bit_identical_to_ksampler(ctx, parts, sampler_name, scheduler):
    import torch

    model, clip, vae, positive, negative, latent = parts
    steps, cfg = 6, 7.0
    fused = ksampler(model, positive, negative, latent, ctx, seed=5, steps=steps, cfg=cfg,
                     sampler_name=sampler_name, scheduler=scheduler)
    sampling, x = prepare_sampling_node(model, latent, seed=5, steps=steps, sampler_name=sampler_name, scheduler=scheduler)
    first = sampling
    for _ in range(steps):
        cond, uncond = predict_noise_node(sampling, positive, negative)
        noise = cfg_combine_node(cond, uncond, cfg=cfg)
        sampling, x = scheduler_step_node(sampling, noise, ctx)
    assert torch.equal(fused["samples"], x["samples"])
    # the nodes never changed the state they were given (safe to cache and to branch)
    assert first.index == 0 and first.scheduler.step_index is None


def test_ksampler_advanced_two_halves_equal_one_run(ctx, parts):
    import torch

    model, clip, vae, positive, negative, latent = parts
    whole = ksampler_advanced(model, positive, negative, latent, ctx, noise_seed=3, steps=8, cfg=6.0)
    first = ksampler_advanced(model, positive, negative, latent, ctx, noise_seed=3, steps=8, cfg=6.0,
                              end_at_step=4, return_with_leftover_noise=True)
    second = ksampler_advanced(model, positive, negative, first, ctx, add_noise=False, noise_seed=3, steps=8,
                               cfg=6.0, start_at_step=4)
    assert torch.allclose(whole["samples"], second["samples"], atol=1e-5)
    # stopping early without leftover noise: the last Euler step goes down to noise level 0
    # (x3 - σ3·ε) instead of to σ4 (x3 + (σ4 - σ3)·ε)
    from nodegraph.nodes.sampling import make_scheduler

    early = ksampler_advanced(model, positive, negative, latent, ctx, noise_seed=3, steps=8, cfg=6.0, end_at_step=4)
    x3 = ksampler_advanced(model, positive, negative, latent, ctx, noise_seed=3, steps=8, cfg=6.0,
                           end_at_step=3, return_with_leftover_noise=True)["samples"]
    sched = make_scheduler(model.scheduler_config, "euler")
    sched.set_timesteps(8)
    s3, s4 = sched.sigmas[3].item(), sched.sigmas[4].item()
    eps = (first["samples"] - x3) / (s4 - s3)
    assert torch.allclose(early["samples"], x3 - s3 * eps, atol=1e-4)
    assert not torch.allclose(early["samples"], first["samples"], atol=1e-2)


def test_progress_previews_and_cancel(sd_roots, parts):
    model, clip, vae, positive, negative, latent = parts
    seen = []
    token = CancelToken()

    def on_progress(step, total, preview, text):
        seen.append((step, total, tuple(preview.shape)))
        if step == 3:
            token.cancel()

    ctx = RunContext("k", "KSampler", sd_roots, token, on_progress=on_progress)
    with pytest.raises(Cancelled):
        ksampler(model, positive, negative, latent, ctx, seed=1, steps=10)
    # steps 1, 2, 3 reported with a 3-channel preview of the latent; cancelled at the next report
    assert [s[:2] for s in seen] == [(1, 10), (2, 10), (3, 10), (4, 10)][: len(seen)]
    assert 3 <= len(seen) <= 4
    assert seen[0][2] == (1, 3, 16, 16)


def test_denoise_runs_tail_of_longer_schedule(ctx, parts):
    import torch

    model, clip, vae, positive, negative, latent = parts
    from nodegraph.nodes.sampling import prepare_sampling

    state = prepare_sampling(model, latent, 0, 5, "euler", "normal", denoise=0.5)
    full = prepare_sampling(model, latent, 0, 10, "euler", "normal")
    assert state.total == 5
    assert torch.equal(state.timesteps, full.timesteps[5:])


def test_add_noise_at_step_and_preview(ctx, parts):
    import torch

    model, clip, vae, positive, negative, latent = parts
    x0 = {"samples": torch.ones(1, 4, 16, 16)}
    noisy_start = add_noise_at_step(model, x0, seed=0, steps=10, step=0)["samples"]
    noisy_end = add_noise_at_step(model, x0, seed=0, steps=10, step=9)["samples"]
    # early steps are almost all noise, late steps almost all picture
    assert (noisy_end - x0["samples"]).abs().mean() < (noisy_start - x0["samples"]).abs().mean()
    preview = latent_preview_node(x0)
    assert preview.shape == (1, 3, 16, 16) and 0 <= preview.min() and preview.max() <= 1


def test_tokenize_weights_and_long_prompts(ctx, parts):
    import torch

    model, clip, vae, positive, negative, latent = parts
    assert parse_weighted("a (red:1.5) [old] ((car)) \\(x\\)") == [
        ("a ", 1.0), ("red", 1.5), (" ", 1.0), ("old", 1 / 1.1), (" ", 1.0), ("car", 1.1 * 1.1), (" (x)", 1.0),
    ]
    shown, count = tokenize(clip, "a cat")
    assert count == 4 and "<|startoftext|>" in shown  # tiny tokenizer: a</w> c a t</w>
    long_prompt = "x" * 200
    embeds = clip_text_encode(clip, long_prompt)[0]["embeds"]
    assert embeds.shape == (1, 77 * 3, 8)  # 200 tokens → 3 chunks of 75
    weighted = clip_text_encode(clip, "a (cat:1.5)")[0]["embeds"]
    plain = clip_text_encode(clip, "a cat")[0]["embeds"]
    assert weighted.shape == plain.shape and not torch.allclose(weighted, plain)
    # a long positive with a short negative still samples (separate UNet calls)
    long_cond = clip_text_encode(clip, long_prompt)
    out = ksampler(model, long_cond, negative, latent, ctx, steps=2)
    assert out["samples"].shape == (1, 4, 16, 16)


def test_conditioning_combine_concat_average(ctx, parts):
    import torch

    model, clip, vae, positive, negative, latent = parts
    other = clip_text_encode(clip, "a blue boat")
    combined = conditioning_combine(positive, other)
    assert len(combined) == 2
    concat = conditioning_concat(positive, other)
    assert concat[0]["embeds"].shape[1] == 154
    half = conditioning_average(positive, other, 0.5)[0]["embeds"]
    assert torch.allclose(half, (positive[0]["embeds"] + other[0]["embeds"]) / 2, atol=1e-6)
    out = ksampler(model, combined, negative, latent, ctx, steps=2)
    assert torch.isfinite(out["samples"]).all()


def _all_samplers():
    import importlib.util

    from nodegraph.nodes.sampling import SAMPLERS

    names = list(SAMPLERS)
    if importlib.util.find_spec("torchsde") is None:
        names.remove("dpmpp_sde")
    return names


@pytest.mark.parametrize("sampler_name", _all_samplers())
def test_every_sampler_name_runs(ctx, parts, sampler_name):
    import torch

    model, clip, vae, positive, negative, latent = parts
    out = ksampler(model, positive, negative, latent, ctx, seed=0, steps=3, cfg=5.0, sampler_name=sampler_name)
    assert torch.isfinite(out["samples"]).all() and out["samples"].std() > 0


@pytest.mark.parametrize("schedule", ["karras", "exponential", "beta", "simple", "sgm_uniform"])
def test_every_schedule_changes_the_noise_levels(ctx, parts, schedule):
    from nodegraph.nodes.sampling import prepare_sampling

    model, clip, vae, positive, negative, latent = parts
    normal = prepare_sampling(model, latent, 0, 6, "euler", "normal")
    other = prepare_sampling(model, latent, 0, 6, "euler", schedule)
    assert other.total == 6
    assert not (normal.scheduler.sigmas == other.scheduler.sigmas).all()
