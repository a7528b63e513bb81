"""How fast the Deforum-style examples render on MiniSD: 48 frames at 64×64, to mp4.

    python benchmarks/deforum_speed.py [--frames 48] [--graphs examples/deforum_2d examples/deforum_3d]

Each graph runs as shipped (frame count from --frames) in a fresh process, through the
same FrameLoop → VideoEncode path, with the persistent cache off so every frame is really
rendered. Prints seconds, frames per second and peak memory per graph. Target (issue 5):
48 frames in under 2 minutes on this machine (2 CPU cores)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path


def _render():
    spec = importlib.util.spec_from_file_location("animation_memory", Path(__file__).with_name("animation_memory.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--graphs", nargs="+", default=["examples/deforum_2d", "examples/deforum_3d"])
    args = parser.parse_args()
    render = _render()
    print(f"load average {os.getloadavg()[0]:.2f} (other work on the machine slows every figure)")
    results = {}
    for graph in args.graphs:
        run = render(graph, args.frames)
        results[graph] = run
        verdict = "ok" if run["seconds"] < 120 else "SLOWER than the 2 min target"
        print(f"{graph}: {run['frames']} frames in {run['seconds']:.1f} s = {run['frames'] / run['seconds']:.2f} frames/s, "
              f"peak RSS {run['peak_rss_mb']:.0f} MB  ({verdict})")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
