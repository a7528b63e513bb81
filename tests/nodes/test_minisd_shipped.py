"""The shipped MiniSD models: in the package, small, loadable by our nodes and by diffusers,
and good at what they were trained for (what benchmarks/minisd_eval.py measures at scale)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from nodegraph.config import builtin_model_roots
from nodegraph.context import CancelToken, Roots, RunContext
from nodegraph.nodes import minisd, world
from nodegraph.nodes import train as T

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SHIPPED = builtin_model_roots()[0]
TRAINED = ("minisd", "minisd-controlnet-canny", "minisd-depth", "minisd-clip", "world-reader")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def ctx(tmp_path):
    roots = Roots(inputs=[tmp_path], outputs=tmp_path / "out", models=builtin_model_roots(), cache=tmp_path / "cache")
    return RunContext("t", "test", roots, CancelToken())


def test_shipped_models_are_trained_safetensors_within_20_mb():
    total = 0
    for name in TRAINED:
        folder = SHIPPED / name
        assert (folder / T.MARKER).exists(), f"{name} was not written by a trainer"
        assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt"))  # safetensors only
        for config in folder.rglob("*.json"):  # no paths of the machine that trained them
            assert "_name_or_path" not in json.loads(config.read_text()), config
        total += minisd.folder_bytes(folder, suffix="")  # every file: weights, configs, tokenizers
    assert total <= 20 * 2**20, f"{total / 2**20:.1f} MB"


def test_diffusers_loads_the_shipped_minisd_folder():
    pipe = minisd.load_pipeline(SHIPPED / "minisd", torch.device("cpu"))
    pipe.set_progress_bar_config(disable=True)
    out = pipe("a large red circle at the center", num_inference_steps=4, height=64, width=64,
               generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert out.shape == (1, 3, 64, 64)


def test_minisd_draws_the_colour_shape_and_place_it_is_asked_for(ctx):
    """Every shape once (medium and large, every colour, nine places), 4 seeds each: most
    pictures follow the prompt (benchmarks/minisd_eval.py measures this over 240)."""
    from nodegraph.nodes.latent import empty_latent_image, vae_decode
    from nodegraph.nodes.models import checkpoint_loader
    from nodegraph.nodes.sampling import ksampler
    from nodegraph.nodes.text import clip_text_encode

    model, clip, vae = checkpoint_loader("minisd", ctx)
    reports = []
    for i, kind in enumerate(world.SHAPES):
        prompt = f"a {('medium', 'large')[i % 2]} {list(world.COLORS)[i]} {kind} at the {world.POSITIONS[i]}"
        latent = ksampler(model, clip_text_encode(clip, prompt), clip_text_encode(clip, ""), empty_latent_image(64, 64, 4, vae=vae),
                          ctx, seed=1, steps=20, cfg=8.0)
        reports.append(world.evaluate(vae_decode(vae, latent), prompt)["accuracy"])
    share = {key: sum(r[key] for r in reports) / len(reports) for key in ("color", "color_and_shape", "position")}
    assert share["color"] >= 0.9 and share["color_and_shape"] >= 0.9 and share["position"] >= 0.9, share


def test_minisd_vae_keeps_world_pictures(ctx):
    from nodegraph.nodes.check import image_distance_value
    from nodegraph.nodes.latent import vae_decode, vae_encode
    from nodegraph.nodes.models import checkpoint_loader

    _, _, vae = checkpoint_loader("minisd", ctx)
    pictures = T.world_batch(T.HOLDOUT + 77, 0, 16, torch.device("cpu"))["image"]
    rebuilt = vae_decode(vae, vae_encode(vae, pictures))
    assert image_distance_value(rebuilt, pictures, "psnr") >= 28.0


def test_default_depth_estimate_is_the_shipped_depth_net(ctx):
    from nodegraph.nodes.depth import estimate_depth

    batch = T.world_batch(T.HOLDOUT + 78, 0, 8, torch.device("cpu"))
    depth = estimate_depth(ctx, batch["image"])  # every default: backend minisd, shipped net
    error = float((depth - T.depth_targets(batch["depth"])).abs().mean())
    flat = float((T.depth_targets(batch["depth"]) - 0.5).abs().mean())
    assert error < 0.05 < flat


# ---- the world CLIP ------------------------------------------------------------------------------


def test_world_clip_names_colour_and_shape_of_held_out_pictures(ctx):
    from nodegraph.nodes import clip_space as C

    clip = C.open_clip_loader(ctx=ctx)  # the loader's defaults are the shipped world CLIP, offline
    assert clip.source.endswith("minisd-clip")
    images, truth = T.one_object_pictures(99, 96)  # two pictures of each colour × shape
    out = C.zero_shot_classify(clip, images, T.colour_shape_labels(), "{}", answers=truth)
    assert all(abs(sum(row.values()) - 1) < 1e-4 for row in out.probabilities)
    assert out.accuracy >= 0.9, out.accuracy


def test_world_clip_finds_each_one_object_picture_of_the_gallery_by_its_caption(ctx, tmp_path):
    """graphs/assets/world_pictures: 32 held-out pictures; captions.txt says what each shows."""
    from nodegraph.config import builtin_input_roots
    from nodegraph.nodes import clip_space as C

    ctx.roots.inputs = builtin_input_roots()
    clip = C.load_open_clip(ctx, "minisd-clip")
    lines = (builtin_input_roots()[0] / "world_pictures" / "captions.txt").read_text().splitlines()
    pairs = [line.split("  ", 1) for line in lines if line.endswith(tuple(world.POSITIONS)) and ".png  " in line]
    singles = [(f, c) for f, c in pairs if "," not in c and " of " not in c and " above " not in c and " below " not in c]
    assert len(singles) >= 5
    for file, caption in singles:
        out = C.semantic_search(clip, ctx, "world_pictures", caption, k=1, thumb=16)
        assert out.results[0]["file"] == file, (caption, out.results)
        assert out.skipped == [{"file": "captions.txt", "reason": out.skipped[0]["reason"]}]
