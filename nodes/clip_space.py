"""CLIP space: one vector space shared by pictures and texts (open_clip).

What this pack teaches. CLIP was trained on (image, caption) pairs with a *contrastive*
loss: the image tower and the text tower each turn their input into a vector, and the
training pulls the vectors of matching pairs together and pushes the others apart. After
training, "how well does this text describe this picture?" is just the **cosine** of the
two unit vectors (the dot product once they are normalised). Everything in this pack is
that one idea used in different ways:

* **EmbedImages / EmbedTexts**: the two towers; every output row has length 1.
* **SimilarityMatrix**: all cosines between two sets, as a table and a heatmap.
* **ZeroShotClassify**: a classifier without training: embed "a photo of a {label}" for
  each label, take the cosines with the picture, multiply by the model's learned
  temperature (``logit_scale``, 100 for trained CLIPs) and softmax → probabilities.
* **SemanticSearch**: embed every picture in a folder once (kept in the on-disk cache),
  embed the query, sort by cosine.
* **ClipScore**: 100 · cos(image, prompt), the usual "does the picture match its prompt"
  number (torchmetrics clamps negative values to 0; we do not, so the range is −100..100).
* **ClipGuidance**: CLIP as a critic that steers sampling (the Disco/Deforum recipe): at a
  sampling step take the model's estimate of the clean picture x0, decode it, cut random
  crops ("cutouts"), embed them, measure the spherical distance to the prompt's embedding,
  and push x0 down that distance's gradient. The push is turned back into an adjusted noise
  prediction, so the node sits in the opened-up loop between CFGCombine and SchedulerStep:

      PredictNoise → CFGCombine → ClipGuidance → SchedulerStep

Loading (**OpenClipLoader**): ``model_name`` is the shipped world CLIP ``minisd-clip`` (the
default, offline), an open_clip architecture (``ViT-B-32``; ``open_clip.list_models()``
lists them) or any other folder under the model roots holding an
open_clip config JSON (``open_clip_config.json`` as on the Hugging Face Hub, or a bare
architecture JSON), a ``.safetensors`` state dict and, for a Hugging Face tokenizer, its
files (``tokenizer.json``, ``tokenizer_config.json``). ``pretrained`` is a tag downloaded
when online (``laion2b_s34b_b79k`` for ViT-B-32, ``openai``), a weights file under the model
roots, or ``none`` (random weights, for experiments only). :func:`save_open_clip_folder`
writes a model in the folder layout, which both this loader and
``open_clip.create_model("local-dir:<folder>")`` read. Pickle weights (.bin/.pt/.pth) are
refused unless ``allow_pickle`` is set. Every load goes through the shared model manager.

The port type is OPEN_CLIP (both towers + tokenizer + preprocessing), deliberately not
CLIP: that name is Stable Diffusion's text encoder, which has no image tower.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import io
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from nodegraph import Doc, FileInput, NodeInputError, Range, RunContext, node
from nodegraph.cache import Codec, DiskCache, file_stamp, register_codec
from nodegraph.context import atomic_write
from nodegraph.lazy import lazy_import
from nodegraph.types import Image, Prompt, Seed, Vae, port_type

from .device import generator_for, pick_device, pick_dtype
from .guidance import Noise
from .models import MANAGER, DtypeName, module_nbytes, read_state_dict
from .sampling import Sampling

torch = lazy_import("torch")
np = lazy_import("numpy")

OPEN_CLIP = port_type("OPEN_CLIP", "an open_clip model: image and text towers + tokenizer + preprocessing")
CLIP_EMBEDS = port_type(
    "CLIP_EMBEDS", "unit-length CLIP embeddings: .vectors (N×D tensor), .labels (N names), .kind ('image' or 'text')"
)
OpenClip = Annotated[Any, OPEN_CLIP]
ClipEmbeds = Annotated[Any, CLIP_EMBEDS]

CONFIG_FILE = "open_clip_config.json"  # the name open_clip's Hub / local-dir layout uses
WEIGHTS_FILE = "open_clip_model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
IMAGE_CACHE_VERSION = "1"  # bump when the image preprocessing below changes


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's pixel statistics (open_clip's defaults)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def normalize_pixels(images: "torch.Tensor", mean: tuple[float, ...], std: tuple[float, ...]) -> "torch.Tensor":
    """Pictures in [0, 1] → the image tower's input scale (per channel: minus mean, over std)."""
    mean_t = torch.tensor(mean, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images - mean_t) / std_t


# ---- handles ------------------------------------------------------------------------------


@dataclass(eq=False)
class OpenClipHandle:
    """OPEN_CLIP: the two towers, the tokenizer and the image preprocessing."""

    model: Any
    tokenizer: Any
    name: str
    source: str
    image_size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    key: tuple = ()
    nbytes: int = 0
    fingerprint: str = ""  # identifies the weights: part of every cached embedding's key

    @property
    def device(self):
        return next(self.model.parameters()).device

    @property
    def dtype(self):
        return next(self.model.parameters()).dtype

    @property
    def logit_scale(self) -> float:
        """The learned temperature: cosines are multiplied by this before a softmax."""
        return float(self.model.logit_scale.detach().exp().clamp(max=100.0))

    def prepare(self, images: "torch.Tensor") -> "torch.Tensor":
        """IMAGE (B×3×H×W in [0, 1]) → the image tower's input: resize the shorter side to
        the model's size, centre-crop, normalise with CLIP's mean/std. Differentiable (the
        guidance backpropagates through it), unlike open_clip's PIL transform."""
        import torch.nn.functional as F

        images = images.to(device=self.device, dtype=torch.float32)
        height, width = self.image_size
        _, _, h, w = images.shape
        scale = max(height / h, width / w)
        new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
        if (new_h, new_w) != (h, w):
            images = F.interpolate(images, size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)
        top, left = (new_h - height) // 2, (new_w - width) // 2
        images = images[:, :, top : top + height, left : left + width]
        return self.normalize(images)

    def normalize(self, images: "torch.Tensor") -> "torch.Tensor":
        return normalize_pixels(images, self.mean, self.std)

    def encode_prepared(self, pixels: "torch.Tensor") -> "torch.Tensor":
        """Already prepared pixels → unit vectors (keeps the autograd graph)."""
        features = self.model.encode_image(pixels.to(self.dtype)).float()
        return torch.nn.functional.normalize(features, dim=-1)

    def encode_images(self, images: "torch.Tensor", batch_size: int = 32) -> "torch.Tensor":
        """IMAGE → N×D unit vectors (float32, CPU)."""
        rows = []
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                rows.append(self.encode_prepared(self.prepare(images[start : start + batch_size])).cpu())
        return torch.cat(rows)

    def encode_texts(self, texts: list[str]) -> "torch.Tensor":
        """Texts → N×D unit vectors (float32, on the model's device)."""
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.no_grad():
            features = self.model.encode_text(tokens).float()
        return torch.nn.functional.normalize(features, dim=-1)


