"""Configuration: file roots, plugin folders and the cache budget.

Looked up in this order: $NODEGRAPH_CONFIG, ./nodegraph.toml, ~/.config/nodegraph/config.toml.

    [roots]
    inputs = ["input", "~/pictures"]   # where file nodes may read
    outputs = "output"                 # where they may write
    models = ["models"]                # checkpoints, VAEs, ControlNets
    cache = "~/.cache/nodegraph"       # persistent results (trained weights, ...)

    plugins = ["my_nodes"]             # folders of plugin modules
    memory_budget_gb = 4               # in-memory result cache

Relative paths are taken from the config file's folder (from the working directory when
there is no file). The project's own assets (example pictures, the MiniSD weights) are
always readable, after the configured roots.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .context import Roots
from .errors import NodegraphError

PACKAGE_DIR = Path(__file__).resolve().parent


def packaged_dir(name: str) -> Path:
    """A data folder installed inside the nodegraph namespace (graphs, node pack assets)."""
    import importlib.util

    spec = importlib.util.find_spec(f"nodegraph.{name}")
    if spec is None or not spec.submodule_search_locations:
        raise NodegraphError(f"package data nodegraph.{name} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


@dataclass
class Config:
    roots: Roots
    plugins: list[Path] = field(default_factory=list)
    memory_budget_bytes: int = 4 * 2**30
    source: Path | None = None


def _config_file() -> Path | None:
    env = os.environ.get("NODEGRAPH_CONFIG")
    if env:
        path = Path(env).expanduser()
        if not path.exists():
            raise NodegraphError(f"NODEGRAPH_CONFIG names {str(path)!r}, which does not exist")
        return path
    for candidate in (Path("nodegraph.toml"), Path("~/.config/nodegraph/config.toml").expanduser()):
        if candidate.exists():
            return candidate
    return None


def builtin_input_roots() -> list[Path]:
    return [packaged_dir("graphs") / "assets"]


def builtin_model_roots() -> list[Path]:
    return [packaged_dir("nodes") / "assets" / "models"]


def load_config(out: str | Path | None = None, plugin_dirs: list[str] | None = None) -> Config:
    path = _config_file()
    data: dict = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise NodegraphError(f"cannot read config {str(path)!r}: {exc}") from None
    base = path.parent if path else Path.cwd()

    def here(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    roots_data = data.get("roots", {})
    roots = Roots(
        inputs=[here(p) for p in roots_data.get("inputs", ["input"])] + builtin_input_roots(),
        outputs=here(roots_data.get("outputs", "output")),
        models=[here(p) for p in roots_data.get("models", ["models"])] + builtin_model_roots(),
        cache=here(roots_data.get("cache", "~/.cache/nodegraph")),
    )
    if out is not None:
        roots.outputs = Path(out).expanduser().resolve()
    plugins = [here(p) for p in data.get("plugins", [])] + [Path(p).expanduser() for p in (plugin_dirs or [])]
    budget = int(float(data.get("memory_budget_gb", 4)) * 2**30)
    return Config(roots=roots, plugins=plugins, memory_budget_bytes=budget, source=path)
