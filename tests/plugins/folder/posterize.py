"""A single-file plugin, discovered from a plugin folder (--plugins DIR)."""

from typing import Annotated

from nodegraph import Range, node
from nodegraph.types import Image


@node(category="example", name="FolderPosterize")
def posterize(image: Image, levels: Annotated[int, Range(2, 256)] = 4) -> Image:
    """Round every value to one of `levels` steps: fewer levels, flatter colours."""
    return (image * (levels - 1)).round() / (levels - 1)