@dataclass(eq=False)
class Embeddings:
    """CLIP_EMBEDS: unit vectors with a name for each row (file, text or "image i")."""

    vectors: Any
    labels: list[str] = field(default_factory=list)
    kind: str = "image"

    @property
    def nbytes(self) -> int:
        return int(self.vectors.element_size() * self.vectors.nelement())

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


# ---- a disk-cache codec for tensors (embeddings) ---------------------------------------------


def _is_tensor(value: Any) -> bool:
    module = sys.modules.get("torch")  # never import torch just to answer "no"
    return module is not None and isinstance(value, module.Tensor)


def _save_tensor(value: Any, folder: Path) -> None:
    from safetensors.torch import save_file

    save_file({"tensor": value.detach().cpu().contiguous()}, str(folder / "tensor.safetensors"))


def _load_tensor(folder: Path) -> Any:
    from safetensors.torch import load_file

    return load_file(str(folder / "tensor.safetensors"))["tensor"]


register_codec(Codec("clip_space.tensor", _is_tensor, _save_tensor, _load_tensor))


# ---- loading ---------------------------------------------------------------------------------


def _open_clip():
    import open_clip

    return open_clip


def _close_names(name: str, known: list[str]) -> list[str]:
    """Up to six names like `name`: first those equal or close once case and punctuation are
    ignored (vit_b_32 → ViT-B-32), then close spellings, then names that contain it."""
    squash = lambda s: "".join(ch for ch in s.lower() if ch.isalnum())  # noqa: E731
    by_squash: dict[str, str] = {}
    for k in known:
        by_squash.setdefault(squash(k), k)
    by_lower = {k.lower(): k for k in known}
    ranked = [by_squash[m] for m in difflib.get_close_matches(squash(name), list(by_squash), n=6, cutoff=0.75)]
    ranked += [by_lower[m] for m in difflib.get_close_matches(name.lower(), list(by_lower), n=6, cutoff=0.5)]
    ranked += [k for k in known if name.lower() in k.lower()]
    return list(dict.fromkeys(ranked))[:6]


def local_model_folders(ctx: RunContext) -> list[str]:
    """Names of the open_clip folders under the model roots (the shipped world CLIP among them)."""
    return sorted({p.parent.name for root in ctx.roots.models if root.is_dir() for p in root.glob(f"*/{CONFIG_FILE}")})


def _unknown_model(name: str, ctx: RunContext) -> NodeInputError:
    known = local_model_folders(ctx) + _open_clip().list_models()
    close = _close_names(name, known)
    hint = ("close names: " + ", ".join(close)) if close else f"none close; {len(known)} names in open_clip.list_models()"
    return NodeInputError(
        "model_name",
        f"{name!r} is neither an open_clip architecture nor a folder under the model roots ({hint})",
        expected="an open_clip model name such as ViT-B-32, or a folder with open_clip_config.json + .safetensors",
        got=repr(name),
    )


