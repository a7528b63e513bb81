"""Pictures in the terminal: an IMAGE, MASK, DEPTH, FLOW (as the colour wheel FlowVisualize
draws) or the first frame of FRAMES, converted once to a PIL picture (`picture_of`) and
handed to a renderer:

- half-blocks (rich-pixels), the default: each cell shows two pixels, so any terminal with
  colour works, tmux and SVG snapshots included;
- sixel or the kitty graphics protocol (textual-image), opted in to with `--images` or
  $NODEGRAPH_TUI_IMAGES (see ui/image_modes.py): real pixels, in terminals that have them.

Small pictures are enlarged with NEAREST so every pixel stays a crisp square, large ones
shrunk to fit."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from rich_pixels import Pixels
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Static

from ..image_modes import AUTO, HALFBLOCK, KITTY, SIXEL, detect_graphics_protocol

PREVIEW_TYPES = ("IMAGE", "MASK", "DEPTH", "FLOW", "FRAMES")


def tensor_to_pil(value: Any):
    """A B×C×H×W (or C×H×W) tensor with 1 or 3 channels → PIL image of its first picture."""
    from nodegraph.nodes.image import image_to_pil

    tensor = value
    if getattr(tensor, "dim", None) is None:
        return None
    if tensor.dim() == 3:
        tensor = tensor[None]
    if tensor.dim() != 4 or tensor.shape[1] not in (1, 3) or tensor.shape[0] == 0:
        return None
    return image_to_pil(tensor.detach().float().cpu(), 0)


def flow_to_pil(value: Any):
    """A B×2×H×W FLOW → PIL image of its first field, coloured like FlowVisualize."""
    from nodegraph.nodes.flow import flow_visualize

    if getattr(value, "dim", None) is None or value.dim() != 4 or value.shape[1] != 2 or value.shape[0] == 0:
        return None
    return tensor_to_pil(flow_visualize(value[:1].detach().cpu()))


def frames_of(value: Any):
    """The frames of a FRAMES value (a FrameStream or an IMAGE batch), one picture at a time.
    Lazy: a frame loop's stream renders (or reads back from the cache) as it is consumed."""
    if getattr(value, "dim", None) is not None:
        if value.dim() == 4:
            for index in range(value.shape[0]):
                yield value[index : index + 1]
        return
    for item in value:
        if getattr(item, "dim", None) is not None and item.dim() == 4:
            for index in range(item.shape[0]):
                yield item[index : index + 1]


def frame_count(value: Any) -> int | None:
    if getattr(value, "dim", None) is not None:
        return int(value.shape[0])
    try:
        return len(value)
    except TypeError:
        return None


def picture_of(value: Any, type_name: str):
    """(PIL image, note) for a value of a previewable port type, or (None, "")."""
    if type_name == "FLOW":
        return flow_to_pil(value), "flow (hue = direction, saturation = length)"
    if type_name == "FRAMES":
        first = next(frames_of(value), None)
        count = frame_count(value)
        note = f"frame 1/{count}" if count else "frame 1"
        return (tensor_to_pil(first) if first is not None else None), f"{note} (v plays them)"
    return tensor_to_pil(value), ""


HALF_BLOCK_CELL = (1, 2)  # pixels per terminal cell (width, height): "▀" draws one above the other


def fit(pil, max_cols: int, max_rows: int, cell: tuple[int, int] = HALF_BLOCK_CELL, whole_cells: bool = False):
    """Resize so the picture fills at most max_cols × max_rows terminal cells of `cell`
    (width, height) pixels each, keeping its shape. `whole_cells` rounds the size to whole
    cells: graphics protocols stretch a picture to whole cells, and doing it here, with
    NEAREST, keeps them from resampling (and blurring) it once more."""
    from PIL import Image

    cell_width, cell_height = cell
    width, height = pil.size
    scale = min(max_cols * cell_width / width, max_rows * cell_height / height)
    size = (max(cell_width, int(width * scale)), max(cell_height, int(height * scale)))
    if whole_cells:
        columns, rows = max(1, round(size[0] / cell_width)), max(1, round(size[1] / cell_height))
        size = (columns * cell_width, rows * cell_height)
    method = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
    return pil.convert("RGB").resize(size, method)


# Not even an empty line: the blank box below the caption is then drawn exactly as it was when
# caption and picture shared one Static (an empty string would be a line of another style).
NO_LINES = Group()


