"""Tiny Stable Diffusion parts built offline from config objects (the recipes of diffusers'
own pipeline tests), saved in diffusers layout and as one LDM-layout .safetensors file, so
that the real loader nodes read them exactly as they would read SD 1.5."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodegraph.context import CancelToken, Roots, RunContext

SEED_WEIGHTS = 0


def write_tiny_tokenizer(folder: Path, max_length: int = 77):
    """A byte-level CLIP tokenizer with no merges: every character is a token."""
    from transformers import CLIPTokenizer
    from open_clip.tokenizer import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer.from_pretrained(str(folder), model_max_length=max_length)
    tok.save_pretrained(str(folder))
    return tok


def build_tiny_components(seed: int = SEED_WEIGHTS):
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8,
        norm_num_groups=2,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=2,
    )
    torch.manual_seed(seed + 2)
    text_config = CLIPTextConfig(
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=513,
        hidden_size=8,
        intermediate_size=16,
        layer_norm_eps=1e-05,
        num_attention_heads=2,
        num_hidden_layers=2,
        vocab_size=514,
        max_position_embeddings=77,
        projection_dim=8,
    )
    text_encoder = CLIPTextModel(text_config)
    # SD 1.5's scheduler settings (scaled_linear betas 0.00085..0.012, 1000 steps)
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, set_alpha_to_one=False, steps_offset=1,
    )
    return unet, vae, text_encoder, scheduler


def save_diffusers_folder(folder: Path) -> Path:
    unet, vae, text_encoder, scheduler = build_tiny_components()
    folder.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text_encoder.save_pretrained(folder / "text_encoder")
    scheduler.save_pretrained(folder / "scheduler")
    write_tiny_tokenizer(folder / "tokenizer")
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
    }))
    return folder


def save_controlnet_folder(folder: Path) -> Path:
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(3)
    controlnet = ControlNetModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=8,
        conditioning_embedding_out_channels=(16, 32),
        norm_num_groups=2,
    )
    # a fresh ControlNet has zero convs: give them weights so the test sees an effect
    with torch.no_grad():
        for module in list(controlnet.controlnet_down_blocks) + [controlnet.controlnet_mid_block]:
            module.weight.normal_(0, 0.3)
    controlnet.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A model root holding tiny-sd/ (diffusers layout) and tiny-controlnet/."""
    root = tmp_path_factory.mktemp("models")
    save_diffusers_folder(root / "tiny-sd")
    save_controlnet_folder(root / "tiny-controlnet")
    return root


@pytest.fixture
def sd_roots(roots, models_dir) -> Roots:
    roots.models.append(models_dir)
    return roots


@pytest.fixture
def ctx(sd_roots) -> RunContext:
    return RunContext("t", "T", sd_roots, CancelToken())


@pytest.fixture(scope="session")
def tiny_pipe(models_dir):
    """diffusers' StableDiffusionPipeline on the very same saved components."""
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(
        str(models_dir / "tiny-sd"), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False, local_files_only=True, torch_dtype=torch.float32,
    )
    pipe.set_progress_bar_config(disable=True)
    # the saved scheduler config: tests build each diffusers scheduler from this, never from
    # the previous test's scheduler (from_config would carry its options over)
    pipe.base_scheduler_config = dict(pipe.scheduler.config)
    return pipe


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread(one_torch_thread):
    """Every diffusion test runs on one torch thread (see tests/conftest.py)."""
