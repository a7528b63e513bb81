"""The `nodegraph` command, run as a real subprocess where start-up matters."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nodegraph.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "graphs" / "examples" / "image_basics.json"
NODEGRAPH = shutil.which("nodegraph") or str(Path(sys.executable).parent / "nodegraph")


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NODEGRAPH_CONFIG="", HOME=str(cwd))
    env.pop("NODEGRAPH_CONFIG")
    return subprocess.run([NODEGRAPH, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def test_run_prints_written_paths_and_embeds_the_graph(tmp_path):
    done = run_cli("run", "examples/image_basics", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    paths = done.stdout.split()
    assert len(paths) == 1 and Path(paths[0]).is_file()
    from PIL import Image

    with Image.open(paths[0]) as png:
        embedded = json.loads(png.text["nodegraph"])
        assert png.size == (64, 64)
    assert embedded["nodes"]["6"]["type"] == "SaveImage"
    assert "run ok" in done.stderr  # plain progress lines when piped


def test_run_json_set_and_until(tmp_path):
    done = run_cli("run", str(EXAMPLE), "--json", "--set", "5.factor=0.25", "--until", "5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "ok" and summary["files"] == []
    assert sorted(summary["executed"]) == ["1", "2", "3", "4", "5"]
    assert summary["outputs"]["5"]["image"].startswith("Tensor[1×3×64×64")


def test_invalid_graph_exits_2_with_every_problem(tmp_path):
    done = run_cli("run", str(EXAMPLE), "--set", "5.factor=3", "--set", "2.method=lanczos", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "node '5' (BlendImages), input 'factor'" in done.stderr
    assert "node '2' (ResizeImage), input 'method'" in done.stderr


def test_failed_run_exits_1_naming_the_node(tmp_path):
    done = run_cli("run", str(EXAMPLE), "--set", "1.path=missing.png", cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "node '1' (LoadImage)" in done.stderr and "missing.png" in done.stderr


def test_usage_errors_exit_2(tmp_path):
    assert run_cli("run", "no/such/graph.json", cwd=tmp_path).returncode == 2
    assert run_cli("run", str(EXAMPLE), "--set", "nonsense", cwd=tmp_path).returncode == 2
    assert run_cli("run", str(EXAMPLE), "--until", "42", cwd=tmp_path).returncode == 2
    assert run_cli("frobnicate", cwd=tmp_path).returncode == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "nodegraph/1", "nodes": {')
    done = run_cli("validate", str(bad), cwd=tmp_path)
    assert done.returncode == 2 and "line 1" in done.stderr and "Traceback" not in done.stderr


def test_validate_and_help_do_not_import_torch(tmp_path):
    probe = (
        "import sys\n"
        "from nodegraph.cli import main\n"
        f"code = main(['validate', {str(EXAMPLE)!r}])\n"
        "assert code == 0, code\n"
        "assert 'torch' not in sys.modules, 'validate imported torch'\n"
        "import nodegraph\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")


def test_nodes_json_lists_ports_and_docs(capsys):
    assert main(["nodes", "--json"]) == 0
    listing = {entry["type"]: entry for entry in json.loads(capsys.readouterr().out)}
    blend = listing["BlendImages"]
    assert blend["inputs"]["factor"]["range"] == {"min": 0.0, "max": 1.0, "step": 0.05}
    assert blend["inputs"]["mode"]["choices"] == ["normal", "multiply", "screen", "difference"]
    assert blend["outputs"] == {"image": "IMAGE"} and "Mix two pictures" in blend["doc"]
    schema = blend["input_schema"]["properties"]  # built by pydantic from the signature
    assert schema["factor"]["minimum"] == 0.0 and schema["factor"]["maximum"] == 1.0 and schema["factor"]["default"] == 0.5
    assert schema["mode"]["enum"] == ["normal", "multiply", "screen", "difference"]
    assert "image_a" not in schema  # links are not typed values


def test_schema_command(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["properties"]["format"]["const"] == "nodegraph/1"


def test_plugins_flag_loads_a_folder(capsys):
    assert main(["--plugins", str(REPO / "tests" / "plugins" / "folder"), "nodes", "--category", "example"]) == 0
    assert "FolderPosterize" in capsys.readouterr().out