def _folder_config(folder: Path) -> tuple[dict, dict, str]:
    """(model_cfg, preprocess_cfg, name) from a model folder."""
    config_path = folder / CONFIG_FILE
    if config_path.is_file():
        try:
            data = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise NodeInputError("model_name", f"{config_path.name} is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or "model_cfg" not in data:
            raise NodeInputError("model_name", f"{config_path.name} has no 'model_cfg' entry", expected='{"model_cfg": {...}}')
        return data["model_cfg"], data.get("preprocess_cfg", {}), str(data.get("name") or folder.name)
    candidates = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and {"embed_dim", "vision_cfg", "text_cfg"} <= set(data):
            candidates.append((path, data))
    if len(candidates) != 1:
        found = ", ".join(p.name for p in folder.iterdir()) or "nothing"
        raise NodeInputError(
            "model_name",
            f"folder {folder.name!r} has {'no' if not candidates else 'several'} open_clip config "
            f"({CONFIG_FILE}, or one architecture JSON with embed_dim, vision_cfg, text_cfg)",
            expected=f"{CONFIG_FILE} + {WEIGHTS_FILE}",
            got=found,
        )
    path, data = candidates[0]
    return data, {}, path.stem


def _folder_weights(folder: Path) -> Path:
    preferred = [folder / WEIGHTS_FILE] + sorted(folder.glob("*.safetensors"))
    preferred += [p for suffix in PICKLE_SUFFIXES for p in sorted(folder.glob(f"*{suffix}"))]
    for path in preferred:
        if path.is_file():
            return path
    raise NodeInputError(
        "model_name", f"folder {folder.name!r} holds a config but no weights file",
        expected=f"{WEIGHTS_FILE} (or another .safetensors file)", got=", ".join(p.name for p in folder.iterdir()),
    )


def _load_weights(model: Any, path: Path, allow_pickle: bool, input_name: str) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise NodeInputError(
            input_name,
            f"{path.name} is a pickle file, which can run arbitrary code when loaded; convert it to "
            ".safetensors, or set allow_pickle to true if you trust the file",
            expected=f"a .safetensors state dict ({WEIGHTS_FILE})", got=path.name,
        )
    state = read_state_dict(path, allow_pickle, input_name)
    if state and next(iter(state)).startswith("module."):
        state = {k[len("module."):]: v for k, v in state.items()}
    if "logit_scale" in state and state["logit_scale"].ndim != model.logit_scale.ndim:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise NodeInputError(
            input_name,
            f"{path.name} does not fit this architecture: {len(missing)} tensors missing, {len(unexpected)} unexpected "
            f"(e.g. {(missing or unexpected)[0]})",
            expected="weights saved from the same open_clip architecture",
        )


RANDOM_INIT_SEED = 0


def _build(model_cfg: dict, preprocess_cfg: dict):
    """An open_clip CLIP from a model config, without the global config registry. The
    initial (random) weights are seeded, so 'none' gives the same model in every process
    (the on-disk embedding cache relies on it)."""
    open_clip = _open_clip()
    text_cfg = model_cfg.get("text_cfg", {})
    if "hf_tokenizer_name" not in text_cfg and int(text_cfg.get("vocab_size", 49408)) < 49408:
        raise NodeInputError(
            "model_name",
            f"text_cfg.vocab_size is {text_cfg.get('vocab_size')}, but open_clip's standard tokenizer produces ids up to 49407",
            expected="vocab_size 49408 (or an hf_tokenizer_name)", got=str(text_cfg.get("vocab_size")),
        )
    cfg = copy.deepcopy(model_cfg)
    custom = cfg.pop("custom_text", False) or "hf_model_name" in cfg.get("text_cfg", {})
    if "timm_model_name" in cfg.get("vision_cfg", {}):
        cfg["vision_cfg"]["timm_model_pretrained"] = False
    if "hf_model_name" in cfg.get("text_cfg", {}):
        cfg["text_cfg"]["hf_model_pretrained"] = False
    cls = open_clip.CustomTextCLIP if custom else open_clip.CLIP
    if "multimodal_cfg" in cfg:
        cls = open_clip.CoCa
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = cls(**cfg)
    pp = dict(model.visual.preprocess_cfg) if hasattr(model.visual, "preprocess_cfg") else {}
    pp.update({k: v for k, v in preprocess_cfg.items() if k in ("mean", "std", "size", "interpolation", "resize_mode")})
    return model, pp


def read_folder_model(folder: Path, allow_pickle: bool = False) -> tuple[Any, dict]:
    """The CLIP in a model folder (config + weights) in fp32 on the CPU, and its preprocessing."""
    model_cfg, preprocess_cfg, _ = _folder_config(folder)
    model, pp = _build(model_cfg, preprocess_cfg)
    _load_weights(model, _folder_weights(folder), allow_pickle, "model_name")
    return model, pp


def _place(model: Any, dtype: Any, device: Any) -> Any:
    model = model.to(device=device, dtype=dtype)
    model.eval()
    model.requires_grad_(False)
    return model


def _handle(model, tokenizer, name, source, pp, key, dtype, device) -> OpenClipHandle:
    model = _place(model, dtype, device)
    size = pp.get("size") or model.visual.image_size
    size = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[1]))
    mean = tuple(float(v) for v in pp.get("mean", CLIP_MEAN))
    std = tuple(float(v) for v in pp.get("std", CLIP_STD))
    fingerprint = hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest()
    return OpenClipHandle(model, tokenizer, name, source, size, mean, std, key, module_nbytes(model), fingerprint)


def _tokenizer_for(model_cfg: dict, name: str, folder: Path | None = None) -> Any:
    open_clip = _open_clip()
    text_cfg = model_cfg.get("text_cfg", {})
    if "hf_tokenizer_name" in text_cfg:
        # tokenizer files inside the model folder (the world CLIP; a Hub repo saved to disk)
        # are read from there, as open_clip's "local-dir:" loading does; else by name
        places = (folder / text_cfg["hf_tokenizer_name"], folder) if folder is not None else ()
        for local in places:
            if (local / "tokenizer_config.json").is_file():
                from open_clip.tokenizer import HFTokenizer

                return HFTokenizer(str(local), context_length=int(text_cfg.get("context_length", 77)))
        return open_clip.get_tokenizer(name)  # needs the tokenizer files (online or in the HF cache)
    return open_clip.SimpleTokenizer(context_length=int(text_cfg.get("context_length", 77)))


