"""Loaders (one shared model manager) and the clear errors the issue asks for."""

from __future__ import annotations

import shutil

import pytest

from nodegraph.errors import NodeInputError
from nodegraph.nodes.latent import empty_latent_image, vae_encode
from nodegraph.nodes.models import (
    ModelManager,
    checkpoint_loader,
    load_text_encoder,
    load_vae,
    model_manager,
)
from nodegraph.nodes.sampling import ksampler, make_scheduler
from nodegraph.nodes.text import clip_text_encode


def test_checkpoint_loaded_once_and_shared(ctx):
    manager = model_manager()
    model, clip, vae = checkpoint_loader("tiny-sd", ctx)
    loads = manager.loads
    again = checkpoint_loader("tiny-sd", ctx)
    assert again.model is model and again.vae is vae and manager.loads == loads
    # honest sizes: the bytes of every parameter and buffer
    assert model.nbytes == sum(p.numel() * p.element_size() for p in model.unet.parameters())
    assert clip.nbytes > 0 and vae.nbytes > 0
    assert vae.scale_factor == 2 and vae.scaling_factor == pytest.approx(0.18215)
    assert model.unet.device.type == model.device.type


def test_manager_evicts_least_recently_used():
    from dataclasses import dataclass

    @dataclass
    class Blob:
        nbytes: int

    manager = ModelManager(budget_bytes=250)
    a = manager.get(("a",), lambda: Blob(100))
    manager.get(("b",), lambda: Blob(100))
    manager.get(("a",), lambda: Blob(100))  # a is now the most recently used
    manager.get(("c",), lambda: Blob(100))  # over budget: b goes
    assert manager.keys() == [("a",), ("c",)]
    assert manager.get(("a",), lambda: Blob(1)) is a and manager.total_bytes == 200


def test_separate_vae_and_text_encoder_loaders(ctx, models_dir):
    import torch

    vae = load_vae("tiny-sd/vae", ctx)
    clip = load_text_encoder("tiny-sd", ctx)
    _, ckpt_clip, ckpt_vae = checkpoint_loader("tiny-sd", ctx)
    image = torch.rand(1, 3, 32, 32)
    assert torch.equal(vae_encode(vae, image)["samples"], vae_encode(ckpt_vae, image)["samples"])
    assert torch.equal(clip_text_encode(clip, "hi")[0]["embeds"], clip_text_encode(ckpt_clip, "hi")[0]["embeds"])


def test_width_not_multiple_of_vae_factor(ctx):
    _, _, vae = checkpoint_loader("tiny-sd", ctx)
    with pytest.raises(NodeInputError, match="multiple of the VAE factor 2") as err:
        empty_latent_image(33, 32, 1, vae=vae)
    assert err.value.input == "width" and "32 or 34" in str(err.value)
    with pytest.raises(NodeInputError, match="multiple of the VAE factor 8") as err:
        empty_latent_image(512, 500)
    assert err.value.input == "height" and "496 or 504" in str(err.value)


def test_unknown_sampler_lists_known_ones(ctx):
    model, clip, vae = checkpoint_loader("tiny-sd", ctx)
    cond = clip_text_encode(clip, "x")
    with pytest.raises(NodeInputError, match="unknown sampler 'euler_a'") as err:
        ksampler(model, cond, cond, empty_latent_image(8, 8, vae=vae), ctx, sampler_name="euler_a")
    assert err.value.input == "sampler_name"
    for name in ("euler", "euler_ancestral", "dpmpp_2m", "ddim", "uni_pc", "lcm"):
        assert name in err.value.expected
    with pytest.raises(NodeInputError, match="has no 'karras' schedule"):
        make_scheduler(model.scheduler_config, "ddim", "karras")
    import importlib.util

    if importlib.util.find_spec("torchsde") is None:
        with pytest.raises(NodeInputError, match="needs the torchsde package"):
            make_scheduler(model.scheduler_config, "dpmpp_sde")


def test_prompt_for_model_without_text_encoder(ctx, models_dir, sd_roots):
    folder = sd_roots.models[0] / "no-text"
    for part in ("unet", "vae", "scheduler"):
        shutil.copytree(models_dir / "tiny-sd" / part, folder / part)
    model, clip, vae = checkpoint_loader("no-text", ctx)
    assert clip is None and model.unet is not None
    with pytest.raises(NodeInputError, match="no text encoder") as err:
        clip_text_encode(clip, "a cat")
    assert err.value.input == "clip"


def test_file_that_is_not_a_checkpoint(ctx, sd_roots):
    models = sd_roots.models[0]
    (models / "notes.safetensors").write_text("these are my notes, not tensors")
    with pytest.raises(NodeInputError, match="not a readable safetensors checkpoint"):
        checkpoint_loader("notes.safetensors", ctx)
    (models / "photo.png").write_bytes(b"\x89PNG\r\n")
    with pytest.raises(NodeInputError, match="not a checkpoint file"):
        checkpoint_loader("photo.png", ctx)
    (models / "empty-folder").mkdir()
    with pytest.raises(NodeInputError, match="not a diffusers checkpoint"):
        checkpoint_loader("empty-folder", ctx)
    with pytest.raises(NodeInputError, match="not found"):
        checkpoint_loader("missing.safetensors", ctx)


def test_safetensors_without_unet_is_named(ctx, sd_roots):
    import torch
    from safetensors.torch import save_file

    save_file({"lora_unet_down.alpha": torch.ones(1)}, str(sd_roots.models[0] / "lora.safetensors"))
    with pytest.raises(NodeInputError, match="no Stable Diffusion UNet"):
        checkpoint_loader("lora.safetensors", ctx, config_folder="tiny-sd")


def test_pickle_refused_unless_allowed(ctx, sd_roots):
    import torch

    path = sd_roots.models[0] / "old.ckpt"
    torch.save({"state_dict": {"x": torch.ones(1)}}, str(path))
    with pytest.raises(NodeInputError, match="pickle checkpoint") as err:
        checkpoint_loader("old.ckpt", ctx)
    assert "allow_pickle" in str(err.value)
    # opted in: it is read, and then found not to be an SD checkpoint
    with pytest.raises(NodeInputError, match="no Stable Diffusion UNet"):
        checkpoint_loader("old.ckpt", ctx, config_folder="tiny-sd", allow_pickle=True)


def test_hub_id_offline_is_clear(ctx, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NodeInputError, match="Hub is off"):
        checkpoint_loader("runwayml/stable-diffusion-v1-5", ctx)
