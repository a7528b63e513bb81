"""Does MiniSD draw what it is asked for? The quality bars of the shipped models.

    .venv/bin/python benchmarks/minisd_eval.py [--model minisd] [--images 240] [--cfg 8] [--steps 20]

Everything runs through the project's own nodes (CheckpointLoader, CLIPTextEncode,
KSampler, VAEDecode, ControlNetApply, EstimateDepth), on the models found under the model
roots (the packaged ones by default), offline. Printed, with the target next to each:

- prompt following: `--images` single-object prompts spread evenly over every colour ×
  shape and, apart from that, over the 27 size × position words, one seed each, `--steps`
  Euler steps at the default CFG; the world's evaluator reads each picture (nodes/world.py:
  colour labelling finds the objects, the trained world reader names each shape or calls
  it unclear; checked against ground truth in tests/nodes/test_world*.py). Colour+shape
  correct >= 90 %, position word correct >= 80 %. The same pictures read by the analytic
  template fit are printed too;
- the same prompts and seeds at CFG 1.0 (no guidance): must be clearly lower; "whole
  prompt" (every word right: colour, shape, size, position, one object) shows it best;
- two-object prompts ("a red circle right of a white square") at both CFGs: colour+shape
  of both objects, the relation word ("left of", "above") and the whole prompt (no target);
- the same measures on exact world pictures of the prompts after a VAE round trip (the
  decoder's ceiling), and colour+shape per size word for all three;
- VAE reconstruction PSNR on held-out world pictures: >= 28 dB;
- time for one 64×64 picture, 20 steps, with CFG (median of 5): < 1 s;
- load time of the shipped pipeline, ControlNet and depth net (first load in this process);
- depth net: mean absolute error of the normalised disparity against the world's exact
  depth on held-out pictures (0 = exact);
- ControlNet: edge agreement (F1 of the output's Canny edges against the hint, 1-pixel
  tolerance) with the ControlNet and, same prompts and seeds, without it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from nodegraph.config import load_config  # noqa: E402
from nodegraph.context import CancelToken, RunContext  # noqa: E402
from nodegraph.nodes import world  # noqa: E402
from nodegraph.nodes import train as T  # noqa: E402
from nodegraph.nodes.check import edge_agreement_value, image_distance_value  # noqa: E402
from nodegraph.nodes.controlnet import canny_edges, controlnet_apply  # noqa: E402
from nodegraph.nodes.depth import estimate_depth  # noqa: E402
from nodegraph.nodes.latent import empty_latent_image, vae_decode  # noqa: E402
from nodegraph.nodes.models import checkpoint_loader, load_controlnet  # noqa: E402
from nodegraph.nodes.sampling import ksampler  # noqa: E402
from nodegraph.nodes.text import encode_text, make_conditioning  # noqa: E402

HOLDOUT_SEED = 1234  # held-out pictures: the trainers never draw from world.HOLDOUT streams


def eval_prompts(count: int) -> list[str]:
    """`count` single-object captions in the world's grammar ("a small red circle at the top
    left": the form every single-object training caption has), cycling colour × shape so
    every pair is equally used, and cycling the 27 size × position combinations apart from
    it, so every size is seen equally often at every position and each pair at several sizes."""
    pairs = [(c, k) for c in world.COLORS for k in world.SHAPES]
    sizes = list(world.SIZES)
    places = [(size, position) for size in sizes for position in world.POSITIONS]
    prompts = []
    for i in range(count):
        color, kind = pairs[i % len(pairs)]
        size, position = places[i % len(places)]
        prompts.append(f"a {size} {color} {kind} at the {position}")
    return prompts


def conditioning(clip, prompts: list[str]):
    return make_conditioning(torch.cat([encode_text(clip, p) for p in prompts]))


def batches(prompts: list[str], clip, chunk: int):
    """Runs of at most `chunk` consecutive prompts whose token vectors have the same length
    (a batch shares one tensor; a prompt longer than one 77-token chunk is longer)."""
    lengths = [encode_text(clip, p).shape[1] for p in prompts]
    start = 0
    while start < len(prompts):
        end = start + 1
        while end < len(prompts) and end - start < chunk and lengths[end] == lengths[start]:
            end += 1
        yield start, end
        start = end


def generate(ctx, parts, prompts, seed, cfg, steps, chunk=48, controls=None):
    """One picture per prompt, batched; `controls` = (controlnet, hints)."""
    model, clip, vae = parts
    images = []
    for start, end in batches(prompts, clip, chunk):
        positive, negative = conditioning(clip, prompts[start:end]), conditioning(clip, [""])
        if controls is not None:
            net, hints = controls
            positive, negative = controlnet_apply(positive, negative, net, hints[start:end], vae=vae)
        latent = empty_latent_image(64, 64, end - start, vae=vae)
        out = ksampler(model, positive, negative, latent, ctx, seed=seed + start, steps=steps, cfg=cfg)
        images.append(vae_decode(vae, out).float().cpu())
    return torch.cat(images)


def read_back(images, prompts, reader: str = "trained") -> list[dict]:
    """The world evaluator's report on each picture against its own prompt."""
    return [world.evaluate(images[i : i + 1], p, reader=reader) for i, p in enumerate(prompts)]