def load_open_clip(
    ctx: RunContext,
    model_name: str,
    pretrained: str = "none",
    dtype: str = "auto",
    allow_pickle: bool = False,
) -> OpenClipHandle:
    """The loader's work, usable from scripts: resolves the name, loads once through the model manager."""
    open_clip = _open_clip()
    torch_dtype = pick_dtype() if dtype == "auto" else getattr(torch, dtype)
    device = pick_device()
    folder: Path | None = None
    try:
        candidate = ctx.input_path(model_name, "model_name", root="model") if model_name else None
    except NodeInputError:
        candidate = None
    if candidate is not None:
        if not candidate.is_dir():
            raise NodeInputError(
                "model_name", f"{candidate.name} is a file: put weights files in 'pretrained' and the architecture name here",
                expected="an open_clip name (ViT-B-32) or a model folder", got=candidate.name,
            )
        folder = candidate

    if folder is not None:
        model_cfg, preprocess_cfg, name = _folder_config(folder)
        _folder_weights(folder)  # a folder without weights is refused now, not inside the model manager
        key = ("open_clip", "folder", str(folder), file_stamp(folder), str(torch_dtype), str(device))

        def load() -> OpenClipHandle:
            model, pp = read_folder_model(folder, allow_pickle)
            return _handle(model, _tokenizer_for(model_cfg, name, folder), name, str(folder), pp, key, torch_dtype, device)

        return MANAGER.get(key, load)

    name = model_name.replace("/", "-")
    model_cfg = open_clip.get_model_config(name) if name else None
    if model_cfg is None:
        raise _unknown_model(model_name, ctx)
    tag = (pretrained or "none").strip()
    weights_file: Path | None = None
    if tag.lower() not in ("none", ""):
        try:
            weights_file = ctx.input_path(tag, "pretrained", root="model")
        except NodeInputError:
            weights_file = None
    if tag.lower() in ("none", ""):
        key = ("open_clip", "random", name, str(torch_dtype), str(device))
    elif weights_file is not None:
        if weights_file.is_dir():
            raise NodeInputError("pretrained", f"{weights_file.name} is a folder: give it as model_name instead")
        key = ("open_clip", "file", name, str(weights_file), file_stamp(weights_file), str(torch_dtype), str(device))
    else:
        tags = open_clip.list_pretrained_tags_by_model(name)
        if tag not in tags:
            raise NodeInputError(
                "pretrained",
                f"{tag!r} is not a weights file under the model roots nor a pretrained tag of {name}",
                expected="one of: " + (", ".join(tags) or "(no tags: use a weights file or 'none')"),
                got=repr(tag),
            )
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise NodeInputError(
                "pretrained",
                f"the tag {tag!r} needs a download, but the Hub is off (HF_HUB_OFFLINE=1); save the model once online "
                "with save_open_clip_folder, or put a .safetensors under the model roots",
                expected="a local folder or weights file", got=repr(tag),
            )
        key = ("open_clip", "tag", name, tag, str(torch_dtype), str(device))

    def load() -> OpenClipHandle:
        if key[1] == "tag":
            try:
                model, _, _ = open_clip.create_model_and_transforms(name, pretrained=tag)
            except Exception as exc:  # noqa: BLE001 - network, missing cache...
                raise NodeInputError("pretrained", f"could not fetch {name}/{tag}: {type(exc).__name__}: {exc}") from None
            pp = dict(model.visual.preprocess_cfg)
            tokenizer = open_clip.get_tokenizer(name)
            return _handle(model, tokenizer, name, f"{name}/{tag}", pp, key, torch_dtype, device)
        model, pp = _build(model_cfg, {})
        if weights_file is not None:
            _load_weights(model, weights_file, allow_pickle, "pretrained")
        tokenizer = _tokenizer_for(model_cfg, name)
        return _handle(model, tokenizer, name, str(weights_file or f"{name} (random weights)"), pp, key, torch_dtype, device)

    return MANAGER.get(key, load)


def save_open_clip_folder(model: Any, config: dict, folder: str | Path) -> Path:
    """Write `model` as ``open_clip_config.json`` + ``open_clip_model.safetensors`` in
    `folder`: the layout OpenClipLoader reads (give the folder as model_name) and that
    ``open_clip.create_model("local-dir:<folder>")`` reads too. `config` is the
    architecture (embed_dim, vision_cfg, text_cfg) or a full {"model_cfg": ...} dict."""
    from safetensors.torch import save as save_bytes

    folder = Path(folder)
    full = dict(config) if "model_cfg" in config else {"model_cfg": dict(config)}
    if "preprocess_cfg" not in full:
        pp = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
        full["preprocess_cfg"] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in pp.items() if k in ("mean", "std", "size", "interpolation", "resize_mode")
        }
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    with atomic_write(folder / WEIGHTS_FILE) as handle:
        handle.write(save_bytes(state, metadata={"format": "pt"}))
    with atomic_write(folder / CONFIG_FILE, "w") as handle:
        json.dump(full, handle, indent=2)
    return folder


# ---- nodes -------------------------------------------------------------------------------------


@node(category="clip", name="OpenClipLoader")
def open_clip_loader(
    ctx: RunContext,
    model_name: Annotated[str, Doc("a folder under the model roots (open_clip_config.json + .safetensors; minisd-clip, the world CLIP, ships with nodegraph) or an open_clip architecture (ViT-B-32 when online)")] = "minisd-clip",
    pretrained: Annotated[str, Doc("for an architecture: tag to download when online (laion2b_s34b_b79k, openai), a weights file under the model roots, or 'none' (random, seeded); unused for a folder")] = "none",
    dtype: Annotated[DtypeName, Doc("auto = fp16 on CUDA, fp32 on CPU/MPS")] = "auto",
    allow_pickle: Annotated[bool, Doc("allow .bin/.pt/.pth weights, which can run code when loaded")] = False,
) -> OpenClip:
    """Load an open_clip model: an image tower and a text tower that map pictures and texts
    into one space where cosine = how well they match. Loaded once and shared (model manager)."""
    return load_open_clip(ctx, model_name, pretrained, dtype, allow_pickle)


def _check_images(images: Any, name: str = "images") -> None:
    if not hasattr(images, "shape") or images.dim() != 4 or images.shape[1] != 3:
        raise NodeInputError(name, "not an IMAGE batch", expected="B×3×H×W tensor in [0, 1]", got=str(getattr(images, "shape", type(images).__name__)))


def _check_texts(texts: Any, name: str) -> list[str]:
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise NodeInputError(name, "needs at least one text", expected="a non-empty list of strings", got=repr(texts)[:60])
    return texts


@node(category="clip", name="EmbedImages")
def embed_images(
    clip: OpenClip,
    images: Image,
    labels: Annotated[list[str], Doc("a name per picture (default: image 0, image 1, ...)")] | None = None,
) -> ClipEmbeds:
    """The image tower: each picture becomes a unit vector (length 1) in CLIP space."""
    _check_images(images)
    names = list(labels) if labels else [f"image {i}" for i in range(images.shape[0])]
    if len(names) != images.shape[0]:
        raise NodeInputError("labels", "one label per picture", expected=str(images.shape[0]), got=str(len(names)))
    return Embeddings(clip.encode_images(images), names, "image")


@node(category="clip", name="EmbedTexts")
def embed_texts(
    clip: OpenClip,
    texts: Annotated[list[str], Doc("the texts to embed")] = ["a red circle", "a blue square"],  # noqa: B006
) -> ClipEmbeds:
    """The text tower: each text becomes a unit vector in the same space as the pictures."""
    texts = _check_texts(texts, "texts")
    return Embeddings(clip.encode_texts(texts).cpu(), list(texts), "text")


