"""The wheel installs one top-level package, `nodegraph`, with every module and data file."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_maps_folders_into_the_nodegraph_namespace(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True, capture_output=True, timeout=300,
    )
    [wheel] = tmp_path.glob("nodegraph-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {n.split("/")[0] for n in names} == {"nodegraph", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    mapping = {"nodegraph": "nodegraph", "nodes": "nodegraph/nodes", "ui": "nodegraph/ui", "graphs": "nodegraph/graphs"}
    for folder, installed in mapping.items():
        for source in (REPO / folder).rglob("*"):
            if source.is_file() and source.suffix in (".py", ".json", ".md", ".tcss", ".safetensors", ".txt") and "__pycache__" not in source.parts:
                target = f"{installed}/{source.relative_to(REPO / folder).as_posix()}"
                assert target in names, f"{source.relative_to(REPO)} is missing from the wheel"
    entry_points = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info/entry_points.txt").decode()
    assert "nodegraph = nodegraph.cli:main" in entry_points