def prompt_accuracy(images, prompts, reader: str = "trained") -> dict[str, float]:
    """Shares of pictures with colour, shape, position, colour+shape right, as the world's
    reader sees them (the trained one, or the template fit: reader="analytic"); "whole":
    every word of the prompt right (size and position too, and no extra object); and
    colour+shape per size word ("small", "medium", "large")."""
    reports = read_back(images, prompts, reader)
    fields = [r["accuracy"] for r in reports]
    shares = {key: statistics.mean(f[key] for f in fields) for key in ("color", "shape", "position", "color_and_shape")}
    shares["whole"] = statistics.mean(r["all_correct"] for r in reports)
    for size in world.SIZES:
        shares[size] = statistics.mean(f["color_and_shape"] for f, p in zip(fields, prompts) if f" {size} " in p)
    return shares


def two_object_prompts(count: int) -> list[str]:
    """Captions of `count` random held-out two-object scenes ("a red circle right of a white
    square"): colour, shape and a relation word for each pair."""
    rng = np.random.default_rng(HOLDOUT_SEED + 1)
    return [world.caption(world.sample_scene(rng, 2)) for _ in range(count)]


def two_object_accuracy(images, prompts) -> dict[str, float]:
    """Colour+shape of both objects, the relation word, and the whole prompt right."""
    reports = read_back(images, prompts)
    return {
        "color_and_shape": statistics.mean(r["accuracy"]["color_and_shape"] for r in reports),
        "relation": statistics.mean(r["accuracy"]["relation"] for r in reports),
        "whole": statistics.mean(r["all_correct"] for r in reports),
    }


