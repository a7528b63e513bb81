"""Port types: the small named set of things that flow along links.

A port type is a name plus a one-line promise about the value. Node authors use the
`Annotated` aliases below in their signatures (``image: Image``); the engine reads the
`PortType` marker out of the annotation. Compatibility between types is explicit and
small: a value never changes type silently on a link; conversions are nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any


@dataclass(frozen=True)
class PortType:
    name: str
    doc: str = ""
    literal: bool = False  # may be typed directly in the graph JSON (INT, FLOAT, ...)

    def __repr__(self) -> str:
        return self.name


_TYPES: dict[str, PortType] = {}


def port_type(name: str, doc: str = "", literal: bool = False) -> PortType:
    """Declare (or fetch) a port type. Plugins may declare their own names."""
    existing = _TYPES.get(name)
    if existing is not None:
        return existing
    created = PortType(name, doc, literal)
    _TYPES[name] = created
    return created


def get_port_type(name: str) -> PortType | None:
    return _TYPES.get(name)


def all_port_types() -> list[PortType]:
    return list(_TYPES.values())


IMAGE = port_type("IMAGE", "float tensor B×C×H×W (C=3 RGB), values in [0, 1]")
MASK = port_type("MASK", "float tensor B×1×H×W in [0, 1]; 1 marks the area to change")
LATENT = port_type("LATENT", "dict with 'samples' (B×4×h×w tensor) and optional 'noise_mask'")
CONDITIONING = port_type("CONDITIONING", "text embeddings (and extras such as ControlNet hints)")
MODEL = port_type("MODEL", "a denoising network handle (UNet + its scheduler config)")
CLIP = port_type("CLIP", "a text encoder + tokenizer handle")
VAE = port_type("VAE", "an autoencoder handle (image <-> latent)")
CONTROL_NET = port_type("CONTROL_NET", "a ControlNet model handle")
DEPTH = port_type("DEPTH", "float tensor B×1×H×W, larger = nearer (normalised disparity)")
FLOW = port_type("FLOW", "float tensor B×2×H×W of pixel offsets (dx, dy)")
FRAMES = port_type("FRAMES", "a stream of IMAGE frames")
INT = port_type("INT", "integer", literal=True)
FLOAT = port_type("FLOAT", "floating-point number", literal=True)
STRING = port_type("STRING", "text", literal=True)
BOOL = port_type("BOOL", "true or false", literal=True)
SEED = port_type("SEED", "integer seed for a random generator", literal=True)
ENUM = port_type("ENUM", "one of a fixed set of names", literal=True)
JSON = port_type("JSON", "any JSON value (lists, tables)", literal=True)
ANY = port_type("ANY", "anything (for generic nodes such as Preview)")
CHECK = port_type("CHECK", "a lesson check result: {name, passed, value, detail}")

# (source, destination) pairs that may be linked although the names differ. Everything
# else needs the same name. Widening only: nothing here loses information.
COMPATIBLE: frozenset[tuple[str, str]] = frozenset(
    {
        ("INT", "FLOAT"),
        ("INT", "SEED"),
        ("SEED", "INT"),
        ("ENUM", "STRING"),
        ("STRING", "ENUM"),  # checked against the allowed names at run time
    }
)


def can_link(source: PortType, destination: PortType) -> bool:
    if destination is ANY or source is destination:
        return True
    return (source.name, destination.name) in COMPATIBLE


# ---- annotation helpers for node authors --------------------------------------------

Image = Annotated[Any, IMAGE]
Mask = Annotated[Any, MASK]
Latent = Annotated[Any, LATENT]
Conditioning = Annotated[Any, CONDITIONING]
Model = Annotated[Any, MODEL]
Clip = Annotated[Any, CLIP]
Vae = Annotated[Any, VAE]
ControlNet = Annotated[Any, CONTROL_NET]
Depth = Annotated[Any, DEPTH]
Flow = Annotated[Any, FLOW]
Frames = Annotated[Any, FRAMES]
Seed = Annotated[int, SEED]
Anything = Annotated[Any, ANY]
Check = Annotated[dict, CHECK]


@dataclass(frozen=True)
class Range:
    """Bounds (inclusive) and a step for a number input: ``Annotated[float, Range(0, 30, step=0.5)]``."""

    min: float | None = None
    max: float | None = None
    step: float | None = None


@dataclass(frozen=True)
class Doc:
    """A short help text for one input: ``Annotated[int, Doc("how many steps")]``."""

    text: str


@dataclass(frozen=True)
class FileInput:
    """A STRING input naming a file to read; it must resolve under an input or model root."""

    root: str = "input"  # "input" or "model"
    extensions: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class FileOutput:
    """A STRING input naming a file (or prefix) to write under the output root."""


@dataclass(frozen=True)
class Multiline:
    """A STRING input meant for several lines (prompts)."""


InputFile = Annotated[str, FileInput()]
ModelFile = Annotated[str, FileInput(root="model")]
OutputFile = Annotated[str, FileOutput()]
Prompt = Annotated[str, Multiline()]
