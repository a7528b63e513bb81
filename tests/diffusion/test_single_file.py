"""A single original-layout .safetensors loads offline and computes the same as the folder."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from ldm_export import save_single_file  # noqa: E402

from nodegraph.nodes.latent import empty_latent_image, vae_decode  # noqa: E402
from nodegraph.nodes.models import checkpoint_loader  # noqa: E402
from nodegraph.nodes.sampling import ksampler  # noqa: E402
from nodegraph.nodes.text import clip_text_encode  # noqa: E402


def test_single_file_matches_diffusers_folder(ctx, sd_roots):
    import torch

    folder_model, folder_clip, folder_vae = checkpoint_loader("tiny-sd", ctx)
    path = sd_roots.models[0] / "tiny-sd.safetensors"
    save_single_file(path, folder_model.unet, folder_vae.vae, folder_clip.text_encoder)
    # the architecture comes from a config folder (here the tiny one; "sd15" is shipped for real files)
    model, clip, vae = checkpoint_loader("tiny-sd.safetensors", ctx, config_folder="tiny-sd")
    assert model.unet is not folder_model.unet
    for ours, theirs in ((model.unet, folder_model.unet), (vae.vae, folder_vae.vae), (clip.text_encoder, folder_clip.text_encoder)):
        a, b = ours.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)

    def picture(m, c, v):
        pos, neg = clip_text_encode(c, "a tree"), clip_text_encode(c, "")
        return vae_decode(v, ksampler(m, pos, neg, empty_latent_image(32, 32, vae=v), ctx, seed=2, steps=3))

    assert torch.equal(picture(model, clip, vae), picture(folder_model, folder_clip, folder_vae))


def test_shipped_sd15_config_and_tokenizer(tmp_path, monkeypatch):
    import json
    import tempfile

    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from nodegraph.nodes import models
    from nodegraph.nodes.models import CONFIG_ROOT, sd_clip_tokenizer

    monkeypatch.setattr(models, "_SD_TOKENIZER", None)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where its scratch files go
    tok = sd_clip_tokenizer()
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert list(tmp_path.iterdir()) == []  # the vocab files it was built from are gone
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(json.loads((CONFIG_ROOT / "sd15/unet/config.json").read_text()))
        vae = AutoencoderKL.from_config(json.loads((CONFIG_ROOT / "sd15/vae/config.json").read_text()))
    assert round(sum(p.numel() for p in unet.parameters()) / 1e6) == 860  # SD 1.5's UNet: 859.5M
    assert round(sum(p.numel() for p in vae.parameters()) / 1e6) == 84


def test_load_vae_from_single_file(ctx, sd_roots):
    import torch
    from safetensors.torch import save_file

    from ldm_export import vae_to_ldm
    from nodegraph.nodes.latent import vae_encode
    from nodegraph.nodes.models import load_vae

    _, _, folder_vae = checkpoint_loader("tiny-sd", ctx)
    save_file({k: v.contiguous() for k, v in vae_to_ldm(folder_vae.vae).items()}, str(sd_roots.models[0] / "vae.safetensors"))
    vae = load_vae("vae.safetensors", ctx, config_folder="tiny-sd")
    image = torch.rand(1, 3, 32, 32)
    assert torch.equal(vae_encode(vae, image)["samples"], vae_encode(folder_vae, image)["samples"])