def _check_embeds(value: Any, name: str) -> Embeddings:
    if not isinstance(value, Embeddings) or len(value) == 0:
        raise NodeInputError(name, "not CLIP embeddings", expected="output of EmbedImages or EmbedTexts", got=type(value).__name__)
    return value


def _heatmap_png(values: "np.ndarray", rows: list[str], cols: list[str], title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    short = lambda s: s if len(s) <= 28 else s[:25] + "..."  # noqa: E731
    n_rows, n_cols = values.shape
    fig = Figure(figsize=(min(2.5 + 0.55 * n_cols, 16), min(1.8 + 0.4 * n_rows, 16)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(values, cmap="viridis", vmin=-1.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(n_cols), [short(c) for c in cols], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n_rows), [short(r) for r in rows], fontsize=7)
    if n_rows * n_cols <= 400:
        for i in range(n_rows):
            for j in range(n_cols):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="black" if values[i, j] > 0.3 else "white")
    fig.colorbar(im, ax=ax, label="cosine")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


class SimilarityResult(NamedTuple):
    table: dict
    heatmap: Image
    files: list[str]
    own_match: float


def own_match_share(sims: "torch.Tensor") -> float:
    """Share of rows whose largest value is in their own column (row i ↔ column i): with
    pictures as rows and their captions as columns, how often a picture's best text is its
    own caption. NaN when there are more rows than columns."""
    if sims.shape[0] > sims.shape[1]:
        return float("nan")
    rows = torch.arange(sims.shape[0])
    return float((sims.argmax(dim=1) == rows).float().mean())


@node(category="clip", name="SimilarityMatrix", output_node=True)
def similarity_matrix(
    a: Annotated[ClipEmbeds, Doc("rows")],
    ctx: RunContext,
    b: Annotated[ClipEmbeds, Doc("columns (none: a against itself)")] | None = None,
    filename: Annotated[str, Doc("name under the output root; .json and .png are written")] = "clip/similarity",
) -> SimilarityResult:
    """Cosine similarity of every row of `a` with every row of `b`: a table (JSON), a
    heatmap picture, and both written as files. Vectors have length 1, so the cosine is the
    dot product: a·bᵀ. `own_match` is the share of rows whose best column is their own
    (row i ↔ column i: e.g. each picture's best text is its own caption)."""
    a = _check_embeds(a, "a")
    b = _check_embeds(b, "b") if b is not None else None
    right = b if b is not None else a
    if right.vectors.shape[1] != a.vectors.shape[1]:
        raise NodeInputError("b", "embeddings of different models", expected=f"{a.vectors.shape[1]} dimensions", got=str(right.vectors.shape[1]))
    sims = a.vectors.float() @ right.vectors.float().T
    if b is None:
        sims = (sims + sims.T) / 2  # cos(x, y) = cos(y, x): remove float rounding differences
    values = sims.clamp(-1, 1).numpy()
    table = {
        "rows": list(a.labels),
        "columns": list(right.labels),
        "values": [[round(float(v), 6) for v in row] for row in values],
    }
    stem = filename
    for suffix in (".json", ".png"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    json_path = ctx.output_path(stem + ".json", "filename")
    png_path = ctx.output_path(stem + ".png", "filename")
    png = _heatmap_png(values, table["rows"], table["columns"], f"cosine similarity ({a.kind} × {right.kind})")
    with atomic_write(json_path, "w") as handle:
        json.dump(table, handle, indent=1)
    with atomic_write(png_path) as handle:
        handle.write(png)
    ctx.wrote(json_path)
    ctx.wrote(png_path)
    from PIL import Image as PILImage

    from .image import pil_to_image

    with PILImage.open(io.BytesIO(png)) as pil:
        heatmap = pil_to_image(pil)
    return SimilarityResult(table, heatmap, [str(json_path), str(png_path)], own_match_share(sims))


class ZeroShotResult(NamedTuple):
    probabilities: list
    best: list
    accuracy: float


_FILLER_WORDS = {"a", "an", "the"}


def label_fits(label: str, answer: str) -> bool:
    """Does `answer` (a picture's caption, or its true label) say what `label` says? True
    when every word of the label, articles aside, is a word of the answer: "red circle" fits
    "a small red circle at the left"."""
    words = lambda text: {w for w in re.findall(r"[\w']+", text.lower()) if w not in _FILLER_WORDS}  # noqa: E731
    return words(label) <= words(answer)


@node(category="clip", name="ZeroShotClassify")
def zero_shot_classify(
    clip: OpenClip,
    images: Image,
    labels: Annotated[list[str], Doc("the classes to choose from")] = ["circle", "square", "triangle"],  # noqa: B006
    template: Annotated[str, Doc("how a label becomes a sentence; {} is replaced by the label")] = "a photo of a {}.",
    answers: Annotated[list[str], Doc("optional: the true label or caption of each picture, to measure accuracy")] | None = None,
) -> ZeroShotResult:
    """Classify pictures into labels nobody trained a classifier for: embed one sentence per
    label, take cosines with each picture, scale by the model's temperature and softmax.
    Outputs one {label: probability} per picture (they sum to 1) and the best label; with
    `answers`, the share of pictures whose best label fits its answer (see label_fits)."""
    _check_images(images)
    if not isinstance(labels, list) or not labels:
        raise NodeInputError("labels", "the label list is empty: nothing to choose from", expected="at least one label", got=repr(labels))
    if not all(isinstance(x, str) and x.strip() for x in labels):
        raise NodeInputError("labels", "every label must be a non-empty text", expected="list of strings", got=repr(labels)[:60])
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise NodeInputError("labels", "labels repeat", expected="distinct labels", got=", ".join(dup))
    if answers is not None and len(answers) != images.shape[0]:
        raise NodeInputError("answers", "one answer per picture", expected=str(images.shape[0]), got=str(len(answers)))
    if "{}" not in template:
        raise NodeInputError("template", "the template has no {} for the label", expected="e.g. 'a photo of a {}.'", got=repr(template))
    image_vectors = clip.encode_images(images)
    text_vectors = clip.encode_texts([template.replace("{}", label) for label in labels]).cpu()
    probs = (clip.logit_scale * image_vectors @ text_vectors.T).softmax(dim=-1)
    table = [{label: float(p) for label, p in zip(labels, row)} for row in probs]
    best = [labels[int(i)] for i in probs.argmax(dim=-1)]
    accuracy = sum(label_fits(b, a) for b, a in zip(best, answers)) / len(best) if answers is not None else float("nan")
    return ZeroShotResult(table, best, accuracy)


# ---- semantic search ------------------------------------------------------------------------------


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in pattern if p.is_file() and not p.name.startswith("."))


def _read_picture(path: Path):
    """The picture as an IMAGE tensor, or the reason it is not one."""
    from PIL import Image as PILImage, UnidentifiedImageError

    from .image import pil_to_image

    try:
        with PILImage.open(path) as pil:
            pil.load()
            return pil_to_image(pil), None
    except UnidentifiedImageError:
        return None, "not an image"
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or broken file
        return None, f"unreadable image ({type(exc).__name__})"


def embedding_cache(ctx: RunContext) -> DiskCache:
    """Where SemanticSearch keeps image embeddings between runs (one entry per file)."""
    return DiskCache(ctx.roots.cache / "clip_space" / "image_embeddings")


def _file_key(clip: OpenClipHandle, path: Path) -> str:
    stat = path.stat()
    text = f"{IMAGE_CACHE_VERSION}\0{clip.fingerprint}\0{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


@dataclass
class FolderIndex:
    files: list[Path]
    vectors: Any  # N×D
    skipped: list[dict]
    embedded: int
    from_cache: int


def index_folder(ctx: RunContext, clip: OpenClipHandle, folder: Path, recursive: bool = False, batch_size: int = 16) -> FolderIndex:
    """Embed every picture of a folder, reading unchanged files' vectors from the disk cache
    (keyed by the model, the file's path, size and modification time)."""
    cache = embedding_cache(ctx)
    files = _image_files(folder, recursive)
    kept: list[Path] = []
    vectors: dict[Path, Any] = {}
    skipped: list[dict] = []
    pending: list[tuple[Path, str, Any]] = []
    embedded = from_cache = 0

    def flush() -> None:
        nonlocal embedded
        if not pending:
            return
        with torch.no_grad():
            pixels = torch.cat([clip.prepare(image) for _, _, image in pending])
            out = clip.encode_prepared(pixels).cpu()
        for (path, key, _), vector in zip(pending, out):
            vectors[path] = vector
            cache.put(key, {"embedding": vector.clone()})
        embedded += len(pending)
        pending.clear()

    for number, path in enumerate(files):
        ctx.progress(number, len(files), text=path.name)
        key = _file_key(clip, path)
        hit = cache.get(key)
        if hit is not None and _is_tensor(hit.get("embedding")):
            vectors[path] = hit["embedding"].float()
            kept.append(path)
            from_cache += 1
            continue
        image, reason = _read_picture(path)
        if image is None:
            skipped.append({"file": str(path.relative_to(folder)), "reason": reason})
            continue
        kept.append(path)
        pending.append((path, key, image))
        if len(pending) >= batch_size:
            flush()
    flush()
    ctx.progress(len(files), len(files))
    stacked = torch.stack([vectors[p] for p in kept]) if kept else torch.zeros(0, 0)
    return FolderIndex(kept, stacked, skipped, embedded, from_cache)


def _grid(paths: list[Path], thumb: int, columns: int) -> "torch.Tensor":
    import torch.nn.functional as F

    tiles = []
    for path in paths:
        image, _ = _read_picture(path)
        _, _, h, w = image.shape
        scale = thumb / max(h, w)
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
        image = F.interpolate(image, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        tile = torch.ones(1, 3, thumb, thumb)
        top, left = (thumb - new_h) // 2, (thumb - new_w) // 2
        tile[:, :, top : top + new_h, left : left + new_w] = image
        tiles.append(tile)
    columns = max(1, min(columns, len(tiles)))
    rows = (len(tiles) + columns - 1) // columns
    grid = torch.ones(1, 3, rows * thumb, columns * thumb)
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        grid[:, :, r * thumb : (r + 1) * thumb, c * thumb : (c + 1) * thumb] = tile[0]
    return grid


class SearchResult(NamedTuple):
    results: list
    grid: Image
    skipped: list
    stats: dict
    top_score: float
    embedded: int


@node(category="clip", name="SemanticSearch")
def semantic_search(
    clip: OpenClip,
    ctx: RunContext,
    folder: Annotated[str, FileInput(), Doc("a folder of pictures under the input roots")] = "images",
    query: Annotated[Prompt, Doc("what to look for, in words")] = "a red circle",
    query_embeds: Annotated[ClipEmbeds, Doc("or search with an embedding (its first row), e.g. a picture's: 'more like this'")] | None = None,
    k: Annotated[int, Range(1, 1000), Doc("how many results")] = 4,
    recursive: Annotated[bool, Doc("also look in sub-folders")] = False,
    thumb: Annotated[int, Range(16, 1024), Doc("side of each picture in the result grid")] = 128,
) -> SearchResult:
    """Find the pictures of a folder closest to a text (or an embedding) in CLIP space.
    Every picture is embedded once: the vectors are kept in the on-disk cache, so the next
    search over the same folder only embeds the query. Files that are not pictures are
    skipped and listed in `skipped`; `stats` says how many vectors were computed and how
    many came from the cache (`embedded` alone as a number: 0 on a repeated search)."""
    root = ctx.input_path(folder, "folder")
    if not root.is_dir():
        raise NodeInputError("folder", f"{root.name} is a file, not a folder", expected="a folder of pictures", got=root.name)
    if query_embeds is not None:
        target = _check_embeds(query_embeds, "query_embeds").vectors[:1].float()
        query_label = query_embeds.labels[0] if query_embeds.labels else "embedding"
    else:
        if not query.strip():
            raise NodeInputError("query", "the query is empty", expected="some words, or a query_embeds link", got=repr(query))
        target = clip.encode_texts([query]).cpu()
        query_label = query
    index = index_folder(ctx, clip, root, recursive)
    if not index.files:
        detail = "; ".join(f"{s['file']}: {s['reason']}" for s in index.skipped[:5]) or "the folder is empty"
        raise NodeInputError("folder", f"no pictures in {root.name!r} ({detail})", expected="PNG, JPEG, WebP... files", got=f"{len(index.skipped)} other files")
    if target.shape[1] != index.vectors.shape[1]:
        raise NodeInputError("query_embeds", "embedding from a different model", expected=f"{index.vectors.shape[1]} dimensions", got=str(target.shape[1]))
    scores = (index.vectors @ target[0]).clamp(-1, 1)
    order = torch.argsort(scores, descending=True, stable=True)[: min(k, len(index.files))]
    results = [
        {"rank": r + 1, "file": str(index.files[i].relative_to(root)), "score": float(scores[i])}
        for r, i in enumerate(order.tolist())
    ]
    grid = _grid([index.files[i] for i in order.tolist()], thumb, columns=4)
    stats = {"query": query_label, "images": len(index.files), "embedded": index.embedded, "from_cache": index.from_cache, "skipped": len(index.skipped)}
    return SearchResult(results, grid, index.skipped, stats, results[0]["score"], index.embedded)


# ---- CLIP score ---------------------------------------------------------------------------------


class ScoreResult(NamedTuple):
    scores: list
    mean: float


def clip_scores(clip: OpenClipHandle, images: Any, prompts: list[str]) -> "torch.Tensor":
    """100 · cos(image i, prompt i) for each picture (one prompt for all, or one each)."""
    if len(prompts) not in (1, images.shape[0]):
        raise NodeInputError("prompts", "give one prompt, or one per picture", expected=f"1 or {images.shape[0]}", got=str(len(prompts)))
    image_vectors = clip.encode_images(images)
    text_vectors = clip.encode_texts(prompts).cpu()
    if text_vectors.shape[0] == 1:
        text_vectors = text_vectors.expand_as(image_vectors)
    return 100.0 * (image_vectors * text_vectors).sum(dim=-1).clamp(-1, 1)


@node(category="clip", name="ClipScore")
def clip_score(
    clip: OpenClip,
    images: Image,
    prompt: Annotated[Prompt, Doc("the prompt the pictures were made from")] = "",
    prompts: Annotated[list[str], Doc("or one prompt per picture (overrides prompt)")] | None = None,
) -> ScoreResult:
    """CLIP score: 100 · cosine between each picture and its prompt (−100..100; trained CLIPs
    give ~20–35 for good matches). Higher = the picture matches the text better."""
    _check_images(images)
    texts = list(prompts) if prompts else [prompt]
    if not all(isinstance(t, str) and t.strip() for t in texts):
        raise NodeInputError("prompt", "no prompt to score against", expected="a non-empty prompt", got=repr(texts)[:60])
    scores = clip_scores(clip, images, texts)
    return ScoreResult([float(s) for s in scores], float(scores.mean()))


# ---- CLIP guidance ----------------------------------------------------------------------------------


def spherical_distance(a: "torch.Tensor", b: "torch.Tensor") -> "torch.Tensor":
    """Squared great-circle distance between unit vectors (×2): 0 when equal; smooth where
    1 − cos is not. From Crowson's CLIP-guided diffusion notebooks."""
    a = torch.nn.functional.normalize(a, dim=-1)
    b = torch.nn.functional.normalize(b, dim=-1)
    return (a - b).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


def make_cutouts(images: "torch.Tensor", cut_size: tuple[int, int], cutn: int, cut_pow: float, generator: Any) -> "torch.Tensor":
    """`cutn` random square crops per picture, sizes drawn as rand**cut_pow between the model
    size and the whole picture (cut_pow > 1 favours small crops), each resized to cut_size.
    Returns (cutn·B)×3×h×w, crop-major. Differentiable."""
    import torch.nn.functional as F

    _, _, h, w = images.shape
    max_size = min(h, w)
    min_size = min(h, w, *cut_size)
    cuts = []
    for _ in range(cutn):
        size = int(float(torch.rand((), generator=generator)) ** cut_pow * (max_size - min_size) + min_size)
        top = int(torch.randint(0, h - size + 1, (), generator=generator))
        left = int(torch.randint(0, w - size + 1, (), generator=generator))
        crop = images[:, :, top : top + size, left : left + size]
        cuts.append(F.interpolate(crop, size=cut_size, mode="bilinear", align_corners=False, antialias=size > cut_size[0]))
    return torch.cat(cuts)


def _noise_levels(state: Any) -> tuple[float, str]:
    """ᾱ_t (the share of signal variance) at the state's current timestep, and how the
    latents are stored: 'sigma' (Euler-type: x = x0 + σ·ε, the UNet reads x/√(σ²+1)) or
    'alpha' (DDIM-type: x = √ᾱ·x0 + √(1−ᾱ)·ε). The scheduler's own input scaling tells
    which: for sigma schedulers it is exactly √ᾱ."""
    probe_state = state.copy()  # scale_model_input may move the scheduler's step index
    t = state.timestep
    probe = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    c = float(probe_state.scheduler.scale_model_input(probe, t).flatten()[0])
    if abs(c - 1.0) > 1e-6:
        return c * c, "sigma"
    alphas = probe_state.scheduler.alphas_cumprod
    index = int(round(float(t)))
    index = max(0, min(index, len(alphas) - 1))
    return float(alphas[index]), "alpha"


def clip_guide_noise(
    state: Any,
    noise: "torch.Tensor",
    vae: Any,
    clip: OpenClipHandle,
    prompt: str,
    clip_scale: float,
    cutn: int = 4,
    cut_pow: float = 1.0,
    overview: bool = True,
    clamp: float = 0.05,
    seed: int = 0,
) -> "torch.Tensor":
    """The guidance, as a function (the node and scripts call it).

    1. x0 = the clean latent the noise prediction implies at this step;
    2. decode x0 with the VAE, cut crops, embed them with CLIP;
    3. loss = clip_scale · spherical distance(crop embeddings, prompt embedding);
    4. g = −∂loss/∂x0, its RMS clamped to `clamp`;
    5. x0' = x0 + σ²·g (Deforum's step on the predicted x0), turned back into a noise
       prediction: ε' = ε − σ·g (in the UNet's input scaling), so any scheduler can use it."""
    if clip_scale == 0.0:
        return noise
    alpha_bar, space = _noise_levels(state)
    alpha_bar = min(max(alpha_bar, 1e-8), 1.0 - 1e-8)
    sqrt_ab, sqrt_1mab = alpha_bar ** 0.5, (1.0 - alpha_bar) ** 0.5
    sigma = sqrt_1mab / sqrt_ab
    prediction = state.scheduler.config.get("prediction_type", "epsilon")
    if prediction not in ("epsilon", "v_prediction"):
        raise NodeInputError("sampling", f"CLIP guidance needs an epsilon or v prediction model, not {prediction!r}")
    x_in = state.latents.double() * (sqrt_ab if space == "sigma" else 1.0)  # the UNet's input scaling
    pred = noise.double()
    if prediction == "epsilon":
        eps = pred
        x0 = (x_in - sqrt_1mab * eps) / sqrt_ab
    else:  # v = √ᾱ·ε − √(1−ᾱ)·x0
        x0 = sqrt_ab * x_in - sqrt_1mab * pred
        eps = sqrt_1mab * x_in + sqrt_ab * pred

    model = vae.vae
    text = clip.encode_texts([prompt]).detach().float()
    generator = generator_for(seed * 1_000_003 + int(state.index))
    with torch.enable_grad():
        x0_var = x0.to(model.dtype).detach().requires_grad_(True)
        pixels = model.decode(x0_var / vae.scaling_factor, return_dict=False)[0].float() * 0.5 + 0.5
        batch = pixels.shape[0]
        views = []
        if overview:
            views.append(clip.prepare(pixels))
        if cutn > 0:
            views.append(clip.normalize(make_cutouts(pixels.to(clip.device), clip.image_size, cutn, cut_pow, generator)))
        crops = torch.cat(views)
        embeds = clip.encode_prepared(crops)  # (views·B)×D, view-major
        distances = spherical_distance(embeds, text.to(embeds.device).expand(embeds.shape[0], -1))
        loss = distances.view(-1, batch).mean(dim=0).sum() * clip_scale
        grad = -torch.autograd.grad(loss, x0_var)[0].double()
    grad = torch.nan_to_num(grad)
    dims = list(range(1, grad.ndim))
    magnitude = grad.square().mean(dim=dims, keepdim=True).sqrt()
    grad = grad * (magnitude.clamp(max=clamp) / magnitude.clamp(min=1e-12))
    x0_new = x0 + sigma**2 * grad
    eps_new = (x_in - sqrt_ab * x0_new) / sqrt_1mab  # = eps − σ·g
    if prediction == "epsilon":
        out = eps_new
    else:
        out = sqrt_ab * eps_new - sqrt_1mab * x0_new
    return out.to(dtype=noise.dtype)


@node(category="sampling/loop", name="ClipGuidance")
def clip_guidance(
    sampling: Sampling,
    noise: Annotated[Noise, Doc("the noise prediction to adjust (after CFGCombine)")],
    vae: Vae,
    clip: OpenClip,
    prompt: Annotated[Prompt, Doc("what CLIP should see in the picture")] = "a red circle",
    clip_scale: Annotated[float, Range(0.0, 100000.0), Doc("strength of the push (0 = off)")] = 1000.0,
    cutn: Annotated[int, Range(0, 64), Doc("random crops CLIP looks at per step")] = 4,
    cut_pow: Annotated[float, Range(0.1, 10.0), Doc(">1 favours small crops (details), <1 large ones")] = 1.0,
    overview: Annotated[bool, Doc("also show CLIP the whole picture")] = True,
    clamp: Annotated[float, Range(0.0, 10.0), Doc("largest RMS of the gradient (Deforum's clamp_grad_threshold)")] = 0.05,
    seed: Annotated[Seed, Doc("which crops are cut")] = 0,
) -> Noise:
    """CLIP guidance: adjust a noise prediction so the picture it leads to looks more like
    `prompt` to CLIP. Wire it between CFGCombine and SchedulerStep. Each step it decodes the
    predicted clean picture, measures the spherical distance of CLIP's view of it to the
    prompt, and moves the prediction down that distance's gradient (scaled, clamped)."""
    if sampling.done:
        raise NodeInputError("sampling", "all steps of this sampling run are done")
    if getattr(vae, "vae", None) is None:
        raise NodeInputError("vae", "no VAE: load one with CheckpointLoader or LoadVAE")
    if not prompt.strip():
        raise NodeInputError("prompt", "no prompt to guide towards", expected="some words", got=repr(prompt))
    if cutn == 0 and not overview:
        raise NodeInputError("cutn", "CLIP would see nothing: set cutn > 0 or overview on", expected=">= 1", got="0")
    if tuple(noise.shape) != tuple(sampling.latents.shape):
        raise NodeInputError("noise", "not shaped like the latents", expected=str(tuple(sampling.latents.shape)), got=str(tuple(noise.shape)))
    return clip_guide_noise(sampling, noise, vae, clip, prompt, clip_scale, cutn, cut_pow, overview, clamp, seed)
