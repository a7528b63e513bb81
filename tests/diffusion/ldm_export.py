"""Write diffusers components as ONE original-layout (LDM / A1111 / ComfyUI) .safetensors file,
the format users download. The reverse of diffusers' single-file conversion, for tests."""

from __future__ import annotations

RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
          ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
VAE_ATTN = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]


def _swap(key: str, pairs) -> str:
    for new, old in pairs:
        key = key.replace(new, old)
    return key


def unet_to_ldm(unet) -> dict:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    config = unet.config
    state = unet.state_dict()
    n = config.layers_per_block + 1
    prefixes: list[tuple[str, str, bool]] = []  # (diffusers prefix, ldm prefix, is resnet)
    for b, kind in enumerate(config.down_block_types):
        for j in range(config.layers_per_block):
            idx = n * b + j + 1
            prefixes.append((f"down_blocks.{b}.resnets.{j}.", f"input_blocks.{idx}.0.", True))
            prefixes.append((f"down_blocks.{b}.attentions.{j}.", f"input_blocks.{idx}.1.", False))
        prefixes.append((f"down_blocks.{b}.downsamplers.0.conv.", f"input_blocks.{n * (b + 1)}.0.op.", False))
    prefixes += [("mid_block.resnets.0.", "middle_block.0.", True), ("mid_block.attentions.0.", "middle_block.1.", False),
                 ("mid_block.resnets.1.", "middle_block.2.", True)]
    for b, kind in enumerate(config.up_block_types):
        for j in range(n):
            prefixes.append((f"up_blocks.{b}.resnets.{j}.", f"output_blocks.{n * b + j}.0.", True))
            prefixes.append((f"up_blocks.{b}.attentions.{j}.", f"output_blocks.{n * b + j}.1.", False))
        slot = 2 if "CrossAttn" in kind else 1
        prefixes.append((f"up_blocks.{b}.upsamplers.0.conv.", f"output_blocks.{n * b + n - 1}.{slot}.conv.", False))
    top = {d: l for d, l in DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"].items()}
    out = {}
    for key, value in state.items():
        if key in top:
            out[top[key]] = value
            continue
        for new, old, resnet in prefixes:
            if key.startswith(new):
                rest = key[len(new):]
                out[old + (_swap(rest, RESNET) if resnet else rest)] = value
                break
        else:
            raise KeyError(f"no LDM name for UNet key {key}")
    return out


def vae_to_ldm(vae) -> dict:
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    top = dict(DIFFUSERS_TO_LDM_MAPPING["vae"])
    blocks = len(vae.config.down_block_types)
    out = {}
    for key, value in vae.state_dict().items():
        if key in top:
            out[top[key]] = value
            continue
        new = key
        for part in ("encoder", "decoder"):
            for k in range(2):
                new = new.replace(f"{part}.mid_block.resnets.{k}.", f"{part}.mid.block_{k + 1}.")
            if f"{part}.mid_block.attentions.0." in new:
                new = _swap(new.replace(f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1."), VAE_ATTN)
                if value.ndim == 2:
                    value = value[:, :, None, None]
        for i in range(blocks):
            new = new.replace(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.")
            new = new.replace(f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.")
            new = new.replace(f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{blocks - 1 - i}.block.")
            new = new.replace(f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{blocks - 1 - i}.upsample.")
        out[new.replace("conv_shortcut", "nin_shortcut")] = value
    return out


def save_single_file(path, unet, vae, text_encoder) -> None:
    from safetensors.torch import save_file

    state = {"model.diffusion_model." + k: v for k, v in unet_to_ldm(unet).items()}
    state.update({"first_stage_model." + k: v for k, v in vae_to_ldm(vae).items()})
    for key, value in text_encoder.state_dict().items():
        name = key if key.startswith("text_model.") else "text_model." + key
        state["cond_stage_model.transformer." + name] = value
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
