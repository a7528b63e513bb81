"""The node registry: built-in packs and plugins register here.

Plugins come from two places, both through the same ``@node`` API the built-ins use:
* installed packages declaring an entry point in the group ``nodegraph.nodes`` (the entry
  point names a module to import, or a callable taking the registry);
* plugin folders (``--plugins DIR`` or ``plugins = [...]`` in the config file): every
  ``*.py`` file and every package folder inside is imported.

A plugin may not silently replace a node type that already exists: that is an error
unless the plugin passes ``replace=True`` to ``@node``.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import sys
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterator

from .errors import RegistryError
from .node import NodeSpec

ENTRY_POINT_GROUP = "nodegraph.nodes"

# One module per topic in nodegraph.nodes; imported in this order.
BUILTIN_PACKS = ["primitives", "image", "models", "text", "latent", "guidance", "sampling", "controlnet", "schedule", "color", "video", "flow", "transform", "depth", "check", "world", "world_reader", "minisd", "train", "clip_space"]


class Registry:
    def __init__(self) -> None:
        self._specs: dict[str, NodeSpec] = {}
        self._source = "builtin"
        self.loaded_plugins: list[str] = []

    # -- registration ----------------------------------------------------------------
    @contextmanager
    def loading(self, source: str) -> Iterator[None]:
        """While active, @node registers into this registry, stamped with `source`."""
        global _ACTIVE
        previous, self._source = self._source, source
        previous_active, _ACTIVE = _ACTIVE, self
        try:
            yield
        finally:
            self._source = previous
            _ACTIVE = previous_active

    def add(self, spec: NodeSpec, replace: bool = False) -> None:
        spec.source = self._source
        existing = self._specs.get(spec.type_name)
        if existing is not None and existing.origin != spec.origin and not replace:
            raise RegistryError(
                f"node type {spec.type_name!r} from {spec.source} ({spec.origin}) would replace "
                f"the one from {existing.source} ({existing.origin}); rename it, or pass "
                f"replace=True to @node if replacing it is intended"
            )
        self._specs[spec.type_name] = spec

    def include(self, other: "Registry", categories: tuple[str, ...] | None = None) -> None:
        """Copy node types from another registry (tests: built-in loop nodes + test nodes)."""
        for spec in other:
            if categories is None or spec.category in categories:
                self._specs.setdefault(spec.type_name, spec)

    # -- lookup ---------------------------------------------------------------------------
    def get(self, type_name: str) -> NodeSpec | None:
        return self._specs.get(type_name)

    def __contains__(self, type_name: str) -> bool:
        return type_name in self._specs

    def __iter__(self) -> Iterator[NodeSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: (s.category, s.type_name)))

    def __len__(self) -> int:
        return len(self._specs)

    def suggest(self, type_name: str, n: int = 3) -> list[str]:
        names = list(self._specs)
        lowered = {name.lower(): name for name in names}
        close = difflib.get_close_matches(type_name.lower(), list(lowered), n=n, cutoff=0.5)
        return [lowered[c] for c in close]

    # -- plugins ----------------------------------------------------------------------------
    def load_entry_points(self) -> list[str]:
        loaded = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            source = f"plugin {ep.name} (entry point {ep.value})"
            with self.loading(source):
                try:
                    target = ep.load()
                except RegistryError:
                    raise
                except Exception as exc:
                    raise RegistryError(f"plugin {ep.name!r} failed to import: {type(exc).__name__}: {exc}") from exc
                if callable(target) and not isinstance(target, type(sys)):
                    target(self)
            loaded.append(ep.name)
        self.loaded_plugins += loaded
        return loaded

    def load_folder(self, folder: Path) -> list[str]:
        folder = Path(folder)
        if not folder.is_dir():
            raise RegistryError(f"plugin folder {str(folder)!r} does not exist")
        loaded = []
        tag = hashlib.blake2b(str(folder.resolve()).encode(), digest_size=4).hexdigest()
        for path in sorted(folder.iterdir()):
            if path.name.startswith((".", "_")):
                continue
            if path.is_dir() and (path / "__init__.py").exists():
                file, search = path / "__init__.py", [str(path)]
            elif path.suffix == ".py":
                file, search = path, None
            else:
                continue
            module_name = f"nodegraph_plugins_{tag}.{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, file, submodule_search_locations=search)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            with self.loading(f"plugin {path.stem} ({path})"):
                try:
                    spec.loader.exec_module(module)
                except RegistryError:
                    del sys.modules[module_name]
                    raise
                except Exception as exc:
                    del sys.modules[module_name]
                    raise RegistryError(
                        f"plugin {str(path)!r} failed to import: {type(exc).__name__}: {exc}"
                    ) from exc
            loaded.append(path.stem)
        self.loaded_plugins += loaded
        return loaded


_DEFAULT: Registry | None = None
_ACTIVE: Registry | None = None
_BUILTINS_LOADED = False


def active_registry() -> Registry:
    """Where @node registers: the registry currently loading a pack, else the default one."""
    return _ACTIVE if _ACTIVE is not None else default_registry()


def default_registry() -> Registry:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Registry()
    return _DEFAULT


def load_builtin_nodes(registry: Registry | None = None) -> Registry:
    """Import the built-in packs (cheap: heavy libraries are imported lazily by the nodes)."""
    global _BUILTINS_LOADED
    registry = registry or default_registry()
    if not _BUILTINS_LOADED:
        with registry.loading("builtin"):
            importlib.import_module("nodegraph.loop")
            for pack in BUILTIN_PACKS:
                importlib.import_module(f"nodegraph.nodes.{pack}")
        _BUILTINS_LOADED = True
    return registry


def build_registry(plugin_dirs: list[Path] | None = None, entry_point_plugins: bool = True) -> Registry:
    """The registry a run uses: built-ins, then entry-point plugins, then plugin folders."""
    registry = load_builtin_nodes()
    if entry_point_plugins and not getattr(registry, "_entry_points_done", False):
        registry.load_entry_points()
        registry._entry_points_done = True  # type: ignore[attr-defined]
    for folder in plugin_dirs or []:
        registry.load_folder(Path(folder))
    return registry
