"""What a running node can reach: progress reporting, cancellation and the file roots."""

from __future__ import annotations

import os
import stat
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import Cancelled, NodeInputError


class CancelToken:
    """Set from any thread; checked between nodes and inside long nodes."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


@dataclass
class Roots:
    """Where file nodes may read and write. Paths in graphs are resolved against these and
    may never escape them (no ``..``, no absolute path outside a root)."""

    inputs: list[Path] = field(default_factory=list)
    outputs: Path = field(default_factory=lambda: Path("output"))
    models: list[Path] = field(default_factory=list)
    cache: Path = field(default_factory=lambda: Path(".nodegraph-cache"))

    def resolve_read(self, name: str, root: str = "input") -> Path:
        """Find `name` under the input (or model) roots; raise if it escapes them or is missing."""
        bases = self.models if root == "model" else self.inputs
        candidates = self._candidates(name, bases)
        for path in candidates:
            if path.exists():
                return path
        shown = ", ".join(str(b) for b in bases) or "(none configured)"
        raise FileNotFoundError(f"{name!r} not found under the {root} roots: {shown}")

    def check_read(self, name: str, root: str = "input") -> str | None:
        """Return why `name` is not allowed (escapes every root), or None. Existence is a run-time matter."""
        bases = self.models if root == "model" else self.inputs
        if not self._candidates(name, bases):
            shown = ", ".join(str(b) for b in bases) or "(none configured)"
            return f"path escapes the allowed {root} roots ({shown})"
        return None

    def resolve_write(self, name: str) -> Path:
        path = self._inside(name, self.outputs)
        if path is None:
            raise PermissionError(f"{name!r} escapes the output root {self.outputs}")
        return path

    def check_write(self, name: str) -> str | None:
        if self._inside(name, self.outputs) is None:
            return f"path escapes the output root ({self.outputs})"
        return None

    def _candidates(self, name: str, bases: list[Path]) -> list[Path]:
        return [p for p in (self._inside(name, base) for base in bases) if p is not None]

    @staticmethod
    def _inside(name: str, base: Path) -> Path | None:
        if not name or "\x00" in name:
            return None  # empty names and NUL bytes never name a file
        base = base.resolve()
        target = Path(name)
        try:
            path = (target if target.is_absolute() else base / target).resolve()
        except (OSError, ValueError, RuntimeError):
            return None
        if path == base or base in path.parents:
            return path
        return None


ProgressCallback = Callable[[int, int, Any, str], None]


class RunContext:
    """Handed to a node that declares a ``RunContext`` parameter.

    progress(step, total, preview=None, text="")   report step i/n (and a preview image)
    check_cancelled()                               raise Cancelled if the run was cancelled
    roots                                           file roots (read with input_path, write with output_path)
    """

    def __init__(
        self,
        node_id: str,
        node_type: str,
        roots: Roots,
        cancel: CancelToken,
        on_progress: ProgressCallback | None = None,
        graph_json: str | None = None,
        services: dict[str, Any] | None = None,
    ) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.roots = roots
        self.cancel = cancel
        self._on_progress = on_progress
        self.graph_json = graph_json
        self.services = services if services is not None else {}
        self.files: list[Path] = []
        self.signature = ""  # the node's cache key in this run
        self._body_runner: Callable[[dict[str, Any], int], Any] | None = None

    def run_body(self, state: dict[str, Any], frame: int) -> Any:
        """For loop nodes: run the node's body once with this state; return its result."""
        if self._body_runner is None:
            raise RuntimeError(f"node {self.node_id} has no body to run")
        return self._body_runner(state, frame)

    @property
    def work_dir(self) -> Path:
        """A folder private to this node and its exact inputs, kept across runs: long nodes
        (training) save checkpoints here so a cancelled run resumes where it stopped."""
        folder = self.roots.cache / "work" / (self.signature or self.node_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def wrote(self, path: Path) -> Path:
        """Record a file this node wrote (CLI and TUI list them after the run)."""
        self.files.append(Path(path))
        return Path(path)

    def progress(self, step: int, total: int, preview: Any = None, text: str = "") -> None:
        self.cancel.check()
        if self._on_progress is not None:
            self._on_progress(step, total, preview, text)

    def check_cancelled(self) -> None:
        self.cancel.check()

    def input_path(self, name: str, input_name: str = "path", root: str = "input") -> Path:
        try:
            return self.roots.resolve_read(name, root)
        except FileNotFoundError as exc:
            raise NodeInputError(input_name, str(exc)) from None

    def output_path(self, name: str, input_name: str = "filename") -> Path:
        try:
            return self.roots.resolve_write(name)
        except PermissionError as exc:
            raise NodeInputError(input_name, str(exc)) from None


def _read_umask() -> int:
    """The process umask. os.umask can only be read by setting it, so set and restore at
    once, here at import, before any thread of ours writes a file."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _read_umask()


def publish_mode(tmp: str | Path, path: str | Path) -> None:
    """Give `tmp` (about to be renamed to `path`) the permissions `path` has now, or, when
    it is new, those open() / mkdir() would give it: mkstemp makes 0600 files and mkdtemp
    0700 folders, which a rename would otherwise carry over to the user's files."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = (0o777 if os.path.isdir(tmp) else 0o666) & ~UMASK
    os.chmod(tmp, mode)


@contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[Any]:
    """Write to a temporary file beside `path` and rename it into place only on success,
    so a crash or a cancel never leaves a half-written output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
        publish_mode(tmp_name, path)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Like atomic_write, for libraries that want a file name (ffmpeg, PIL with format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise OSError(f"nothing was written for {path.name}")
        publish_mode(tmp, path)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
