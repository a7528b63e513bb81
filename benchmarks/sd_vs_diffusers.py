"""Our txt2img nodes vs diffusers' StableDiffusionPipeline on the same tiny components.

    .venv/bin/python benchmarks/sd_vs_diffusers.py [--steps 20] [--repeats 5] [--size 64]

Timing: both sides load the components in one process, warm up once, then run `repeats`
full txt2img runs each (encode prompts, sample `steps` steps with CFG, decode), alternating
run by run so that a busy machine slows both alike; medians (and bests) are compared.
Peak memory: each side runs once in a fresh process of its own. Prints the wall-time ratio
ours/diffusers (target <= 1.10) and the peak memory of both (CUDA: max allocated; CPU: peak
resident set size of the process). Runs offline: the tiny model is built from configs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parent.parent
PROMPT, NEGATIVE, SEED = "a photo of an astronaut riding a horse", "blurry", 42


def _fixtures():
    spec = importlib.util.spec_from_file_location("tiny_sd_fixtures", ROOT / "tests" / "diffusion" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _peak_bytes() -> int:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_runner(side: str, folder: Path, steps: int, size: int):
    import torch

    if side == "ours":
        from nodegraph.context import CancelToken, Roots, RunContext
        from nodegraph.nodes.latent import empty_latent_image, vae_decode
        from nodegraph.nodes.models import checkpoint_loader
        from nodegraph.nodes.sampling import ksampler
        from nodegraph.nodes.text import clip_text_encode

        ctx = RunContext("bench", "KSampler", Roots(models=[folder.parent]), CancelToken())

        def once():
            model, clip, vae = checkpoint_loader(folder.name, ctx)
            positive, negative = clip_text_encode(clip, PROMPT), clip_text_encode(clip, NEGATIVE)
            latent = empty_latent_image(size, size, 1, vae=vae)
            out = ksampler(model, positive, negative, latent, ctx, seed=SEED, steps=steps, cfg=7.5,
                           sampler_name="euler", scheduler="normal")
            return vae_decode(vae, out)
    else:
        from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

        from nodegraph.nodes.device import pick_device, pick_dtype

        pipe = StableDiffusionPipeline.from_pretrained(
            str(folder), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
            local_files_only=True, torch_dtype=pick_dtype(),
        ).to(pick_device())
        pipe.set_progress_bar_config(disable=True)
        config = dict(pipe.scheduler.config)

        def once():
            pipe.scheduler = EulerDiscreteScheduler.from_config(config)
            generator = torch.Generator("cpu").manual_seed(SEED)
            return pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=steps, guidance_scale=7.5,
                        generator=generator, height=size, width=size, output_type="pt").images

    return once


def peak_memory_of(side: str, folder: Path, steps: int, size: int, threads: int) -> dict:
    """One side alone in this process: load, run once, report the peak."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    image = make_runner(side, folder, steps, size)()
    return {"peak_bytes": _peak_bytes(), "image_mean": float(image.float().mean())}


def interleaved_times(folder: Path, steps: int, repeats: int, size: int, threads: int) -> dict:
    """Both sides in one process, alternating run by run, so a busy machine slows both alike."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    runners = {side: make_runner(side, folder, steps, size) for side in ("diffusers", "ours")}
    for run in runners.values():
        run()  # warm-up
    times: dict[str, list[float]] = {side: [] for side in runners}
    for _ in range(repeats):
        for side, run in runners.items():
            start = time.perf_counter()
            run()
            times[side].append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    parser.add_argument("--side", choices=["ours", "diffusers"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.side:
        result = peak_memory_of(args.side, Path(args.folder), args.steps, args.size, args.threads)
        print("RESULT " + json.dumps(result))
        return 0

    with tempfile.TemporaryDirectory(prefix="nodegraph-bench-") as tmp:
        folder = _fixtures().save_diffusers_folder(Path(tmp) / "tiny-sd")
        results = {}
        for side in ("diffusers", "ours"):  # peak memory: each side in a fresh process
            proc = subprocess.run(
                [sys.executable, __file__, "--side", side, "--folder", str(folder), "--steps", str(args.steps),
                 "--size", str(args.size), "--threads", str(args.threads)],
                capture_output=True, text=True, check=False,
            )
            line = next((l for l in proc.stdout.splitlines() if l.startswith("RESULT ")), None)
            if proc.returncode or line is None:
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                return 1
            results[side] = json.loads(line[len("RESULT "):])
        times = interleaved_times(folder, args.steps, args.repeats, args.size, args.threads)
    for side in results:
        results[side]["median_s"] = statistics.median(times[side])
        results[side]["min_s"] = min(times[side])
    ours, theirs = results["ours"], results["diffusers"]
    ratio = ours["median_s"] / theirs["median_s"]
    best_ratio = ours["min_s"] / theirs["min_s"]
    print(f"txt2img, tiny SD components, {args.steps} steps euler, cfg 7.5, {args.size}x{args.size}, "
          f"median of {args.repeats} runs, torch threads {args.threads or 'default'}")
    for label, r in (("diffusers StableDiffusionPipeline", theirs), ("nodegraph nodes", ours)):
        print(f"  {label:33s}: median {r['median_s'] * 1000:8.1f} ms  best {r['min_s'] * 1000:8.1f} ms   "
              f"peak memory {r['peak_bytes'] / 2**20:7.1f} MiB")
    print(f"  wall-time ratio ours/diffusers   : {ratio:.3f} (median), {best_ratio:.3f} (best)  "
          f"(target <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")
    print(f"  same picture: {abs(ours['image_mean'] - theirs['image_mean']) < 1e-6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
