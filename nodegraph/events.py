"""Events a run emits. Observers are plain callables taking one event; the CLI's progress
display, the TUI and tests all subscribe the same way, so the executor never knows who
is watching."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class Event:
    run_id: str


@dataclass(frozen=True)
class RunStarted(Event):
    plan: tuple[str, ...]  # node ids in the order they will be visited


@dataclass(frozen=True)
class NodeStarted(Event):
    node_id: str
    node_type: str
    index: int  # position in the plan
    total: int


@dataclass(frozen=True)
class NodeProgress(Event):
    node_id: str
    step: int
    total: int
    preview: Any = None  # an IMAGE (or None): sampler previews, training samples
    text: str = ""


@dataclass(frozen=True)
class NodeCached(Event):
    node_id: str
    node_type: str
    source: str  # "memory" or "disk"


@dataclass(frozen=True)
class NodeFinished(Event):
    node_id: str
    node_type: str
    seconds: float
    peak_memory_bytes: int  # process high-water mark (RSS; plus device memory when on a GPU)
    files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class NodeFailed(Event):
    node_id: str
    node_type: str
    error: Exception


@dataclass(frozen=True)
class RunFinished(Event):
    status: str  # "ok", "failed", "cancelled"
    seconds: float
    executed: tuple[str, ...] = ()
    cached: tuple[str, ...] = ()
    files: tuple[Path, ...] = field(default_factory=tuple)


Observer = Callable[[Event], None]