def round_trip_accuracy(vae, prompts: list[str]) -> dict[str, float]:
    """The same measure on exact world pictures of the prompts after a VAE round trip: what
    the decoder can show at best, whatever the UNet draws."""
    rng = np.random.default_rng(HOLDOUT_SEED)
    scenes = [world.scene_from_target(rng, world.parse_prompt(p)) for p in prompts]
    pictures = world.render_batch(scenes, 64)["image"].to(vae.vae.device, vae.vae.dtype)
    return prompt_accuracy(T.reconstruct(vae.vae, pictures).float().cpu(), prompts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minisd", help="pipeline folder name under a model root")
    parser.add_argument("--controlnet", default="minisd-controlnet-canny")
    parser.add_argument("--depth", default="minisd-depth")
    parser.add_argument("--images", type=int, default=240)
    parser.add_argument("--cfg", type=float, default=8.0, help="the default CFG (KSampler's default)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["controlnet", "depth"])
    args = parser.parse_args()
    torch.manual_seed(0)
    ctx = RunContext("eval", "minisd_eval", load_config().roots, CancelToken())
    print(f"device {T.pick_device()}, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")

    started = time.perf_counter()
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel  # noqa: F401
    from transformers import CLIPTextModel, CLIPTokenizer  # noqa: F401

    imports = time.perf_counter() - started  # library import time is not model load time
    started = time.perf_counter()
    parts = checkpoint_loader(args.model, ctx)
    loads = {args.model: time.perf_counter() - started}

    prompts = eval_prompts(args.images)
    started = time.perf_counter()
    guided_images = generate(ctx, parts, prompts, args.seed, args.cfg, args.steps)
    per_image = (time.perf_counter() - started) / len(prompts)
    guided = prompt_accuracy(guided_images, prompts)
    template_fit = prompt_accuracy(guided_images, prompts, reader="analytic")
    unguided = prompt_accuracy(generate(ctx, parts, prompts, args.seed, 1.0, args.steps), prompts)
    print(f"\nprompt following over {len(prompts)} pictures, {args.steps} steps "
          f"({len(world.COLORS)} colours x {len(world.SHAPES)} shapes, {len(prompts) / (len(world.COLORS) * len(world.SHAPES)):g} each):")
    bound = round_trip_accuracy(parts[2], prompts)
    print(f"  {'':16} {'colour':>8} {'shape':>8} {'colour+shape':>13} {'position':>9} {'whole prompt':>13}"
          "   colour+shape by size: small medium large")
    rows = ((f"CFG {args.cfg:g}", guided), ("CFG 1", unguided), ("VAE round trip", bound), (f"CFG {args.cfg:g}, template", template_fit))
    for label, acc in rows:
        print(f"  {label:16} {acc['color']:8.1%} {acc['shape']:8.1%} {acc['color_and_shape']:13.1%} {acc['position']:9.1%} "
              f"{acc['whole']:13.1%}   {acc['small']:27.1%} {acc['medium']:6.1%} {acc['large']:5.1%}")
    print("  (read by the trained world reader; whole prompt: colour, shape, size and position all right and no other\n"
          "   object; VAE round trip: exact world pictures of the same prompts, encoded and decoded: the decoder's\n"
          "   ceiling; template: the CFG pictures read by the analytic template fit instead)")
    print(f"  targets: colour+shape >= 90 %, position >= 80 % at CFG {args.cfg:g}; CFG 1 clearly lower "
          f"(drop: {guided['whole'] - unguided['whole']:+.1%} whole prompt, "
          f"{guided['color_and_shape'] - unguided['color_and_shape']:+.1%} colour+shape, "
          f"{guided['position'] - unguided['position']:+.1%} position)")
    print(f"  batched generation: {per_image:.3f} s per picture")
    pairs = two_object_prompts(args.images // 2)
    print(f"\ntwo-object prompts ({len(pairs)}, e.g. \"{pairs[0]}\"; not a target):")
    print(f"  {'':16} {'colour+shape':>13} {'relation':>9} {'whole prompt':>13}")
    for cfg in (args.cfg, 1.0):
        acc = two_object_accuracy(generate(ctx, parts, pairs, args.seed, cfg, args.steps), pairs)
        print(f"  {f'CFG {cfg:g}':16} {acc['color_and_shape']:13.1%} {acc['relation']:9.1%} {acc['whole']:13.1%}")
    print("  (relation: 'left of', 'right of', 'above', 'below' true of the two objects found; chance is about 50 %)")

    times = []
    one = conditioning(parts[1], [prompts[0]]), conditioning(parts[1], [""])
    for repeat in range(6):
        started = time.perf_counter()
        out = ksampler(parts[0], *one, empty_latent_image(64, 64, 1, vae=parts[2]), ctx, seed=repeat, steps=20, cfg=args.cfg)
        vae_decode(parts[2], out)
        times.append(time.perf_counter() - started)
    print(f"\none 64x64 picture, 20 steps with CFG: {statistics.median(times[1:]):.3f} s median (target < 1 s)")

    held_out = T.world_batch(T.HOLDOUT + HOLDOUT_SEED, 0, 256, T.pick_device())
    rebuilt = T.reconstruct(parts[2].vae, held_out["image"].to(parts[2].vae.dtype)).float()
    psnr = image_distance_value(rebuilt.cpu(), held_out["image"].cpu(), "psnr")
    print(f"VAE reconstruction on 256 held-out world pictures: PSNR {psnr:.2f} dB (target >= 28 dB)")

    if "depth" not in args.skip:
        started = time.perf_counter()
        depth = estimate_depth(ctx, held_out["image"][:1], backend="minisd", model=args.depth)
        loaded = loads[args.depth] = time.perf_counter() - started
        depth = estimate_depth(ctx, held_out["image"], backend="minisd", model=args.depth)
        error = float((depth.cpu() - T.depth_targets(held_out["depth"]).cpu()).abs().mean())
        print(f"depth net ({args.depth}, loaded in {loaded:.2f} s): mean abs error of normalised disparity "
              f"{error:.4f} on 256 held-out pictures (0 = exact; predicting a flat 0.5 gives "
              f"{float((T.depth_targets(held_out['depth']) - 0.5).abs().mean()):.4f})")

    if "controlnet" not in args.skip:
        started = time.perf_counter()
        net = load_controlnet(args.controlnet, ctx)
        loads[args.controlnet] = time.perf_counter() - started
        count = 64
        pictures, captions = held_out["image"][:count], list(held_out["caption"][:count])
        hints = canny_edges(pictures)
        with_net = generate(ctx, parts, captions, args.seed, args.cfg, args.steps, controls=(net, hints))
        without = generate(ctx, parts, captions, args.seed, args.cfg, args.steps)
        f1_with = statistics.mean(edge_agreement_value(canny_edges(with_net[i : i + 1]), hints[i : i + 1]) for i in range(count))
        f1_without = statistics.mean(edge_agreement_value(canny_edges(without[i : i + 1]), hints[i : i + 1]) for i in range(count))
        print(f"ControlNet edge agreement (F1, 1 px tolerance) over {count} held-out hints: "
              f"{f1_with:.3f} with, {f1_without:.3f} without (same prompts and seeds)")
    shown = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in loads.items())
    print(f"\nload times: {shown}; total {sum(loads.values()):.2f} s (target < 2 s; "
          f"importing diffusers/transformers model classes first took {imports:.2f} s)")


if __name__ == "__main__":
    main()
