"""Streaming check for frame loops: peak memory of a 300-frame render vs a 30-frame one.

    python benchmarks/animation_memory.py [--graph examples/animation_2d_warp] [--size 128]

Each render runs in a fresh process (so peak RSS is its own) through the same FrameLoop
→ VideoEncode path the animation examples use. Frames stream into ffmpeg, so the peak
should not grow with the frame count. Target (issue 5): 300-frame peak within 10% of the
30-frame peak. Also prints frames per second."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
from nodegraph.cli import resolve_graph_path
from nodegraph.config import load_config
from nodegraph.executor import Executor
from nodegraph.graph import load_graph
from nodegraph.registry import build_registry

graph_name, frames, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
config = load_config(out=out)
graph = load_graph(resolve_graph_path(graph_name))
loop_id = next(i for i, n in graph.nodes.items() if n.type == "FrameLoop")
graph.nodes[loop_id].inputs["frames"] = frames
executor = Executor(build_registry(), config.roots, disk_cache=False)
start = time.perf_counter()
result = executor.run(graph)
seconds = time.perf_counter() - start
print(json.dumps({"frames": frames, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "files": [str(f) for f in result.files]}))
"""


def render(graph: str, frames: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", CHILD, graph, str(frames), out], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--graph", default="examples/animation_2d_warp")
    parser.add_argument("--short", type=int, default=30)
    parser.add_argument("--long", type=int, default=300)
    args = parser.parse_args()
    short = render(args.graph, args.short)
    long = render(args.graph, args.long)
    ratio = long["peak_rss_mb"] / short["peak_rss_mb"]
    for run in (short, long):
        print(f"{run['frames']:4d} frames: {run['seconds']:6.1f} s, {run['frames'] / run['seconds']:5.1f} frames/s, peak RSS {run['peak_rss_mb']:7.1f} MB")
    print(f"peak memory {args.long}/{args.short} frames: {ratio:.3f}  (target <= 1.10)")
    print(json.dumps({"short": short, "long": long, "ratio": round(ratio, 4)}))


if __name__ == "__main__":
    main()
