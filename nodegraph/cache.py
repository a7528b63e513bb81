"""Result caches keyed by content signatures.

A node's signature hashes its type, its code version, its literal inputs (for a file
input, also the size and modification time of what it names) and the signatures of the
outputs linked into it (Hamilton-style keys, built from content, not
from node ids). Two consequences a learner can see: re-running an unchanged graph
recomputes nothing, and changing one input recomputes exactly what lies downstream.

MemoryCache  LRU under a byte budget, with values sized honestly (tensors by their
             storage, models by their parameters).
DiskCache    for nodes that opt in (``persist=True``): results survive the process; safe
             across upgrades because the code version is inside the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .context import publish_mode

# ---- files named by inputs -------------------------------------------------------------


def file_stamp(path: Path) -> str:
    """Size and modification time of a file, or of every file in a folder (with its relative
    path), hashed: enough to notice a file replaced or edited in place without reading it
    (a model folder can hold gigabytes). Model loaders key their shared models on it too."""
    path = Path(path)
    try:
        if path.is_file():
            entries = [("", path.stat())]
        else:
            entries = sorted((str(p.relative_to(path)), p.stat()) for p in path.rglob("*") if p.is_file())
    except OSError:  # gone or unreadable: the reader reports that itself
        return "missing"
    text = "\n".join(f"{name}\x1e{st.st_size}\x1e{st.st_mtime_ns}" for name, st in entries)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


# ---- sizing -----------------------------------------------------------------------------


def sizeof(value: Any, _seen: set[int] | None = None) -> int:
    """Bytes held by a value, counting tensors/arrays by their data, models by parameters."""
    seen = _seen if _seen is not None else set()
    if id(value) in seen:
        return 0
    seen.add(id(value))
    explicit = getattr(value, "nbytes", None)
    if isinstance(explicit, int):
        return explicit
    if hasattr(value, "element_size") and hasattr(value, "nelement"):  # torch.Tensor
        return int(value.element_size() * value.nelement())
    if hasattr(value, "parameters") and callable(value.parameters):  # torch.nn.Module
        try:
            return sum(int(p.element_size() * p.nelement()) for p in value.parameters())
        except Exception:
            return sys.getsizeof(value)
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(sizeof(k, seen) + sizeof(v, seen) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sys.getsizeof(value) + sum(sizeof(v, seen) for v in value)
    return sys.getsizeof(value)


# ---- memory cache ---------------------------------------------------------------------------


class MemoryCache:
    def __init__(self, budget_bytes: int = 4 * 2**30) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self.used_bytes = 0
        self.evictions = 0

    def get(self, signature: str) -> dict[str, Any] | None:
        entry = self._entries.get(signature)
        if entry is None:
            return None
        self._entries.move_to_end(signature)
        return entry[0]

    def put(self, signature: str, outputs: dict[str, Any]) -> None:
        size = sizeof(outputs)
        if size > self.budget_bytes:
            return  # larger than the whole budget: keeping it would evict everything
        if signature in self._entries:
            self.used_bytes -= self._entries.pop(signature)[1]
        self._entries[signature] = (outputs, size)
        self.used_bytes += size
        while self.used_bytes > self.budget_bytes and self._entries:
            _, (_, dropped) = self._entries.popitem(last=False)
            self.used_bytes -= dropped
            self.evictions += 1

    def __contains__(self, signature: str) -> bool:
        return signature in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self.used_bytes = 0


# ---- disk cache -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """How to store one kind of value on disk. Packs register codecs for their types
    (the diffusion pack registers tensors and model folders); the engine knows JSON."""

    name: str
    matches: Callable[[Any], bool]
    save: Callable[[Any, Path], None]  # write the value into an empty folder
    load: Callable[[Path], Any]


_CODECS: list[Codec] = []


def register_codec(codec: Codec) -> None:
    _CODECS[:] = [c for c in _CODECS if c.name != codec.name] + [codec]


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
        return True
    except (TypeError, ValueError):
        return False


class DiskCache:
    """One folder per signature, written atomically: ``<root>/<sig>/{manifest.json, <output>/...}``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _folder(self, signature: str) -> Path:
        return self.root / signature[:2] / signature

    def can_store(self, outputs: dict[str, Any]) -> bool:
        return all(_is_json(v) or any(c.matches(v) for c in _CODECS) for v in outputs.values())

    def get(self, signature: str) -> dict[str, Any] | None:
        folder = self._folder(signature)
        manifest_path = folder / "manifest.json"
        if not manifest_path.exists():
            return None
        try:
            manifest = json.loads(manifest_path.read_text())
            outputs: dict[str, Any] = {}
            codecs = {c.name: c for c in _CODECS}
            for name, entry in manifest["outputs"].items():
                if entry["codec"] == "json":
                    outputs[name] = entry["value"]
                else:
                    outputs[name] = codecs[entry["codec"]].load(folder / entry["dir"])
            return outputs
        except Exception:
            return None  # unreadable or from a codec no longer registered: recompute

    def put(self, signature: str, outputs: dict[str, Any]) -> bool:
        if not self.can_store(outputs):
            return False
        final = self._folder(signature)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{signature}.", dir=final.parent))
        try:
            manifest: dict[str, Any] = {"outputs": {}}
            for index, (name, value) in enumerate(outputs.items()):
                codec = next((c for c in _CODECS if c.matches(value)), None)
                if codec is None:
                    manifest["outputs"][name] = {"codec": "json", "value": value}
                    continue
                sub = staging / f"out{index}"
                sub.mkdir()
                codec.save(value, sub)
                manifest["outputs"][name] = {"codec": codec.name, "dir": sub.name}
            (staging / "manifest.json").write_text(json.dumps(manifest))
            if final.exists():
                shutil.rmtree(final)
            publish_mode(staging, final)  # mkdtemp made it 0700
            os.replace(staging, final)
            return True
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
