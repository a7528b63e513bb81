"""Images as tensors: load, save, resize, crop, blend, grayscale, preview.

In nodegraph an IMAGE is a float tensor shaped B×C×H×W (batch, channels, height, width)
with values in [0, 1]: the layout torch, kornia and diffusers use. Files (PNG, JPEG) hold
H×W×C bytes in 0..255; we convert only at these edges."""

from __future__ import annotations

from nodegraph.lazy import lazy_import

torch = lazy_import("torch")
np = lazy_import("numpy")


# ---- conversions at the edges (used by every pack that reads or writes pixels) -------------


def pil_to_image(pil) -> "torch.Tensor":
    """PIL image → IMAGE tensor 1×3×H×W in [0, 1]."""
    array = np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def image_to_uint8(image: "torch.Tensor") -> "np.ndarray":
    """IMAGE tensor B×C×H×W → uint8 array B×H×W×C (C = 1 or 3)."""
    array = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()


def image_to_pil(image: "torch.Tensor", index: int = 0):
    """One picture of an IMAGE batch → PIL image (RGB, or L for one channel)."""
    from PIL import Image as PILImage

    array = image_to_uint8(image[index : index + 1])[0]
    if array.shape[2] == 1:
        return PILImage.fromarray(array[:, :, 0], mode="L")
    return PILImage.fromarray(array, mode="RGB")


def uint8_to_image(array: "np.ndarray") -> "torch.Tensor":
    """uint8 array H×W×C or B×H×W×C → IMAGE tensor in [0, 1]."""
    if array.ndim == 3:
        array = array[None]
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float().div(255.0)


# ---- nodes ------------------------------------------------------------------------------------

from typing import Annotated, Literal, NamedTuple  # noqa: E402

from nodegraph import Doc, NodeInputError, Range, RunContext, node  # noqa: E402
from nodegraph.context import atomic_write  # noqa: E402
from nodegraph.types import Anything, Image, InputFile, Mask, OutputFile  # noqa: E402


class LoadedImage(NamedTuple):
    image: Image
    mask: Mask


@node(category="image", name="LoadImage")
def load_image(
    path: Annotated[InputFile, Doc("file under an input root (PNG, JPEG, WebP)")] = "example.png",
    ctx: RunContext = None,
) -> LoadedImage:
    """Read a picture file into an IMAGE tensor (1×3×H×W, values 0..1), and its alpha
    channel as a MASK (1 where the picture is transparent, the area an inpainter may change)."""
    from PIL import Image as PILImage, UnidentifiedImageError

    file = ctx.input_path(path, "path")
    try:
        with PILImage.open(file) as pil:
            pil.load()
            image = pil_to_image(pil)
            if "A" in pil.getbands():
                alpha = torch.from_numpy(np.asarray(pil.getchannel("A"), dtype=np.float32) / 255.0)
                mask = (1.0 - alpha)[None, None]
            else:
                mask = torch.zeros(1, 1, pil.height, pil.width)
    except UnidentifiedImageError:
        raise NodeInputError("path", f"{file.name} is not an image file", "PNG, JPEG or WebP", file.suffix or "no extension") from None
    return LoadedImage(image, mask)


def _png_with_graph(pil, graph_json: str | None):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if graph_json:
        info.add_text("nodegraph", graph_json)  # the graph that made it, like ComfyUI's "workflow"
    return info


@node(category="image", name="SaveImage", output_node=True, output="paths")
def save_image(
    image: Image,
    filename_prefix: Annotated[OutputFile, Doc("name under the output root; a number is added")] = "nodegraph",
    ctx: RunContext = None,
) -> list[str]:
    """Write each picture of the batch as a PNG under the output root, with the graph that
    made it embedded in the PNG's metadata (open it in nodegraph to get the graph back).
    Files are written atomically: a crash never leaves half a PNG."""
    written = []
    for index in range(image.shape[0]):
        path = _next_free(ctx.output_path(filename_prefix, "filename_prefix"))
        pil = image_to_pil(image, index)
        with atomic_write(path) as handle:
            pil.save(handle, format="PNG", pnginfo=_png_with_graph(pil, ctx.graph_json))
        written.append(str(ctx.wrote(path)))
    return written


def _next_free(prefix_path):
    """prefix_00001.png, prefix_00002.png, ... the first name not yet taken."""
    folder, stem = prefix_path.parent, prefix_path.name
    folder.mkdir(parents=True, exist_ok=True)
    taken = {p.name for p in folder.glob(f"{stem}_*.png")}
    number = 1
    while f"{stem}_{number:05d}.png" in taken:
        number += 1
    return folder / f"{stem}_{number:05d}.png"


