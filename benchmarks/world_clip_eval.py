"""How well does the world CLIP match pictures and texts? The figures for issue 8.

    .venv/bin/python benchmarks/world_clip_eval.py [--model minisd-clip] [--images 480] [--search 256]

Everything runs through the project's own nodes (OpenClipLoader, ZeroShotClassify,
SemanticSearch) on the world CLIP found under the model roots (the packaged one by
default), offline, on held-out world pictures the trainer never drew. Printed:

- zero-shot colour × shape: `--images` one-object pictures spread evenly over the 48
  colour × shape pairs (sizes, positions and backgrounds random), each classified among all
  48 captions "a red circle", "an orange star", ... Top-1 accuracy, target >= 90 %; also
  how often the colour alone and the shape alone are right;
- search: `--search` held-out pictures (one to three objects) written as PNG files to a
  folder; each picture's own caption is the query; how often SemanticSearch ranks that very
  picture first and in the top 5 (chance: 1/N and 5/N); the time of the first search
  (embeds every picture) and of a second one (every vector from the on-disk cache).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

from nodegraph.config import load_config  # noqa: E402
from nodegraph.context import CancelToken, Roots, RunContext  # noqa: E402
from nodegraph.nodes import clip_space as C  # noqa: E402
from nodegraph.nodes import train as T  # noqa: E402
from nodegraph.nodes import world  # noqa: E402
from nodegraph.nodes.image import image_to_pil  # noqa: E402

HOLDOUT_SEED = 4321


def zero_shot(handle, count: int) -> dict:
    images, truth = T.one_object_pictures(HOLDOUT_SEED, count)
    best = C.zero_shot_classify(handle, images, T.colour_shape_labels(), "{}").best
    split = lambda label: (label.split()[1], label.split()[2])  # noqa: E731 - "a red circle" → (red, circle)
    return {
        "colour+shape": sum(b == t for b, t in zip(best, truth)) / count,
        "colour": sum(split(b)[0] == split(t)[0] for b, t in zip(best, truth)) / count,
        "shape": sum(split(b)[1] == split(t)[1] for b, t in zip(best, truth)) / count,
    }


def search(handle, roots: Roots, count: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="world-clip-search-") as tmp:
        folder = Path(tmp) / "pictures"
        folder.mkdir()
        batch = world.render_batch(world.batch_scenes(T.HOLDOUT + HOLDOUT_SEED, 1, count), 64)
        for i in range(count):
            image_to_pil(batch["image"], i).save(folder / f"{i:04d}.png")
        search_roots = Roots(inputs=[Path(tmp)], outputs=Path(tmp) / "out", models=roots.models, cache=Path(tmp) / "cache")
        ctx = RunContext("search", "world_clip_eval", search_roots, CancelToken())
        started = time.perf_counter()
        first = C.semantic_search(handle, ctx, "pictures", batch["caption"][0], k=5)
        first_time = time.perf_counter() - started
        started = time.perf_counter()
        second = C.semantic_search(handle, ctx, "pictures", batch["caption"][0], k=5)
        second_time = time.perf_counter() - started
        top1 = top5 = 0
        for i, caption in enumerate(batch["caption"]):
            ranked = [r["file"] for r in C.semantic_search(handle, ctx, "pictures", caption, k=5).results]
            top1 += ranked[0] == f"{i:04d}.png"
            top5 += f"{i:04d}.png" in ranked
    return {"top1": top1 / count, "top5": top5 / count, "first": first_time, "second": second_time,
            "embedded": (first.stats["embedded"], second.stats["embedded"]), "cached": second.stats["from_cache"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minisd-clip", help="open_clip folder under a model root")
    parser.add_argument("--images", type=int, default=480)
    parser.add_argument("--search", type=int, default=256)
    args = parser.parse_args()
    roots = load_config().roots
    ctx = RunContext("eval", "world_clip_eval", roots, CancelToken())
    started = time.perf_counter()
    import open_clip  # noqa: F401 - library import time is not model load time

    imports = time.perf_counter() - started
    started = time.perf_counter()
    handle = C.load_open_clip(ctx, args.model)
    print(f"device {T.pick_device()}, torch threads {torch.get_num_threads()}; open_clip import {imports:.2f} s, "
          f"loaded {args.model} in {time.perf_counter() - started:.2f} s ({handle.nbytes / 1e6:.2f} MB of weights in memory)")
    z = zero_shot(handle, args.images)
    print(f"zero-shot over 48 colour × shape captions, {args.images} held-out one-object pictures:")
    print(f"  colour+shape top-1 {z['colour+shape']:.1%} (target >= 90 %)   colour {z['colour']:.1%}   shape {z['shape']:.1%}   chance {1 / 48:.1%}")
    s = search(handle, roots, args.search)
    print(f"search, {args.search} held-out pictures, each queried with its own caption:")
    print(f"  own picture ranked first {s['top1']:.1%}, in the top 5 {s['top5']:.1%} (chance {1 / args.search:.1%} / {5 / args.search:.1%})")
    print(f"  first search {s['first']:.2f} s (embedded {s['embedded'][0]} pictures), second {s['second']:.3f} s "
          f"(embedded {s['embedded'][1]}, {s['cached']} from the cache)")


if __name__ == "__main__":
    main()
