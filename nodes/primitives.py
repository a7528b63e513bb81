"""Primitive values: a number, a piece of text or a seed that several nodes can share.

Link one Seed node into two samplers and they stay in step when you change it."""

from __future__ import annotations

from typing import Annotated

from nodegraph import Doc, Multiline, node
from nodegraph.types import Seed


@node(category="primitives", name="Int")
def int_value(value: int = 0) -> int:
    """An integer you can link into any INT (or FLOAT) input."""
    return value


@node(category="primitives", name="Float")
def float_value(value: float = 0.0) -> float:
    """A number you can link into any FLOAT input."""
    return value


@node(category="primitives", name="String")
def string_value(value: Annotated[str, Multiline()] = "") -> str:
    """A piece of text, e.g. one prompt shared by several encoders."""
    return value


@node(category="primitives", name="Bool")
def bool_value(value: bool = False) -> bool:
    """A switch you can link into any BOOL input."""
    return value


@node(category="primitives", name="Seed", output="seed")
def seed_value(seed: Annotated[Seed, Doc("same seed, same noise, same picture")] = 0) -> Seed:
    """A seed for the random generator. Everything random in nodegraph takes a seed, so a
    graph run twice gives the same picture."""
    return seed
