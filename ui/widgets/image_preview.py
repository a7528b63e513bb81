"""Pictures in the terminal with half-blocks (rich-pixels): each cell shows two pixels,
so any terminal with colour can show an IMAGE, MASK, DEPTH, FLOW (as the colour wheel
FlowVisualize draws) or the first frame of FRAMES. Small pictures are enlarged with
NEAREST so every pixel stays a crisp square, large ones shrunk to fit."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text
from rich_pixels import Pixels
from textual.widgets import Static

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


def fit(pil, max_cols: int, max_rows: int):
    """Resize so the picture fills at most max_cols × (2·max_rows) pixels, keeping its shape."""
    from PIL import Image

    width, height = pil.size
    scale = min(max_cols / width, (2 * max_rows) / height)
    size = (max(1, int(width * scale)), max(2, int(height * scale)))
    method = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
    return pil.convert("RGB").resize(size, method)


class ImagePreview(Static):
    """Shows one picture and a caption; `show_pil(None, caption)` shows just the caption."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.has_image = False
        self.caption = ""

    def show_pil(self, pil, caption: str) -> None:
        self.caption = caption
        self.has_image = pil is not None
        if pil is None:
            self.update(Text(caption, "dim"))
            return
        cols = max(8, (self.size.width or 40) - 2)
        rows = max(4, (self.size.height or 16) - 2)
        picture = Pixels.from_image(fit(pil, cols, rows))
        self.update(Group(Text(caption, "bold"), picture))

    def show_value(self, value: Any, type_name: str, caption: str) -> bool:
        pil, note = picture_of(value, type_name)
        if pil is None:
            return False
        self.show_pil(pil, f"{caption}  {pil.width}×{pil.height}" + (f"  {note}" if note else ""))
        return True
