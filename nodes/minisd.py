"""MiniSD: the Stable Diffusion architecture, shrunk to fit the synthetic world.

Every part is the real diffusers / transformers class that SD 1.5 uses, only smaller, so
the same loader nodes, the same samplers and ``StableDiffusionPipeline.from_pretrained``
work on both:

========================  ==============================  ==============================
part                      SD 1.5                          MiniSD
========================  ==============================  ==============================
image                     512×512×3                       64×64×3
VAE (AutoencoderKL)       4 down blocks, 8× smaller       4 down blocks, 8× smaller
latent                    64×64×4                         8×8×4 (one "superpixel" = 8×8 px)
text encoder (CLIP)       12 layers, width 768, 77 tok    2 layers, width 64, 32 tokens
text encoder comes from   OpenAI CLIP ViT-L/14, frozen    the world CLIP (minisd-clip), frozen
tokenizer                 49,408 BPE tokens               bytes + the world's words (BPE)
UNet2DConditionModel      320/640/1280/1280 channels      48/96 channels, cross-attention
scheduler                 PNDM, scaled-linear betas       Euler, the same betas
========================  ==============================  ==============================

The rules that make a tiny SD consistent (see the diffusion anchors):

* the text encoder's hidden size equals the UNet's ``cross_attention_dim`` (the UNet's
  cross-attention reads the text vectors directly);
* ``max_position_embeddings`` is at least the tokenizer's ``model_max_length``;
* ``eos_token_id`` is the real id of ``<|endoftext|>``: CLIP pools the vector at the EOS
  position, and the legacy value 2 would switch on argmax pooling.

The tokenizer is a genuine CLIP byte-pair tokenizer (``vocab.json`` + ``merges.txt``),
built here without the Hub: the 256 byte symbols (and their end-of-word forms) so any text
can be encoded, plus merges learnt from the world's vocabulary (:func:`learn_merges`), so
every caption word is exactly one token: "a red circle" → ``a</w> red</w> circle</w>``.

Nothing here trains: see nodes/train.py. :func:`write_pipeline` assembles a complete
diffusers folder from trained (or freshly initialised) parts.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

from nodegraph.context import publish_mode
from nodegraph.lazy import lazy_import

from . import world

torch = lazy_import("torch")

IMAGE_SIZE = 64
LATENT_SIZE = 8  # 64 / 8: the VAE downsamples 8×, like SD's
LATENT_CHANNELS = 4
MAX_TOKENS = 32  # the longest world caption is 23 words + BOS + EOS
TEXT_WIDTH = 64  # = the UNet's cross_attention_dim
BOS, EOS = "<|startoftext|>", "<|endoftext|>"

# ---- configs -------------------------------------------------------------------------------


def vae_config() -> dict:
    """AutoencoderKL with 4 down blocks (3 downsamplings: 64 → 32 → 16 → 8) and 4 latent
    channels, as in SD; only the widths are small."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [16, 32, 64, 64],
        "layers_per_block": 1,
        "act_fn": "silu",
        "latent_channels": LATENT_CHANNELS,
        "norm_num_groups": 8,
        "sample_size": IMAGE_SIZE,
        # SD's 0.18215 brings its latents to about unit variance; training measures ours
        # and replaces this value (see nodes/train.py).
        "scaling_factor": 1.0,
    }


def text_config(vocab_size: int, bos_id: int, eos_id: int) -> dict:
    """A two-layer CLIP text transformer, as wide as the UNet's cross-attention."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": TEXT_WIDTH,
        "intermediate_size": 4 * TEXT_WIDTH,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": MAX_TOKENS,
        "hidden_act": "quick_gelu",
        "projection_dim": TEXT_WIDTH,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "pad_token_id": eos_id,
    }


def unet_config() -> dict:
    """UNet2DConditionModel for 8×8×4 latents: two resolutions (8×8, 4×4), cross-attention
    to the text at both, and a middle block with attention (at 4×4)."""
    return {
        "sample_size": LATENT_SIZE,
        "in_channels": LATENT_CHANNELS,
        "out_channels": LATENT_CHANNELS,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [48, 96],
        "layers_per_block": 1,
        "cross_attention_dim": TEXT_WIDTH,
        "attention_head_dim": 8,
        "norm_num_groups": 16,
    }


def scheduler_config() -> dict:
    """SD's noise schedule: 1000 training steps, scaled-linear betas 0.00085 → 0.012,
    epsilon prediction. Training uses DDPMScheduler with it; the folder names Euler."""
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": "epsilon",
        "timestep_spacing": "leading",
        "steps_offset": 1,
    }


# ---- tokenizer -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """CLIP's (GPT-2's) reversible map from bytes to printable characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


