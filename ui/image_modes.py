"""How the TUI draws pictures: half-blocks (the default, any colour terminal, tmux included)
or real terminal graphics through textual-image, which the user opts in to.

    nodegraph tui --images MODE            (wins over the environment)
    NODEGRAPH_TUI_IMAGES=MODE nodegraph tui
    (neither)                              half-blocks

MODE is one of IMAGE_MODES: halfblock, sixel, kitty (the kitty terminal graphics protocol)
or auto (ask the terminal; half-blocks when it supports neither).

textual-image asks the terminal about its capabilities when it is imported, and that only
works before Textual starts reading the keyboard: the app imports it while it is being built
(see `picture_renderer_for` in widgets/image_preview.py), never in half-block mode."""

from __future__ import annotations

import os
from collections.abc import Mapping

from nodegraph.errors import NodegraphError

HALFBLOCK, SIXEL, KITTY, AUTO = "halfblock", "sixel", "kitty", "auto"
IMAGE_MODES = (HALFBLOCK, SIXEL, KITTY, AUTO)
IMAGES_OPTION = "--images"
IMAGES_ENV = "NODEGRAPH_TUI_IMAGES"


class ImageModeError(NodegraphError):
    """An image mode that is not one of IMAGE_MODES (a usage error: nothing was started)."""


def check_image_mode(mode: str, source: str = IMAGES_OPTION) -> str:
    """`mode` normalised (case and spaces do not matter); `source` names where it came from."""
    normalised = mode.strip().lower()
    if normalised not in IMAGE_MODES:
        raise ImageModeError(f"{source}: unknown image mode {mode!r} (allowed: {', '.join(IMAGE_MODES)})")
    return normalised


def choose_image_mode(option: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The mode the user asked for: the command-line option, else $NODEGRAPH_TUI_IMAGES, else
    half-blocks. An empty value counts as not given, so `NODEGRAPH_TUI_IMAGES=` stays harmless."""
    environ = os.environ if environ is None else environ
    if option:
        return check_image_mode(option, IMAGES_OPTION)
    if environ.get(IMAGES_ENV, "").strip():
        return check_image_mode(environ[IMAGES_ENV], IMAGES_ENV)
    return HALFBLOCK


def detect_graphics_protocol() -> str:
    """What `auto` becomes: the protocol textual-image found when it asked the terminal
    (sixel first, as textual-image prefers it), else half-blocks (no terminal, or no support)."""
    from textual_image.renderable import Image as DetectedRenderable
    from textual_image.renderable import SixelImage, TGPImage

    if DetectedRenderable is SixelImage:
        return SIXEL
    if DetectedRenderable is TGPImage:
        return KITTY
    return HALFBLOCK
