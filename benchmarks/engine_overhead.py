"""Engine overhead on a 10,000-node graph of trivial nodes.

    python benchmarks/engine_overhead.py [--nodes 10000]

Prints: validation time, fresh run (validation + hashing + execution) and fully cached
re-run, per node in microseconds, and `nodegraph --help` / `nodegraph validate` start-up.
Targets (issue 2): fresh < 100 µs/node, cached < 20 µs/node, start-up < 0.5 s."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nodegraph import node
from nodegraph.context import Roots
from nodegraph.executor import Executor
from nodegraph.graph import graph_from_data, save_graph
from nodegraph.registry import Registry
from nodegraph.validate import validate


def make_registry() -> Registry:
    registry = Registry()
    with registry.loading("benchmark"):

        @node(name="Add")
        def add(a: int, b: int = 1) -> int:
            return a + b

        @node(name="Const")
        def const(value: int = 0) -> int:
            return value

    return registry


def make_graph(count: int):
    # a wide tree: node i reads node (i-1)//2, so depth stays ~log2(n) and fan-out is real
    nodes = {"0": {"type": "Const", "inputs": {"value": 1}}}
    for i in range(1, count):
        nodes[str(i)] = {"type": "Add", "inputs": {"a": {"from": [str((i - 1) // 2), "int"]}, "b": i % 7}}
    return graph_from_data({"format": "nodegraph/1", "nodes": nodes})


def best_of(fn, repeat: int = 5, clock=time.perf_counter) -> float:
    times = []
    for _ in range(repeat):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def startup(args: list[str]) -> float:
    exe = shutil.which("nodegraph") or str(Path(sys.executable).parent / "nodegraph")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([exe, *args], capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=10_000)
    count = parser.parse_args().nodes
    registry = make_registry()
    graph = make_graph(count)
    targets = list(graph.nodes)
    with tempfile.TemporaryDirectory() as tmp:
        roots = Roots(inputs=[Path(tmp)], outputs=Path(tmp) / "out", cache=Path(tmp) / "cache")

        validation = best_of(lambda: validate(graph, registry, roots))

        def fresh():
            Executor(registry, roots, disk_cache=False).run(graph, targets=targets)

        fresh_time = best_of(fresh)
        fresh_cpu = best_of(fresh, clock=time.process_time)
        executor = Executor(registry, roots, disk_cache=False)
        executor.run(graph, targets=targets)
        cached_time = best_of(lambda: executor.run(graph, targets=targets))
        cached_cpu = best_of(lambda: executor.run(graph, targets=targets), clock=time.process_time)

        graph_file = Path(tmp) / "g.json"
        save_graph(graph_from_data({"format": "nodegraph/1", "nodes": {"1": {"type": "Int", "inputs": {"value": 1}}}}), graph_file)
        help_time = startup(["--help"])
        validate_time = startup(["validate", str(graph_file)])

    per = lambda seconds: seconds / count * 1e6  # noqa: E731
    figures = {
        "nodes": count,
        "validate_ms": round(validation * 1e3, 1),
        "fresh_run_us_per_node": round(per(fresh_time), 1),
        "cached_run_us_per_node": round(per(cached_time), 1),
        "cached_over_fresh": round(cached_time / fresh_time, 3),
        "fresh_cpu_us_per_node": round(per(fresh_cpu), 1),
        "cached_cpu_us_per_node": round(per(cached_cpu), 1),
        "help_startup_s": round(help_time, 3),
        "validate_startup_s": round(validate_time, 3),
    }
    print(f"graph of {count} trivial nodes")
    print(f"  validation:            {figures['validate_ms']:8.1f} ms  ({per(validation):.1f} µs/node)")
    print(f"  fresh run (incl. validation + hashing): {figures['fresh_run_us_per_node']:6.1f} µs/node   target < 100")
    print(f"  fully cached re-run:   {figures['cached_run_us_per_node']:8.1f} µs/node   target < 20")
    print(f"  cached / fresh:        {figures['cached_over_fresh']:8.3f}")
    print(f"  (CPU time, robust to a busy machine: fresh {figures['fresh_cpu_us_per_node']} µs/node, cached {figures['cached_cpu_us_per_node']} µs/node)")
    print(f"  `nodegraph --help`:    {help_time:8.3f} s       target < 0.5")
    print(f"  `nodegraph validate`:  {validate_time:8.3f} s       target < 0.5")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