def learn_merges(words: list[str]) -> list[tuple[str, str]]:
    """Byte-pair encoding, learnt on the world's words until each word is one symbol.

    Each word starts as its characters, the last one marked end-of-word (``r e d</w>``);
    the most frequent adjacent pair is merged, again and again (ties: the first pair seen).
    Encoding applies the merges in the order learnt, so it rebuilds exactly these words."""
    symbols = {w: [*w[:-1], w[-1] + "</w>"] for w in dict.fromkeys(words)}
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for parts in symbols.values():
            for pair in zip(parts, parts[1:]):
                pairs[pair] += 1
        if not pairs:
            return merges
        best = max(pairs.items(), key=lambda kv: kv[1])[0]  # max keeps the first of ties
        merges.append(best)
        for word, parts in symbols.items():
            out, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    out.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            symbols[word] = out


def tokenizer_files(words: list[str] | None = None) -> tuple[dict[str, int], list[str]]:
    """vocab.json and merges.txt (as a dict and lines) for a CLIP tokenizer knowing `words`
    (default: the world's vocabulary and the comma)."""
    words = list(words if words is not None else [*world.vocabulary(), ","])
    byte_chars = list(bytes_to_unicode().values())
    vocab_list = byte_chars + [c + "</w>" for c in byte_chars]
    merges = learn_merges(words)
    for a, b in merges:
        merged = a + b
        if merged not in vocab_list:
            vocab_list.append(merged)
    vocab_list += [BOS, EOS]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(vocab_list))}
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    return vocab, lines


def build_tokenizer(folder: Path | None = None):
    """A transformers CLIPTokenizer for the world, from files written to `folder` (a temp
    folder when None). Every world word is one token; other text falls back to bytes."""
    from transformers import CLIPTokenizer

    vocab, lines = tokenizer_files()
    own_temp = folder is None
    folder = Path(tempfile.mkdtemp(prefix="minisd-tok-")) if own_temp else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        tokenizer = CLIPTokenizer.from_pretrained(
            str(folder), model_max_length=MAX_TOKENS, bos_token=BOS, eos_token=EOS, unk_token=EOS, pad_token=EOS, local_files_only=True
        )
    finally:
        if own_temp:
            shutil.rmtree(folder, ignore_errors=True)
    return tokenizer


# ---- building the networks --------------------------------------------------------------------


def build_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(**vae_config())


def build_text_encoder(tokenizer):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(**text_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id))
    return CLIPTextModel(config)


def build_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**unet_config())


def build_train_scheduler():
    """The DDPM forward process used in training (add_noise at a random timestep)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(**scheduler_config())


def build_sample_scheduler():
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(**scheduler_config())


def world_clip_config(tokenizer) -> dict:
    """The world CLIP (open_clip layout): a small ResNet image tower (CLIP's
    ModifiedResNet: convolutions, then attention pooling; a ViT this small did not learn
    shapes in the same number of steps, convolutions see them at once) and a text tower
    exactly as wide and deep as MiniSD's text encoder, sharing its tokenizer. SD 1.5's
    text encoder *is* the text tower of OpenAI's CLIP ViT-L/14; MiniSD's is this model's
    text tower (see :func:`text_encoder_from_clip`)."""
    text = text_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    return {
        "embed_dim": TEXT_WIDTH,
        "quick_gelu": True,  # OpenAI CLIP's activation, the one SD's text encoder uses
        "vision_cfg": {"image_size": IMAGE_SIZE, "layers": [1, 1, 1, 1], "width": 16, "head_width": 16},
        "text_cfg": {
            "context_length": MAX_TOKENS,
            "vocab_size": text["vocab_size"],
            "width": text["hidden_size"],
            "heads": text["num_attention_heads"],
            "layers": text["num_hidden_layers"],
            "pad_id": tokenizer.pad_token_id,
            "eos_id": tokenizer.eos_token_id,
            # the tokenizer files sit in the model folder itself, where open_clip's
            # create_model / get_tokenizer("local-dir:<folder>") look for them
            "hf_tokenizer_name": ".",
        },
    }


def text_encoder_from_clip(clip_model, tokenizer):
    """An open_clip CLIP's text tower as a transformers CLIPTextModel (what a diffusers SD
    folder holds): the same weights renamed, q/k/v split out of the fused projection. Its
    per-token hidden states (after the final LayerNorm) equal the CLIP tower's."""
    encoder = build_text_encoder(tokenizer)
    source = {k: v for k, v in clip_model.state_dict().items() if not k.startswith("visual.")}
    state = {
        "embeddings.token_embedding.weight": source["token_embedding.weight"],
        "embeddings.position_embedding.weight": source["positional_embedding"],
        "final_layer_norm.weight": source["ln_final.weight"],
        "final_layer_norm.bias": source["ln_final.bias"],
    }
    renames = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
               "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    for layer in range(encoder.config.num_hidden_layers):
        ours, theirs = f"encoder.layers.{layer}.", f"transformer.resblocks.{layer}."
        for old, new in renames.items():
            for kind in ("weight", "bias"):
                state[f"{ours}{new}.{kind}"] = source[f"{theirs}{old}.{kind}"]
        for kind in ("weight", "bias"):
            q, k, v = source[f"{theirs}attn.in_proj_{kind}"].chunk(3)
            state.update({f"{ours}self_attn.q_proj.{kind}": q, f"{ours}self_attn.k_proj.{kind}": k, f"{ours}self_attn.v_proj.{kind}": v})
    expected = encoder.state_dict()
    prefix = next(iter(expected)).split("embeddings.")[0]  # "" in transformers 5, "text_model." before
    encoder.load_state_dict({prefix + k: v.to(expected[prefix + k].dtype) for k, v in state.items()}, strict=True)
    return encoder


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def token_ids(tokenizer, prompts: list[str]):
    """Token ids, padded (with EOS, as CLIP does) to the tokenizer's length."""
    return tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids


