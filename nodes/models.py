"""Loading Stable Diffusion's parts: the denoising UNet (MODEL), the text encoder (CLIP) and
the autoencoder (VAE), plus ControlNets.

What this pack teaches: a "checkpoint" is not one network but several that were trained
to work together. The UNet predicts noise in a small *latent* space; the VAE translates
between pixels and that latent space; the CLIP text encoder turns a prompt into the vectors
the UNet's cross-attention reads. The scheduler config (how much noise there is at each
training timestep) travels with the UNet because the two only make sense together.

Checkpoints come in three shapes, all handled here:

* a diffusers folder (``model_index.json`` with ``unet/``, ``vae/``, ``text_encoder/``,
  ``tokenizer/``, ``scheduler/`` subfolders): read directly;
* one ``.safetensors`` file in the original (LDM / A1111 / ComfyUI) layout: its tensors are
  renamed to diffusers' names, and the architecture comes from a config folder we ship in
  ``nodes/configs/`` (``sd15``), so nothing is fetched from the Hub;
* a Hub id such as ``runwayml/stable-diffusion-v1-5``, only when online.

Every load goes through ONE :class:`ModelManager`: the same file with the same dtype on the
same device is loaded once and shared by every node and every run; when the models held
exceed the memory budget the least recently used ones are dropped.

Pickle files (``.ckpt``, ``.pt``, ``.bin``) can run arbitrary code while loading, so they
are refused unless you set ``allow_pickle`` to true for a file you trust.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, NamedTuple

from nodegraph import Doc, NodeInputError, RunContext, node
from nodegraph.cache import file_stamp
from nodegraph.lazy import lazy_import
from nodegraph.types import Clip, ControlNet, Model, ModelFile, Vae

from .device import pick_device, pick_dtype

torch = lazy_import("torch")

CONFIG_ROOT = Path(__file__).parent / "configs"
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ---- handles: what flows along MODEL / CLIP / VAE / CONTROL_NET links ----------------------


def module_nbytes(*modules: Any) -> int:
    """Bytes held by the parameters and buffers of torch modules (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for module in modules:
        if module is None:
            continue
        for tensor in list(module.parameters()) + list(module.buffers()):
            key = tensor.data_ptr()
            if key in seen:
                continue
            seen.add(key)
            total += tensor.numel() * tensor.element_size()
    return total


@dataclass(eq=False)
class ModelHandle:
    """MODEL: the UNet plus the scheduler config it was trained with."""

    unet: Any
    scheduler_config: dict
    key: tuple = ()
    nbytes: int = 0
    source: str = ""

    @property
    def device(self):
        return self.unet.device

    @property
    def dtype(self):
        return self.unet.dtype

    @property
    def in_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def is_inpaint(self) -> bool:
        """Inpainting UNets take 9 channels: 4 noisy latent + 1 mask + 4 masked-image latent."""
        return self.in_channels == 9


@dataclass(eq=False)
class ClipHandle:
    """CLIP: the text encoder and its tokenizer."""

    text_encoder: Any
    tokenizer: Any
    key: tuple = ()
    nbytes: int = 0
    source: str = ""

    @property
    def device(self):
        return self.text_encoder.device


@dataclass(eq=False)
class VaeHandle:
    """VAE: the autoencoder between pixels and latents."""

    vae: Any
    key: tuple = ()
    nbytes: int = 0
    source: str = ""

    @property
    def scale_factor(self) -> int:
        """How many pixels one latent cell covers per side (8 for SD; 2 for the tiny test VAE)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def scaling_factor(self) -> float:
        """Latents are multiplied by this after encoding (0.18215 for SD 1.x) so they have unit variance."""
        return float(self.vae.config.scaling_factor)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)


@dataclass(eq=False)
class ControlNetHandle:
    controlnet: Any
    key: tuple = ()
    nbytes: int = 0
    source: str = ""

    @property
    def downscale(self) -> int:
        """How much the ControlNet's hint encoder shrinks the control image (must equal the VAE factor)."""
        return 2 ** (len(self.controlnet.config.conditioning_embedding_out_channels) - 1)


# ---- the one model manager ---------------------------------------------------------------


@dataclass
class _Entry:
    value: Any
    nbytes: int


def _default_budget() -> int:
    wanted = os.environ.get("NODEGRAPH_MODEL_MEMORY")
    if wanted:
        return int(float(wanted))
    device = pick_device()
    try:
        if device.type == "cuda":
            free, total = torch.cuda.mem_get_info(device)
            return int(total * 0.8)
        import psutil

        return int(psutil.virtual_memory().total * 0.5)
    except Exception:
        return 8 * 2**30


def _quiet_library_progress() -> None:
    """The graph reports its own progress; the libraries' per-file bars would only interleave."""
    import diffusers
    import transformers

    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.disable_progress_bar()


class ModelManager:
    """Loads each model once and shares it (keyed by kind, path, file date, config, dtype,
    device). Keeps the total size under a byte budget by forgetting the least recently used
    entries; handles already given to a running graph stay valid (Python frees them when the
    last user lets go)."""

    def __init__(self, budget_bytes: int | None = None) -> None:
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self._budget = budget_bytes
        self.loads = 0  # how many real loads happened (tests and lessons look at this)

    @property
    def budget(self) -> int:
        if self._budget is None:
            self._budget = _default_budget()
        return self._budget

    @budget.setter
    def budget(self, value: int) -> None:
        self._budget = int(value)
        with self._lock:
            self._evict(0)

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def keys(self) -> list[tuple]:
        return list(self._entries)

    def get(self, key: tuple, load: Callable[[], Any]) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                return entry.value
            _quiet_library_progress()
            value = load()
            self.loads += 1
            nbytes = int(getattr(value, "nbytes", 0))
            self._evict(nbytes)
            self._entries[key] = _Entry(value, nbytes)
            return value

    def _evict(self, incoming: int) -> None:
        evicted = False
        while self._entries and self.total_bytes + incoming > self.budget:
            self._entries.popitem(last=False)
            evicted = True
        if evicted and pick_device().type == "cuda":
            torch.cuda.empty_cache()  # hand the freed blocks back so the next load fits

    def free(self, key: tuple | None = None) -> None:
        """Forget one entry (or all)."""
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)


