"""Small nodes the engine tests run: counted, so a test can assert what executed."""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from nodegraph import Range, RunContext, node
from nodegraph.registry import Registry
from nodegraph.types import Image, InputFile, ModelFile

CALLS: list[str] = []


class Split(NamedTuple):
    low: int
    high: int


def make_registry() -> Registry:
    registry = Registry()
    with registry.loading("tests"):

        @node(category="test", name="Const")
        def const(value: int = 0) -> int:
            CALLS.append("Const")
            return value

        @node(category="test", name="Add")
        def add(a: int, b: int = 0) -> int:
            CALLS.append("Add")
            return a + b

        @node(category="test", name="Scale")
        def scale(x: float, factor: Annotated[float, Range(0.0, 10.0)] = 1.0) -> float:
            CALLS.append("Scale")
            return x * factor

        @node(category="test", name="Pick")
        def pick(mode: Literal["first", "second"] = "first", first: int = 1, second: int = 2) -> int:
            return first if mode == "first" else second

        @node(category="test", name="Split")
        def split(x: int) -> Split:
            CALLS.append("Split")
            return Split(x // 2, x - x // 2)

        @node(category="test", name="Fail")
        def fail(x: int) -> int:
            if x < 0:
                raise ValueError("x must not be negative")
            return x

        @node(category="test", name="Sink", output_node=True)
        def sink(x: float) -> float:
            CALLS.append("Sink")
            return x

        @node(category="test", name="Random", deterministic=False)
        def random_value() -> int:
            import random

            CALLS.append("Random")
            return random.randrange(10**9)

        @node(category="test", name="Slow")
        def slow(x: int, steps: int = 50, ctx: RunContext = None) -> int:
            import time

            for step in range(steps):
                ctx.progress(step + 1, steps)
                time.sleep(0.01)
            CALLS.append("Slow")
            return x

        @node(category="test", name="Blob", persist=True)
        def blob(size: int = 10) -> list[int]:
            CALLS.append("Blob")
            return list(range(size))

        @node(category="test", name="TakesImage")
        def takes_image(image: Image) -> Image:
            return image

        @node(category="test", name="ReadText")
        def read_text(ctx: RunContext, path: InputFile = "notes.txt") -> str:
            CALLS.append("ReadText")
            return ctx.input_path(path).read_text()

        @node(category="test", name="CountModelFiles", persist=True)
        def count_model_files(ctx: RunContext, model: ModelFile = "tiny") -> int:
            CALLS.append("CountModelFiles")
            return sum(1 for p in ctx.input_path(model, "model", root="model").rglob("*") if p.is_file())

    return registry
