"""FRAMES: a stream of images produced one at a time.

A FrameStream wraps a factory that yields frames (IMAGE tensors, one or more pictures
each). Iterating it runs the factory again, so a stream can be consumed by several sinks,
and nothing forces all frames into memory at once: a 300-frame animation is encoded
while it is rendered."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator


@dataclass
class FrameStream:
    factory: Callable[[], Iterable[Any]]
    count: int | None = None  # number of frames if known in advance
    fps: float | None = None
    width: int | None = None
    height: int | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.factory())

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError("this frame stream does not know its length in advance")
        return self.count

    @classmethod
    def from_list(cls, frames: list[Any], fps: float | None = None) -> "FrameStream":
        return cls(lambda: list(frames), count=len(frames), fps=fps)
