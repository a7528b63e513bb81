"""How fast MiniSD trains on this machine, and how long the shipped graphs take.

    python benchmarks/minisd_train_speed.py [--steps 5] [--warmup 2]

Times real optimizer steps of each trainer at the batch sizes the full graphs in
graphs/train/ use (minisd.json, minisd_controlnet.json, minisd_depth.json: world pictures
rendered, Canny hints, VAE/UNet/ControlNet/depth-net forward + backward + AdamW), and
prints steps per second and the minutes those graphs' step counts take. The ControlNet is
timed against an untrained MiniSD (same architecture, so the same speed). The step counts
are those of the shipped models; what they reach is printed by benchmarks/minisd_eval.py.
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

GRAPHS = Path(__file__).resolve().parents[1] / "graphs" / "train"
FULL_GRAPHS = ("minisd.json", "minisd_controlnet.json", "minisd_depth.json")


def graph_settings() -> dict[str, dict]:
    """Inputs of each trainer node type, from the full (not quick) training graphs."""
    settings = {}
    for name in FULL_GRAPHS:
        for entry in json.loads((GRAPHS / name).read_text())["nodes"].values():
            settings[entry["type"]] = {**entry["inputs"], "_graph": name}
    return settings


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
    data = T.EncodedWorld.encode(vae, 0, 4 * batch_size, device)  # TrainDenoiser encodes its pictures once, before step 1

    def step(i: int) -> None:
        latents, captions = data.batch(batch_size, T.step_generator(0, i), device)
        loss = T.denoiser_loss(unet, te, tok, sched, latents, captions, T.step_generator(0, i), 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return time_steps(step, steps, warmup)


def bench_controlnet(batch_size: int, steps: int, warmup: int) -> tuple[float, float]:
    from diffusers import ControlNetModel

    device = pick_device()
    tok = M.build_tokenizer()
    vae, te, unet = T._seeded_init(0, lambda: (M.build_vae(), M.build_text_encoder(tok), M.build_unet()))
    vae, te, unet = (m.to(device).eval().requires_grad_(False) for m in (vae, te, unet))
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=T.controlnet_embedding_channels(8)).to(device).train()
    params = list(net.parameters())
    opt = T.adamw(params, 3e-4, 1e-2)
    sched = M.build_train_scheduler()

    def step(i: int) -> None:
        batch = T.world_batch(0, i, batch_size, device)
        hints = T.edge_hints(batch["image"])
        loss = T.controlnet_loss(vae, unet, net, te, tok, sched, batch["image"], hints, batch["caption"], T.step_generator(0, i), 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    return time_steps(step, steps, warmup)


def bench_depth_net(batch_size: int, steps: int, warmup: int) -> tuple[float, float]:
    from nodegraph.nodes import depth as D

    device = pick_device()
    net = T._seeded_init(0, D.build_depth_net).to(device).train()
    opt = T.adamw(net.parameters(), 2e-3, 1e-4)

    def step(i: int) -> None:
        batch = T.world_batch(0, i, batch_size, device)
        loss = T.depth_loss(net, batch["image"], batch["depth"].to(device), 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
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
    parser.add_argument("--only", nargs="*", default=None, help="trainer node types to time (default: all), e.g. TrainControlNet TrainDepthNet")
    parser.add_argument("--no-sampling", action="store_true", help="skip the sampling-time figure")
    args = parser.parse_args()
    settings = graph_settings()
    print(f"device {pick_device()}, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    tok = M.build_tokenizer()
    sizes = {
        "vae": M.count_parameters(M.build_vae()),
        "text_encoder": M.count_parameters(M.build_text_encoder(tok)),
        "unet": M.count_parameters(M.build_unet()),
    }
    from diffusers import ControlNetModel

    from nodegraph.nodes import depth as D

    sizes["controlnet"] = M.count_parameters(ControlNetModel.from_unet(
        M.build_unet(), conditioning_embedding_out_channels=T.controlnet_embedding_channels(8)))
    sizes["depth_net"] = M.count_parameters(D.build_depth_net())
    print("parameters: " + ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in sizes.items()),
          f"(fp32 total {sum(sizes.values()) * 4 / 2**20:.1f} MB)")
    minutes_per_graph: dict[str, float] = {}
    benches = (("TrainAutoencoder", bench_autoencoder), ("TrainDenoiser", bench_denoiser),
               ("TrainControlNet", bench_controlnet), ("TrainDepthNet", bench_depth_net))
    for node_type, bench in benches:
        if args.only and node_type not in args.only:
            continue
        cfg = settings[node_type]
        rate, mean_rate = bench(cfg["batch_size"], args.steps, args.warmup)
        minutes = cfg["steps"] / rate / 60
        minutes_per_graph[cfg["_graph"]] = minutes_per_graph.get(cfg["_graph"], 0.0) + minutes
        print(f"{node_type:17s} batch {cfg['batch_size']:3d}: {rate:6.3f} steps/s (median step; mean {mean_rate:.3f}), "
              f"{cfg['batch_size'] * rate:6.1f} images/s; {cfg['steps']} steps (graph setting) ≈ {minutes:6.1f} min")
    for graph, minutes in minutes_per_graph.items():
        print(f"graphs/train/{graph} total ≈ {minutes:.0f} min on this machine (median steps)")
    if not args.no_sampling:
        print(f"sampling: one 64×64 image, 20 steps, CFG: {bench_sampling():.2f} s (bar: < 1 s)")


if __name__ == "__main__":
    main()
