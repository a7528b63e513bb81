"""Lesson 14's plugin: one node, written the way any nodegraph node is.

nodegraph imports every ``*.py`` file of a plugin folder; ``@node`` registers the function
it decorates. The signature is the node's interface: `image` (an IMAGE, no default, so it
must be linked) and `levels` (an INT from 2 to 256, default 4) become its inputs, the
return annotation its output, and the docstring the help the editor shows."""

from __future__ import annotations

from typing import Annotated

from nodegraph import Doc, NodeInputError, Range, node
from nodegraph.types import Image


@node(category="lesson", name="Posterize")
def posterize(
    image: Image,
    levels: Annotated[int, Range(2, 256), Doc("how many values each channel keeps: 2 = on/off, 256 = all")] = 4,
) -> Image:
    """Round every value to one of `levels` evenly spaced steps between 0 and 1: fewer
    levels, flatter colours (a poster's few inks). No value moves by more than half a step,
    1/(2·(levels − 1)), and posterizing twice gives the same picture as once."""
    if not 2 <= levels <= 256:
        raise NodeInputError("levels", "need at least two levels", expected="2 .. 256", got=repr(levels))
    steps = levels - 1
    return (image.float().clamp(0.0, 1.0) * steps).round() / steps
