"""An example plugin: importing this module registers its nodes."""

from typing import Annotated

from nodegraph import Range, node
from nodegraph.types import Image


@node(category="example", name="ExampleInvert")
def invert(image: Image) -> Image:
    """Photographic negative: every value v becomes 1 - v."""
    return 1.0 - image


@node(category="example", name="ExampleScale")
def scale(value: float = 1.0, factor: Annotated[float, Range(0.0, 10.0)] = 2.0) -> float:
    """Multiply a number: the smallest possible node."""
    return value * factor