@node(category="image", name="PreviewImage", output_node=True, output="paths")
def preview_image(image: Anything, ctx: RunContext = None) -> list[str]:
    """Show a picture without keeping it: written to output/preview/ (the TUI draws it in the
    terminal). Accepts IMAGE, MASK or DEPTH (one channel is shown as grey)."""
    tensor = image
    if hasattr(tensor, "dim") and tensor.dim() == 3:
        tensor = tensor[None]
    if not hasattr(tensor, "shape") or tensor.dim() != 4:
        raise NodeInputError("image", "cannot preview this value", "a B×C×H×W tensor", type(image).__name__)
    if tensor.shape[1] not in (1, 3):
        raise NodeInputError("image", "cannot preview this many channels", "1 or 3 channels", str(tensor.shape[1]))
    written = []
    for index in range(tensor.shape[0]):
        path = ctx.output_path(f"preview/{ctx.node_id}_{index}.png", "image")
        with atomic_write(path) as handle:
            image_to_pil(tensor, index).save(handle, format="PNG")
        written.append(str(ctx.wrote(path)))
    return written


@node(category="image", name="ResizeImage")
def resize_image(
    image: Image,
    width: Annotated[int, Range(1, 8192, step=8)] = 64,
    height: Annotated[int, Range(1, 8192, step=8)] = 64,
    method: Literal["bilinear", "bicubic", "nearest", "area"] = "bilinear",
) -> Image:
    """Resample to a new size. "nearest" keeps hard pixel edges (good to *see* a small latent);
    "area" averages when shrinking; bilinear/bicubic blend neighbours."""
    import torch.nn.functional as F

    kwargs = {"align_corners": False} if method in ("bilinear", "bicubic") else {}
    if method in ("bilinear", "bicubic"):
        kwargs["antialias"] = True
    resized = F.interpolate(image, size=(height, width), mode=method, **kwargs)
    return resized.clamp(0, 1)


@node(category="image", name="CropImage")
def crop_image(
    image: Image,
    x: Annotated[int, Range(0, 8192)] = 0,
    y: Annotated[int, Range(0, 8192)] = 0,
    width: Annotated[int, Range(1, 8192)] = 64,
    height: Annotated[int, Range(1, 8192)] = 64,
) -> Image:
    """Cut out the rectangle whose top-left corner is (x, y). Tensors index rows first:
    image[:, :, y:y+height, x:x+width]."""
    _, _, full_h, full_w = image.shape
    if x + width > full_w or y + height > full_h:
        raise NodeInputError(
            "width" if x + width > full_w else "height",
            "the crop rectangle leaves the image",
            f"x+width <= {full_w} and y+height <= {full_h}",
            f"x+width={x + width}, y+height={y + height}",
        )
    return image[:, :, y : y + height, x : x + width].clone()


@node(category="image", name="BlendImages")
def blend_images(
    image_a: Image,
    image_b: Image,
    factor: Annotated[float, Range(0.0, 1.0, step=0.05), Doc("0 = all A, 1 = all B")] = 0.5,
    mode: Literal["normal", "multiply", "screen", "difference"] = "normal",
) -> Image:
    """Mix two pictures pixel by pixel: (1 - factor)·A + factor·blend(A, B). Because images
    are tensors, blending is arithmetic."""
    if image_a.shape[-2:] != image_b.shape[-2:]:
        raise NodeInputError(
            "image_b", "sizes differ (resize one first)", f"{tuple(image_a.shape[-2:])}", f"{tuple(image_b.shape[-2:])}"
        )
    blended = {
        "normal": image_b,
        "multiply": image_a * image_b,
        "screen": 1 - (1 - image_a) * (1 - image_b),
        "difference": (image_a - image_b).abs(),
    }[mode]
    return ((1 - factor) * image_a + factor * blended).clamp(0, 1)


@node(category="image", name="ImageToGrayscale")
def image_to_grayscale(image: Image) -> Image:
    """Luma from RGB with the ITU-R BT.601 weights (0.299 R + 0.587 G + 0.114 B), repeated
    over three channels so every IMAGE node still accepts it."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    luma = (image * weights).sum(dim=1, keepdim=True)
    return luma.expand(-1, 3, -1, -1).contiguous()
