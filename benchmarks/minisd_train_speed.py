"""How fast MiniSD trains on this machine, and how long the shipped graphs take.

    python benchmarks/minisd_train_speed.py [--steps 5] [--warmup 2]

Times real optimizer steps of each trainer at the batch sizes graphs/train/minisd.json
uses (world pictures rendered, VAE/UNet forward + backward + AdamW), and prints steps per
second and the minutes that graph's step counts take. The step counts are our estimate of
what reaches the issue's quality bars (VAE PSNR >= 28 dB; >= 90 % colour+shape and >= 80 %
position accuracy): they are settings to be confirmed by a full run, not measurements.
The machine's load average is printed too: other processes slow every figure down."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from nodegraph.nodes import minisd as M
from nodegraph.nodes import train as T
from nodegraph.nodes.device import pick_device

GRAPH = Path(__file__).resolve().parents[1] / "graphs" / "train" / "minisd.json"


def graph_settings() -> dict[str, dict]:
    nodes = json.loads(GRAPH.read_text())["nodes"]
    return {entry["type"]: entry["inputs"] for entry in nodes.values()}


def time_steps(step, steps: int, warmup: int) -> tuple[float, float]:
    """(steps/s from the median step, steps/s from the mean): on a shared machine the
    median shows the machine's speed, the mean what you got while others were busy."""
    for i in range(warmup):
        step(i)
    times = []
    for i in range(warmup, warmup + steps):
        started = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - started)
    return 1 / statistics.median(times), len(times) / sum(times)


def bench_autoencoder(batch_size: int, steps: int, warmup: int) -> float:
    device = pick_device()
    vae = T._seeded_init(0, M.build_vae).to(device).train()
    opt = T.adamw(vae.parameters(), 1e-3, 0.0)

    def step(i: int) -> None:
        images = T.world_batch(0, i, batch_size, device)["image"]
        loss = T.autoencoder_loss(vae, images, T.step_generator(0, i), 1e-6, 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return time_steps(step, steps, warmup)


def bench_denoiser(batch_size: int, steps: int, warmup: int) -> float:
    device = pick_device()
    vae = T._seeded_init(0, M.build_vae).to(device).eval().requires_grad_(False)
    tok = M.build_tokenizer()
    te, unet = T._seeded_init(0, lambda: (M.build_text_encoder(tok), M.build_unet()))
    te, unet = te.to(device).train(), unet.to(device).train()
    params = list(unet.parameters()) + list(te.parameters())
    opt = T.adamw(params, 5e-4, 1e-2)
    sched = M.build_train_scheduler()

    def step(i: int) -> None:
        batch = T.world_batch(0, i, batch_size, device)
        loss = T.denoiser_loss(vae, unet, te, tok, sched, batch["image"], batch["caption"], T.step_generator(0, i), 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return time_steps(step, steps, warmup)


def bench_sampling(runs: int = 3) -> float:
    """Seconds for one 64×64 image, 20 Euler steps with CFG, untrained weights (speed only)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        pipe = M.load_pipeline(M.fresh_pipeline_folder(Path(tmp) / "p"))
        pipe.set_progress_bar_config(disable=True)
        run = lambda: pipe("a red circle at the top left", num_inference_steps=20, height=64, width=64, output_type="np")  # noqa: E731
        run()
        started = time.perf_counter()
        for _ in range(runs):
            run()
        return (time.perf_counter() - started) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="timed steps per trainer")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    settings = graph_settings()
    print(f"device {pick_device()}, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    tok = M.build_tokenizer()
    sizes = {
        "vae": M.count_parameters(M.build_vae()),
        "text_encoder": M.count_parameters(M.build_text_encoder(tok)),
        "unet": M.count_parameters(M.build_unet()),
    }
    print("parameters: " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in sizes.items()),
          f"(fp32 total {sum(sizes.values()) * 4 / 2**20:.1f} MB)")
    total_minutes = 0.0
    for node_type, bench in (("TrainAutoencoder", bench_autoencoder), ("TrainDenoiser", bench_denoiser)):
        cfg = settings[node_type]
        rate, mean_rate = bench(cfg["batch_size"], args.steps, args.warmup)
        minutes = cfg["steps"] / rate / 60
        total_minutes += minutes
        print(f"{node_type:17s} batch {cfg['batch_size']:3d}: {rate:6.3f} steps/s (median step; mean {mean_rate:.3f}), "
              f"{cfg['batch_size'] * rate:6.1f} images/s; {cfg['steps']} steps (graph setting) ≈ {minutes:6.1f} min")
    print(f"graphs/train/minisd.json total ≈ {total_minutes:.0f} min on this machine (median steps)")
    print(f"sampling: one 64×64 image, 20 steps, CFG: {bench_sampling():.2f} s (bar: < 1 s)")
    print("not timed: TrainControlNet and TrainDepthNet do not exist yet")


if __name__ == "__main__":
    main()