def encode_prompts(tokenizer, text_encoder, prompts: list[str]):
    """Token ids padded to MAX_TOKENS → the per-token hidden states the UNet attends to."""
    device = next(text_encoder.parameters()).device
    return text_encoder(token_ids(tokenizer, prompts).to(device))[0]


# ---- writing folders --------------------------------------------------------------------------


def _atomic_folder(final: Path, fill) -> Path:
    """Build a folder in a staging dir beside `final` with fill(staging), then swap it in."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        fill(staging)
        publish_mode(staging, final)  # mkdtemp made it 0700; a retrained folder keeps its mode
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(staging, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def save_part(module, folder: Path, dtype: str = "float32") -> None:
    """save_pretrained as safetensors, optionally cast to fp16 (the module is not changed).
    The folder it was loaded from (diffusers' ``_name_or_path``) is left out of the config:
    it is a path on the training machine."""
    if dtype == "float16":
        import copy

        module = copy.deepcopy(module).to(torch.float16)
    module.save_pretrained(str(folder), safe_serialization=True)
    config = Path(folder) / "config.json"
    if config.exists():
        data = json.loads(config.read_text())
        if data.pop("_name_or_path", None) is not None:
            config.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_pipeline(
    folder: Path,
    unet,
    vae,
    text_encoder,
    tokenizer,
    dtype: str = "float32",
    extra: dict | None = None,
) -> Path:
    """Write a complete diffusers SD folder (model_index.json, unet/, vae/, text_encoder/,
    tokenizer/, scheduler/) atomically. ``StableDiffusionPipeline.from_pretrained(folder)``
    loads it offline. `extra` is stored as ``minisd.json`` (training facts)."""

    def fill(staging: Path) -> None:
        save_part(unet, staging / "unet", dtype)
        save_part(vae, staging / "vae", dtype)
        save_part(text_encoder, staging / "text_encoder", dtype)
        tokenizer.save_pretrained(str(staging / "tokenizer"))
        build_sample_scheduler().save_pretrained(str(staging / "scheduler"))
        import diffusers

        index = {
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": diffusers.__version__,
            "feature_extractor": [None, None],
            "image_encoder": [None, None],
            "requires_safety_checker": False,
            "safety_checker": [None, None],
            "scheduler": ["diffusers", "EulerDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        }
        (staging / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        if extra is not None:
            (staging / "minisd.json").write_text(json.dumps(extra, indent=2) + "\n")

    return _atomic_folder(folder, fill)


def folder_bytes(folder: Path, suffix: str = ".safetensors") -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob(f"*{suffix}"))


def fresh_pipeline_folder(folder: Path, seed: int = 0, dtype: str = "float32") -> Path:
    """An untrained MiniSD folder (random weights, seeded): the architecture on its own, for
    tests and for looking at the parts before training."""
    torch.manual_seed(int(seed))
    tokenizer = build_tokenizer()
    return write_pipeline(folder, build_unet(), build_vae(), build_text_encoder(tokenizer), tokenizer, dtype)


def load_pipeline(folder: Path, device: Any = None):
    """StableDiffusionPipeline.from_pretrained on a MiniSD folder, offline, on `device`."""
    from diffusers import StableDiffusionPipeline

    from .device import pick_device

    pipe = StableDiffusionPipeline.from_pretrained(str(folder), safety_checker=None, requires_safety_checker=False, local_files_only=True)
    return pipe.to(device or pick_device())


def ship(source: Path, target: Path, dtype: str = "float16") -> Path:
    """Copy a trained model folder (pipeline, ControlNet or depth net) for shipping, with
    every floating-point weight in `dtype`: fp16 halves the package and changes no picture
    visibly (the loaders cast back to fp32 on a CPU). Written atomically."""
    from safetensors.torch import load_file, save_file

    wanted = getattr(torch, dtype)

    def fill(staging: Path) -> None:
        for path in sorted(Path(source).rglob("*")):
            out = staging / path.relative_to(source)
            if path.is_dir():
                out.mkdir(parents=True, exist_ok=True)
            elif path.suffix == ".safetensors":
                tensors = {k: (v.to(wanted) if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}
                out.parent.mkdir(parents=True, exist_ok=True)
                save_file(tensors, str(out), metadata={"format": "pt"})
            else:
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)

    return _atomic_folder(Path(target), fill)


if __name__ == "__main__":  # python -m nodegraph.nodes.minisd SOURCE TARGET: the shipping copy
    import sys

    print(ship(Path(sys.argv[1]), Path(sys.argv[2])))