class HalfBlockRenderer:
    """Draws a picture with half-blocks (rich-pixels) in a Static: works in every terminal."""

    mode = HALFBLOCK

    def create_widget(self) -> Widget:
        return Static(NO_LINES, classes="picture")

    def show(self, widget: Widget, pil, max_cols: int, max_rows: int) -> None:
        widget.update(Pixels.from_image(fit(pil, max_cols, max_rows)))

    def clear(self, widget: Widget) -> None:
        widget.update(NO_LINES)


class GraphicsRenderer:
    """Draws a picture with a textual-image widget speaking a terminal graphics protocol.

    The widget gets the picture already fitted (to whole cells of the terminal's cell size)
    and exactly that many cells, so textual-image draws it pixel for pixel: left to its
    `auto` sizing it would stretch the picture to fill the box."""

    def __init__(self, mode: str, widget_class: type[Widget], cell_size: tuple[int, int]) -> None:
        self.mode = mode
        self.widget_class = widget_class
        self.cell_size = cell_size

    def create_widget(self) -> Widget:
        widget = self.widget_class(classes="picture")
        widget.display = False  # until there is a picture
        return widget

    def show(self, widget: Widget, pil, max_cols: int, max_rows: int) -> None:
        picture = fit(pil, max_cols, max_rows, self.cell_size, whole_cells=True)
        cell_width, cell_height = self.cell_size
        widget.styles.width = picture.width // cell_width
        widget.styles.height = picture.height // cell_height
        widget.image = picture
        widget.display = True

    def clear(self, widget: Widget) -> None:
        widget.image = None  # also frees a kitty picture held by the terminal
        widget.display = False


PictureRenderer = HalfBlockRenderer | GraphicsRenderer


def picture_renderer_for(mode: str = HALFBLOCK) -> PictureRenderer:
    """The renderer for an image mode (see ui/image_modes.py). Graphics modes import
    textual-image here, which asks the terminal about its support and cell size: call this
    before the app runs (Textual's input thread would swallow the terminal's answers)."""
    if mode == AUTO:
        mode = detect_graphics_protocol()
    if mode == HALFBLOCK:
        return HalfBlockRenderer()
    from textual_image._terminal import get_cell_size  # private, but the pinned version has it
    from textual_image.widget import SixelImage, TGPImage

    widget_classes = {SIXEL: SixelImage, KITTY: TGPImage}
    if mode not in widget_classes:
        raise ValueError(f"no picture renderer for image mode {mode!r}")
    cell = get_cell_size()
    return GraphicsRenderer(mode, widget_classes[mode], (cell.width, cell.height))


class ImagePreview(Vertical):
    """Shows a caption and one picture under it; `show_pil(None, caption)` shows just the
    caption. The picture widget comes from the renderer: half-blocks unless the user opted in
    to terminal graphics."""

    # The half-block picture takes the rest of the box, so the blank lines under a picture are
    # its own, drawn exactly as when caption and picture shared one Static (graphics widgets
    # are sized by their renderer instead).
    DEFAULT_CSS = """
    ImagePreview > .picture {
        height: 1fr;
    }
    """

    def __init__(self, renderer: PictureRenderer | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.renderer = renderer or HalfBlockRenderer()
        self.has_image = False
        self.caption = ""
        # Made here, not in compose: the screen may show a picture before they are mounted.
        self.caption_line = Static("", classes="caption")
        self.picture = self.renderer.create_widget()

    def compose(self) -> ComposeResult:
        yield self.caption_line
        yield self.picture

    def show_pil(self, pil, caption: str) -> None:
        self.caption = caption
        self.has_image = pil is not None
        if pil is None:
            self.caption_line.update(Text(caption, "dim"))
            self.renderer.clear(self.picture)
            return
        self.caption_line.update(Text(caption, "bold"))
        cols = max(8, (self.size.width or 40) - 2)
        rows = max(4, (self.size.height or 16) - 2)
        self.renderer.show(self.picture, pil, cols, rows)

    def show_value(self, value: Any, type_name: str, caption: str) -> bool:
        pil, note = picture_of(value, type_name)
        if pil is None:
            return False
        self.show_pil(pil, f"{caption}  {pil.width}×{pil.height}" + (f"  {note}" if note else ""))
        return True