MANAGER = ModelManager()


def model_manager() -> ModelManager:
    return MANAGER


# ---- reading files ------------------------------------------------------------------------


def _check_file(path: Path, allow_pickle: bool, input_name: str) -> None:
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise NodeInputError(
            input_name,
            f"{path.name} is a pickle checkpoint, which can run arbitrary code when loaded; "
            "convert it to .safetensors, or set allow_pickle to true if you trust the file",
            expected=".safetensors file or a diffusers folder",
            got=path.name,
        )
    if suffix not in PICKLE_SUFFIXES + (".safetensors",):
        raise NodeInputError(
            input_name,
            f"{path.name} is not a checkpoint file",
            expected=".safetensors (or .ckpt with allow_pickle) file, or a diffusers folder",
            got=path.name,
        )


def read_state_dict(path: Path, allow_pickle: bool, input_name: str = "ckpt_name") -> dict:
    """All tensors of a single-file checkpoint, on the CPU. Clear errors for non-checkpoints."""
    _check_file(path, allow_pickle, input_name)
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise NodeInputError(
                input_name,
                f"{path.name} is not a readable safetensors checkpoint ({type(exc).__name__}: {exc})",
                expected="a .safetensors checkpoint",
                got=f"{path.stat().st_size} bytes of something else",
            ) from None
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise NodeInputError(input_name, f"{path.name} is not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if isinstance(data, dict) and "state_dict" in data and isinstance(data["state_dict"], dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not any(hasattr(v, "shape") for v in data.values()):
        raise NodeInputError(input_name, f"{path.name} holds no tensors: not a checkpoint")
    return data


def _resolve(ctx: RunContext, name: str, input_name: str) -> Path | str:
    """A path under the model roots, or a Hub id when the name looks like one and is not a file."""
    try:
        return ctx.input_path(name, input_name, root="model")
    except NodeInputError:
        if HUB_ID.match(name) and not Path(name).suffix:
            return name
        raise


def _hub_allowed(name: str, input_name: str) -> None:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise NodeInputError(
            input_name,
            f"{name!r} is not a file under the model roots, and it looks like a Hugging Face Hub id, "
            "but the Hub is off (HF_HUB_OFFLINE=1)",
            expected="a diffusers folder or .safetensors file under the model roots",
            got=name,
        )


def _config_folder(ctx: RunContext, config: str, config_folder: str) -> Path:
    if config_folder:
        return ctx.input_path(config_folder, "config_folder", root="model")
    folder = CONFIG_ROOT / config
    if not folder.is_dir():
        known = ", ".join(sorted(p.name for p in CONFIG_ROOT.iterdir() if p.is_dir())) if CONFIG_ROOT.is_dir() else ""
        raise NodeInputError("config", f"no shipped config named {config!r}", expected=f"one of: {known}", got=config)
    return folder


def _read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _scheduler_config(folder: Path | None) -> dict:
    if folder is not None:
        path = folder / "scheduler" / "scheduler_config.json"
        if path.exists():
            return _read_json(path)
    return _read_json(CONFIG_ROOT / "sd15" / "scheduler" / "scheduler_config.json")


def _tokenizer_from(folder: Path):
    transformers = lazy_import("transformers")
    sub = folder / "tokenizer"
    # transformers 5 saves only tokenizer.json (+ config); older versions vocab.json + merges.txt
    if (sub / "vocab.json").exists() or (sub / "tokenizer.json").exists():
        return transformers.CLIPTokenizer.from_pretrained(str(sub), local_files_only=True)
    return sd_clip_tokenizer()


_SD_TOKENIZER: Any = None


def sd_clip_tokenizer():
    """The real SD 1.x CLIP tokenizer (49,408 tokens), rebuilt offline from the BPE merges file
    that open_clip ships, so no Hub download is needed."""
    global _SD_TOKENIZER
    if _SD_TOKENIZER is not None:
        return _SD_TOKENIZER
    import gzip
    import tempfile

    import open_clip.tokenizer as oct_
    import transformers

    bpe_path = Path(oct_.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe_path).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(oct_.bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    with tempfile.TemporaryDirectory(prefix="nodegraph-clip-tok-") as scratch:  # read once, then gone
        folder = Path(scratch)
        (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
        (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
        _SD_TOKENIZER = transformers.CLIPTokenizer.from_pretrained(str(folder), model_max_length=77)
    return _SD_TOKENIZER


def _place(module: Any, dtype: Any, device: Any) -> Any:
    if module.dtype != dtype:
        module = module.to(dtype=dtype)
    if module.device != device:
        module = module.to(device=device)
    module.eval()
    module.requires_grad_(False)
    return module


def _dtype_of(name: str) -> Any:
    return pick_dtype() if name == "auto" else getattr(torch, name)


# ---- small project networks: config.json + model.safetensors --------------------------------

NET_CONFIG = "config.json"
NET_WEIGHTS = "model.safetensors"


def save_net_folder(net: Any, folder: Path) -> None:
    """Write one of the project's own small networks (the depth net, the world reader) as
    config.json (its `config` dict, which names its architecture) + model.safetensors in
    `folder` (which must exist)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    (folder / NET_CONFIG).write_text(json.dumps(net.config, indent=2) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / NET_WEIGHTS), metadata={"format": "pt"})


def read_net_folder(folder: Path | str, architecture: str, build: Callable[[dict], Any], what: str) -> Any:
    """Read a folder written by save_net_folder: checks that its config names
    `architecture`, builds the network with `build(config)` and loads the weights (cast to
    the network's dtype). Returns it in eval mode, without gradients, on the CPU."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path, weights_path = folder / NET_CONFIG, folder / NET_WEIGHTS
    if not config_path.exists() or not weights_path.exists():
        raise FileNotFoundError(f"{folder} is not a {what} folder (needs {NET_CONFIG} and {NET_WEIGHTS})")
    config = json.loads(config_path.read_text())
    if config.get("architecture") != architecture:
        raise ValueError(f"{config_path} describes {config.get('architecture')!r}, not a {architecture}")
    net = build(config)
    net.load_state_dict(load_file(str(weights_path)))
    return net.eval().requires_grad_(False)


# ---- component loaders (each cached by the manager) -----------------------------------------


def _load_unet(source: Path | str, dtype, device, subfolder: str | None = "unet") -> ModelHandle:
    diffusers = lazy_import("diffusers")
    online = isinstance(source, str)
    kwargs = {"subfolder": subfolder} if subfolder else {}
    unet = diffusers.UNet2DConditionModel.from_pretrained(str(source), torch_dtype=dtype, local_files_only=not online, **kwargs)
    unet = _place(unet, dtype, device)
    if online:
        sched = diffusers.DDIMScheduler.load_config(source, subfolder="scheduler")
        sched = dict(sched)
    else:
        sched = _scheduler_config(Path(source))
    return ModelHandle(unet, dict(sched), nbytes=module_nbytes(unet), source=str(source))


def _load_clip(source: Path | str, dtype, device) -> ClipHandle | None:
    transformers = lazy_import("transformers")
    online = isinstance(source, str)
    if not online and not (Path(source) / "text_encoder").is_dir():
        return None
    encoder = transformers.CLIPTextModel.from_pretrained(
        str(source), subfolder="text_encoder", torch_dtype=dtype, local_files_only=not online
    )
    encoder = _place(encoder, dtype, device)
    if online:
        tokenizer = transformers.CLIPTokenizer.from_pretrained(source, subfolder="tokenizer")
    else:
        tokenizer = _tokenizer_from(Path(source))
    return ClipHandle(encoder, tokenizer, nbytes=module_nbytes(encoder), source=str(source))


def _load_vae(source: Path | str, dtype, device, subfolder: str | None = "vae") -> VaeHandle:
    diffusers = lazy_import("diffusers")
    online = isinstance(source, str)
    kwargs = {"subfolder": subfolder} if subfolder else {}
    vae = diffusers.AutoencoderKL.from_pretrained(str(source), torch_dtype=dtype, local_files_only=not online, **kwargs)
    vae = _place(vae, dtype, device)
    return VaeHandle(vae, nbytes=module_nbytes(vae), source=str(source))


# single-file (LDM layout) ------------------------------------------------------------------

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."


def _load_state(module: Any, state: dict, what: str, input_name: str) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        raise NodeInputError(
            input_name,
            f"the {what} weights in this file do not fit the chosen config: {len(missing)} tensors missing "
            f"(e.g. {missing[0]})",
            expected="a config matching the checkpoint's architecture",
        )


def _single_file_parts(path: Path, config_dir: Path, allow_pickle: bool, dtype, device, input_name: str):
    diffusers = lazy_import("diffusers")
    transformers = lazy_import("transformers")
    from diffusers.loaders import single_file_utils as sfu

    state = read_state_dict(path, allow_pickle, input_name)
    if not any(k.startswith(UNET_PREFIX) for k in state):
        raise NodeInputError(
            input_name,
            f"{path.name} holds tensors but no Stable Diffusion UNet (no '{UNET_PREFIX}*' keys): "
            "not a full SD checkpoint (is it a VAE, a LoRA or a ControlNet? use that loader)",
            expected="a full SD 1.x checkpoint",
            got=f"{len(state)} tensors, e.g. {next(iter(state), '(none)')}",
        )
    unet_config = _read_json(config_dir / "unet" / "config.json")
    unet = diffusers.UNet2DConditionModel.from_config(unet_config)
    _load_state(unet, sfu.convert_ldm_unet_checkpoint(state, unet.config), "UNet", input_name)
    unet = _place(unet, dtype, device)
    model = ModelHandle(unet, _scheduler_config(config_dir), nbytes=module_nbytes(unet), source=str(path))

    vae = None
    if any(k.startswith(VAE_PREFIX) for k in state):
        vae_model = diffusers.AutoencoderKL.from_config(_read_json(config_dir / "vae" / "config.json"))
        _load_state(vae_model, sfu.convert_ldm_vae_checkpoint(state, vae_model.config), "VAE", input_name)
        vae_model = _place(vae_model, dtype, device)
        vae = VaeHandle(vae_model, nbytes=module_nbytes(vae_model), source=str(path))

    clip = None
    if any(k.startswith(CLIP_PREFIX) for k in state):
        config = transformers.CLIPTextConfig.from_pretrained(str(config_dir / "text_encoder"))
        encoder = transformers.CLIPTextModel(config)
        own = set(encoder.state_dict())

        def fit(key: str) -> str:  # transformers 4 names start with "text_model.", 5 dropped it
            if key in own:
                return key
            if key.startswith("text_model.") and key[len("text_model."):] in own:
                return key[len("text_model."):]
            return "text_model." + key if "text_model." + key in own else key

        text_state = {fit(k[len(CLIP_PREFIX):]): v for k, v in state.items() if k.startswith(CLIP_PREFIX)}
        _load_state(encoder, text_state, "text encoder", input_name)
        encoder = _place(encoder, dtype, device)
        clip = ClipHandle(encoder, _tokenizer_from(config_dir), nbytes=module_nbytes(encoder), source=str(path))
    return model, clip, vae


@dataclass(eq=False)
class _Parts:
    model: ModelHandle
    clip: ClipHandle | None
    vae: VaeHandle
    nbytes: int = 0


def load_checkpoint(
    ctx: RunContext,
    ckpt_name: str,
    config: str = "sd15",
    config_folder: str = "",
    dtype: str = "auto",
    allow_pickle: bool = False,
) -> _Parts:
    source = _resolve(ctx, ckpt_name, "ckpt_name")
    torch_dtype = _dtype_of(dtype)
    device = pick_device()
    if isinstance(source, str):
        _hub_allowed(source, "ckpt_name")
        key = ("checkpoint", source, str(torch_dtype), str(device))
    elif source.is_dir():
        if not (source / "unet").is_dir():
            raise NodeInputError(
                "ckpt_name",
                f"folder {source.name!r} is not a diffusers checkpoint (no unet/ subfolder)",
                expected="a folder with model_index.json, unet/, vae/, text_encoder/, tokenizer/",
                got=", ".join(sorted(p.name for p in source.iterdir())[:8]) or "an empty folder",
            )
        key = ("checkpoint", str(source), file_stamp(source), str(torch_dtype), str(device))
    else:
        _check_file(source, allow_pickle, "ckpt_name")
        config_dir = _config_folder(ctx, config, config_folder)
        key = ("checkpoint", str(source), file_stamp(source), str(config_dir), str(torch_dtype), str(device))

    def load() -> _Parts:
        if isinstance(source, str) or source.is_dir():
            parts = _Parts(_load_unet(source, torch_dtype, device), _load_clip(source, torch_dtype, device),
                           _load_vae(source, torch_dtype, device))
        else:
            parts = _Parts(*_single_file_parts(source, config_dir, allow_pickle, torch_dtype, device, "ckpt_name"))
            if parts.vae is None:
                raise NodeInputError("ckpt_name", f"{source.name} has no VAE weights ('{VAE_PREFIX}*'); load one with LoadVAE")
        for handle in (parts.model, parts.clip, parts.vae):
            if handle is not None:
                handle.key = key
        parts.nbytes = sum(h.nbytes for h in (parts.model, parts.clip, parts.vae) if h is not None)
        return parts

    return MANAGER.get(key, load)


# ---- nodes ----------------------------------------------------------------------------------

DtypeName = Literal["auto", "float32", "float16", "bfloat16"]


class CheckpointParts(NamedTuple):
    model: Model
    clip: Clip
    vae: Vae


@node(category="loaders", name="CheckpointLoader")
def checkpoint_loader(
    ckpt_name: Annotated[ModelFile, Doc("a diffusers folder, a .safetensors file, or a Hub id (online only)")],
    ctx: RunContext,
    config: Annotated[str, Doc("architecture for single files: a folder name in nodes/configs")] = "sd15",
    config_folder: Annotated[str, Doc("or your own diffusers-layout config folder under the model roots")] = "",
    dtype: Annotated[DtypeName, Doc("auto = fp16 on CUDA, fp32 on CPU/MPS")] = "auto",
    allow_pickle: Annotated[bool, Doc("allow .ckpt/.pt/.bin files, which can run code when loaded")] = False,
) -> CheckpointParts:
    """Load a Stable Diffusion checkpoint and split it into its three networks: MODEL (the
    UNet that predicts noise, with its scheduler config), CLIP (text encoder + tokenizer) and
    VAE (pixels <-> latents). Loaded once and shared: a second loader with the same file
    costs nothing. For SD 1.5 point ckpt_name at e.g. ``v1-5-pruned-emaonly.safetensors``
    (config ``sd15``) or at a diffusers folder."""
    parts = load_checkpoint(ctx, ckpt_name, config, config_folder, dtype, allow_pickle)
    return CheckpointParts(parts.model, parts.clip, parts.vae)


@node(category="loaders", name="LoadVAE")
def load_vae(
    vae_name: Annotated[ModelFile, Doc("a diffusers VAE folder (config.json) or .safetensors file")],
    ctx: RunContext,
    config: Annotated[str, Doc("architecture for single files (nodes/configs/<name>/vae)")] = "sd15",
    config_folder: Annotated[str, Doc("or your own diffusers-layout config folder (with vae/config.json)")] = "",
    dtype: DtypeName = "auto",
    allow_pickle: bool = False,
) -> Vae:
    """Load a VAE on its own, e.g. a fine-tuned one (``vae-ft-mse-840000``) that decodes
    sharper faces than the one inside the checkpoint."""
    diffusers = lazy_import("diffusers")
    from diffusers.loaders import single_file_utils as sfu

    source = _resolve(ctx, vae_name, "vae_name")
    torch_dtype, device = _dtype_of(dtype), pick_device()
    if isinstance(source, str):
        _hub_allowed(source, "vae_name")
    stamp = file_stamp(source) if isinstance(source, Path) else ()
    key = ("vae", str(source), stamp, config, config_folder, str(torch_dtype), str(device))

    def load() -> VaeHandle:
        if isinstance(source, str) or source.is_dir():
            folder = source
            sub = "vae" if isinstance(source, Path) and (source / "vae").is_dir() else None
            handle = _load_vae(folder, torch_dtype, device, subfolder=sub)
        else:
            state = read_state_dict(source, allow_pickle, "vae_name")
            config_dir = _config_folder(ctx, config, config_folder)
            model = diffusers.AutoencoderKL.from_config(_read_json(config_dir / "vae" / "config.json"))
            if set(model.state_dict()) <= set(state):
                converted = state  # already diffusers names
            else:  # original layout, with or without the checkpoint's "first_stage_model." prefix
                converted = sfu.convert_ldm_vae_checkpoint(state, model.config)
            _load_state(model, converted, "VAE", "vae_name")
            model = _place(model, torch_dtype, device)
            handle = VaeHandle(model, nbytes=module_nbytes(model), source=str(source))
        handle.key = key
        return handle

    return MANAGER.get(key, load)


@node(category="loaders", name="LoadTextEncoder")
def load_text_encoder(
    clip_name: Annotated[ModelFile, Doc("a diffusers checkpoint folder (text_encoder/ + tokenizer/) or a text_encoder folder")],
    ctx: RunContext,
    dtype: DtypeName = "auto",
) -> Clip:
    """Load only the text encoder and its tokenizer: enough to look at tokens and embeddings
    without loading the (much larger) UNet."""
    transformers = lazy_import("transformers")
    source = _resolve(ctx, clip_name, "clip_name")
    torch_dtype, device = _dtype_of(dtype), pick_device()
    if isinstance(source, str):
        _hub_allowed(source, "clip_name")
    key = ("clip", str(source), file_stamp(source) if isinstance(source, Path) else (), str(torch_dtype), str(device))

    def load() -> ClipHandle:
        if isinstance(source, Path) and (source / "config.json").exists() and not (source / "text_encoder").is_dir():
            encoder = transformers.CLIPTextModel.from_pretrained(str(source), torch_dtype=torch_dtype, local_files_only=True)
            tokenizer = _tokenizer_from(source.parent)
            handle = ClipHandle(_place(encoder, torch_dtype, device), tokenizer, nbytes=module_nbytes(encoder), source=str(source))
        else:
            handle = _load_clip(source, torch_dtype, device)
            if handle is None:
                raise NodeInputError("clip_name", f"{Path(source).name} has no text_encoder/ subfolder")
        handle.key = key
        return handle

    return MANAGER.get(key, load)


@node(category="loaders", name="LoadControlNet")
def load_controlnet(
    control_net_name: Annotated[ModelFile, Doc("a diffusers ControlNet folder (config.json + weights)")],
    ctx: RunContext,
    dtype: DtypeName = "auto",
) -> ControlNet:
    """Load a ControlNet: a copy of the UNet's encoder that reads a hint image (edges, depth,
    pose) and adds its features into the UNet, steering the layout of the picture."""
    diffusers = lazy_import("diffusers")
    source = _resolve(ctx, control_net_name, "control_net_name")
    torch_dtype, device = _dtype_of(dtype), pick_device()
    if isinstance(source, str):
        _hub_allowed(source, "control_net_name")
    elif not source.is_dir():
        _check_file(source, False, "control_net_name")
        raise NodeInputError(
            "control_net_name",
            "single-file ControlNets are not supported yet; use a diffusers folder (config.json + weights)",
            expected="a diffusers ControlNet folder",
            got=source.name,
        )
    key = ("controlnet", str(source), file_stamp(source) if isinstance(source, Path) else (), str(torch_dtype), str(device))

    def load() -> ControlNetHandle:
        model = diffusers.ControlNetModel.from_pretrained(
            str(source), torch_dtype=torch_dtype, local_files_only=isinstance(source, Path)
        )
        model = _place(model, torch_dtype, device)
        return ControlNetHandle(model, key=key, nbytes=module_nbytes(model), source=str(source))

    return MANAGER.get(key, load)
