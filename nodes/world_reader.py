"""A trained reader for the synthetic world: a small CNN that names each object's shape.

The world's evaluator (nodes/world.py, "Evaluation") finds objects by colour, exactly and
readably: every pixel is labelled with the nearest reference colour, and each colour's
pixels are one object. What an object's *shape* is, is a harder question once a picture is
blurred, noisy or drawn by a model, and this module answers it the way the issue asks for:
with a small classifier trained on the world's ground truth.

What the network sees
---------------------
For each object the colour labelling found, a 32×32 crop around it (:func:`object_crop`):
the object's box, made square and 1.5× larger, so the crop shows the whole object with a
margin whatever its size or the picture's resolution. Five channels: the picture's RGB
(blur and soft edges stay visible), the object's colour mask (which of the things in the
crop is meant) and the mask of the *other* objects (where this one may be hidden behind a
neighbour, so a bitten-off circle is still a circle).

The network (:func:`build_reader`, about 0.14 M parameters, 0.28 MB in fp16): three
stages of two 3×3 convolutions (16, 32, 64 channels, batch norm, ReLU) each followed by a
2×2 max pool (32 → 16 → 8 → 4 px), then a 64-unit layer and one output per world shape.
Softmax gives a probability per shape.

An honest judge says when it cannot tell
----------------------------------------
A network trained on six shapes always names one of the six, often with a probability
near 1 even for a blob that looks like none of them. So the reader answers "unclear" when
the likeliest shape has a probability under ``unclear_below`` *or* when that shape's own
outline, fitted to the object's pixels (world.fit_templates, the analytic reader's
templates), overlaps them with an IoU under ``min_fit``: a region that no circle, square,
triangle, star, diamond or cross covers well is not one of them, whatever the network
says. Both thresholds are in config.json. On held-out world renders, blurred up to σ 1.2
px or noisy, the fitted IoU of the shape read was never under 0.8, so ``min_fit`` 0.72
only rejects shapes no world render has.

How it is trained (TrainWorldReader)
------------------------------------
Only exact world renders (world.batch_scenes → world.render at 64 px, one to three
objects, occlusion included), each degraded at random the way any picture can be: Gaussian
blur (σ up to 1.2 px on three pictures in four), pixel noise (on half of them) and a small
colour jitter (gain and offset per channel). A third of the scenes is drawn with slightly
melted, wobbling outlines (:func:`render_melted`: corners rounded by up to 0.15 of the
radius, outlines pushed by up to 1 px), shapes a person still names at a glance. Without
them the network reads a shape from details of the outline that any uneven drawing
changes: a trial reader trained 400 steps without them named a round blob drawn by MiniSD
"square" with a probability of 0.97; with them, the shipped one says "circle". The degraded
picture goes through the very colour labelling the evaluator uses, and each object found
is labelled with the true shape of the scene's object of that colour: the crops seen in
training are the crops seen when reading. It is never trained on VAE round trips or
model outputs: the reader must judge a generated picture the way an honest observer
would, not learn a generator's artefacts. Cross-entropy loss, AdamW; the held-out accuracy
(clean and blurred) is measured on scenes of a stream the trainer never draws from
(train.HOLDOUT).

The trained folder holds ``config.json``, ``model.safetensors`` and the trainer's marker;
the shipped copy (fp16) is ``nodes/assets/models/world-reader``. :func:`default_reader`
loads it once (cached on the folder's file stamp). benchmarks/world_reader_eval.py
compares it with the analytic template fit.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from nodegraph import Doc, NodeInputError, Range, RunContext, node
from nodegraph.lazy import lazy_import
from nodegraph.types import Seed

from . import world
from .models import read_net_folder, save_net_folder

torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")
np = lazy_import("numpy")
cv2 = lazy_import("cv2")

ARCHITECTURE = "WorldShapeReader"
SHIPPED_NAME = "world-reader"
CROP = 32  # side of the crop the network reads
CROP_SCALE = 1.5  # the crop is this much larger than the object's box
CHANNELS = ("red", "green", "blue", "object mask", "other objects")


# ---- what the network sees ------------------------------------------------------------------


def object_crop(image, mask, others, size: int = CROP, scale: float = CROP_SCALE):
    """A size×size view of one object: 5×size×size float32 (RGB in [-1, 1], the object's
    mask and the other objects' mask in [0, 1]). image: H×W×3 float32 in [0, 1]; mask,
    others: H×W bool. The view is centred on the mask's box, square, `scale` times its
    longer side (+2 px); pictures larger than the view are first shrunk by area averaging
    (no aliasing), smaller ones are enlarged bilinearly."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = max(x1 - x0, y1 - y0) * scale + 2.0
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0  # pixel edges: pixel j spans [j, j+1]
    layers = np.concatenate([image, mask[..., None], others[..., None]], axis=-1).astype(np.float32)
    factor = side / size
    if factor > 1.5:  # shrink the picture first, so the view averages pixels instead of skipping them
        shrink = 1.0 / factor
        h, w = mask.shape
        new_size = (max(1, round(w * shrink)), max(1, round(h * shrink)))
        # OpenCV's area resize takes at most 4 channels: colour and masks apart
        layers = np.concatenate([cv2.resize(np.ascontiguousarray(part), new_size, interpolation=cv2.INTER_AREA).reshape(new_size[1], new_size[0], -1)
                                 for part in (layers[..., :3], layers[..., 3:])], axis=-1)
        sx, sy = layers.shape[1] / w, layers.shape[0] / h
        cx, cy, side = cx * sx, cy * sy, side * sx
        factor = side / size
    # output pixel u (centre u + 0.5) reads the picture at cx - side/2 + (u + 0.5)·factor (edges),
    # i.e. at that minus 0.5 in OpenCV's coordinates (pixel centres at integers)
    offset_x = cx - side / 2 + 0.5 * factor - 0.5
    offset_y = cy - side / 2 + 0.5 * factor - 0.5
    matrix = np.array([[factor, 0.0, offset_x], [0.0, factor, offset_y]], dtype=np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    rgb = cv2.warpAffine(np.ascontiguousarray(layers[..., :3]), matrix, (size, size), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    masks = cv2.warpAffine(np.ascontiguousarray(layers[..., 3:]), matrix, (size, size), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.concatenate([rgb * 2.0 - 1.0, masks], axis=-1).transpose(2, 0, 1).astype(np.float32)


def picture_crops(rgb, found, others) -> list:
    """The crops of every object found in one H×W×3 uint8 picture (world.find_objects),
    with their other-object masks (world.others_mask)."""
    image = rgb.astype(np.float32) / 255.0
    return [object_crop(image, mask, other) for (_, mask), other in zip(found, others)]


# ---- the network ----------------------------------------------------------------------------


def reader_config(channels: tuple[int, ...] = (16, 32, 64), hidden: int = 64, unclear_below: float = 0.5, min_fit: float = 0.72) -> dict:
    """config.json of a reader: its widths, the crop it reads, the shapes it names (in
    output order), and when it answers "unclear" (see read_objects)."""
    return {
        "architecture": ARCHITECTURE,
        "crop": CROP,
        "crop_scale": CROP_SCALE,
        "in_channels": len(CHANNELS),
        "input": list(CHANNELS),
        "channels": [int(c) for c in channels],
        "hidden": int(hidden),
        "kinds": list(world.SHAPES),
        "unclear_below": float(unclear_below),
        "min_fit": float(min_fit),
    }


@lru_cache(maxsize=1)
def _reader_class():
    """The nn.Module class, made on first use (importing this pack does not import torch)."""
    nn = torch.nn

    def stage(c_in: int, c_out: int):
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.MaxPool2d(2),
        )

    class WorldShapeReader(nn.Module):
        """Crops B×5×32×32 → one logit per world shape, B×len(kinds)."""

        def __init__(self, config: dict) -> None:
            super().__init__()
            self.config = dict(config)
            widths = [int(config["in_channels"]), *config["channels"]]
            self.features = nn.Sequential(*(stage(a, b) for a, b in zip(widths[:-1], widths[1:])))
            side = int(config["crop"]) // 2 ** len(config["channels"])
            self.head = nn.Sequential(
                nn.Flatten(), nn.Linear(widths[-1] * side * side, int(config["hidden"])), nn.ReLU(),
                nn.Linear(int(config["hidden"]), len(config["kinds"])),
            )

        def forward(self, crops):
            return self.head(self.features(crops))

    return WorldShapeReader


def build_reader(config: dict | None = None):
    """A fresh (randomly initialised) reader."""
    return _reader_class()(config or reader_config())


def save_reader(net, folder: Path) -> None:
    """config.json + model.safetensors in `folder` (which must exist)."""
    save_net_folder(net, folder)


def load_reader(folder: Path | str):
    """Read a folder written by TrainWorldReader; the network in eval mode, fp32, on the CPU
    (reading a few hundred crops is quicker there than moving them to a GPU)."""
    return read_net_folder(folder, ARCHITECTURE, build_reader, "world reader")


@lru_cache(maxsize=4)
def _load_cached(folder: str, stamp: str):
    return load_reader(folder)


def cached_reader(folder: Path | str):
    """load_reader, shared: loaded once per folder content (nodegraph.cache.file_stamp)."""
    from nodegraph.cache import file_stamp

    return _load_cached(str(folder), file_stamp(Path(folder)))


def shipped_folder() -> Path:
    from nodegraph.config import builtin_model_roots

    return builtin_model_roots()[0] / SHIPPED_NAME


def default_reader():
    """The shipped reader (nodes/assets/models/world-reader)."""
    return cached_reader(shipped_folder())


def classify(net, crops) -> "torch.Tensor":
    """Probabilities N×len(kinds) for crops N×5×32×32 (numpy or tensor)."""
    batch = torch.as_tensor(np.asarray(crops, dtype=np.float32)) if not torch.is_tensor(crops) else crops.float()
    if len(batch) == 0:
        return torch.zeros(0, len(net.config["kinds"]))
    with torch.inference_mode():
        return torch.cat([F.softmax(net(part), dim=1) for part in batch.split(512)])


def read_objects(pictures, found, others, model=None) -> list[list[tuple[str, dict, tuple]]]:
    """Read every object found in every picture (world.find_objects, world.others_mask):
    (kind, {kind: probability}, (IoU, cx, cy, r)) per object, in one batched pass of the
    network. The outline of the likeliest kind is fitted to the object's pixels for its
    centre and radius (world.fit_templates). The answer is "unclear" when the likeliest
    kind has a probability under the config's ``unclear_below``, or when its outline covers
    the object's pixels with an IoU under ``min_fit`` (a shape no world shape resembles)."""
    net = model if model is not None else default_reader()
    crops = [c for rgb, objects, masks in zip(pictures, found, others) for c in picture_crops(rgb, objects, masks)]
    probabilities = classify(net, np.stack(crops) if crops else np.zeros((0, len(CHANNELS), CROP, CROP), np.float32))
    kinds = list(net.config["kinds"])
    floor, min_fit = float(net.config.get("unclear_below", 0.0)), float(net.config.get("min_fit", 0.0))
    out, index = [], 0
    for objects, masks in zip(found, others):
        row = []
        for (_, mask), other in zip(objects, masks):
            p = dict(zip(kinds, probabilities[index].tolist()))
            best = max(p, key=p.get)
            fit = world.fit_templates(mask, other, kinds=(best,))[best]
            row.append((best if p[best] >= floor and fit[0] >= min_fit else world.UNCLEAR, p, fit))
            index += 1
        out.append(row)
    return out


# ---- training data ------------------------------------------------------------------------------


def degrade(image, rng, blur: float = 1.2, noise: float = 0.05, jitter: float = 0.04):
    """A world picture (H×W×3 float32 in [0, 1]) as a camera or a generator might blur and
    disturb it, returned as uint8: Gaussian blur of σ uniform in [0, blur] px (on three
    pictures in four), a colour jitter (per channel gain 1 ± jitter and offset ± jitter),
    and pixel noise of σ uniform in [0, noise] (on half of them). Every picture draws the
    same numbers from `rng` whatever it gets, so a stream of pictures is reproducible."""
    draws = rng.uniform(0.0, 1.0, 10)
    sigma = blur * draws[1] if draws[0] < 0.75 else 0.0
    if sigma > 0.05:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    gain = 1.0 + jitter * (2 * draws[2:5] - 1)
    offset = jitter * (2 * draws[5:8] - 1)
    image = image * gain.astype(np.float32) + offset.astype(np.float32)
    pixels = rng.standard_normal(image.shape).astype(np.float32)
    if draws[8] < 0.5:
        image = image + noise * draws[9] * pixels
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def render_melted(scene, size: int, rng, melt: float, wobble: float, samples: int = 4):
    """A world render whose outlines have melted a little and wobble: H×W×3 float32 in [0, 1].
    Each shape's exact inside (at samples× the resolution) is blurred with σ uniform in
    [0, melt × its radius] and cut again at one half, which rounds its corners and fills
    its inner corners the way a soft brush would, and the whole picture's outlines are
    pushed by a smooth random displacement of up to `wobble` px. The shape stays what it
    was: a rounded square is still a square to anyone who looks. The reader learns that
    corners may be soft and outlines uneven, instead of reading a shape from details that
    a generator's outline changes at random."""
    n = size * samples
    coords = (np.arange(n, dtype=np.float32) + 0.5) / n
    X, Y = np.meshgrid(coords, coords)
    grid = rng.standard_normal((2, 6, 6)).astype(np.float32)
    amplitude = wobble * rng.uniform() / size
    X = X + amplitude * cv2.resize(grid[0], (n, n), interpolation=cv2.INTER_CUBIC)
    Y = Y + amplitude * cv2.resize(grid[1], (n, n), interpolation=cv2.INTER_CUBIC)
    image = world.render_background(scene.background, size).copy()
    for k in scene.back_to_front():
        shape = scene.shapes[k]
        inside = shape.contains(X, Y).astype(np.float32)
        sigma = melt * shape.radius * n * rng.uniform()
        if sigma > 0.5:
            inside = (cv2.GaussianBlur(inside, (0, 0), sigma) >= 0.5).astype(np.float32)
        coverage = inside.reshape(size, samples, size, samples).mean(axis=(1, 3))
        color = np.asarray(shape.rgb, dtype=np.float32) / 255.0
        image += (color - image) * coverage[..., None]
    return np.round(np.clip(image, 0, 1) * 255.0).astype(np.float32) / 255.0


def labelled_crops(scenes, pictures) -> tuple[list, list[int], list[tuple[int, int]]]:
    """Crops of the objects the colour labelling finds in `pictures` (uint8, one per
    scene), each labelled with the true shape of the scene's object of that colour (index
    into world.SHAPES). Objects of a colour the scene does not have are skipped. Also
    returns (picture, object) for each crop."""
    crops, labels, where = [], [], []
    for p, (scene, rgb) in enumerate(zip(scenes, pictures)):
        found = world.find_objects(rgb)
        others = [world.others_mask(found, k) for k in range(len(found))]
        truth = {s.color: k for k, s in enumerate(scene.shapes)}
        image = rgb.astype(np.float32) / 255.0
        for (color, mask), other in zip(found, others):
            if color not in truth:
                continue
            crops.append(object_crop(image, mask, other))
            labels.append(world.SHAPES.index(scene.shapes[truth[color]].kind))
            where.append((p, truth[color]))
    return crops, labels, where


def training_batch(seed: int, step: int, batch_size: int, blur: float, noise: float, jitter: float,
                   melt: float = 0.0, wobble: float = 0.0, melted_share: float = 0.35, size: int = 64):
    """Crops and labels of training step `step`: world batch `step` of the stream `seed`
    (1–3 objects per scene), each picture degraded with randomness drawn from (seed, step);
    a `melted_share` of them is drawn with melted, wobbling outlines (render_melted)."""
    scenes = world.batch_scenes(seed, step, batch_size)
    rng = np.random.default_rng([int(seed) % 2**64, int(step), 0x0EAD])
    pictures = []
    for scene in scenes:
        melted = (melt > 0 or wobble > 0) and rng.uniform() < melted_share
        image = render_melted(scene, size, rng, melt, wobble) if melted else world.render(scene, size).image
        pictures.append(degrade(image, rng, blur, noise, jitter))
    crops, labels, _ = labelled_crops(scenes, pictures)
    if not crops:  # the degradation hid every object (rare, tiny batches): learn from the clean renders
        crops, labels, _ = labelled_crops(scenes, blurred(scenes, 0.0, size))
    return torch.from_numpy(np.stack(crops)), torch.tensor(labels, dtype=torch.long)


def holdout_scenes(seed: int, count: int, n_objects: int | None = None) -> list:
    """Scenes of a stream no trainer draws from (train.HOLDOUT + seed)."""
    from .train import HOLDOUT

    return world.batch_scenes(HOLDOUT + int(seed), n_objects or 0, count, n_objects)


def blurred(scenes, sigma: float, size: int = 64) -> list:
    """Renders of `scenes` blurred with a Gaussian of σ `sigma` px, as uint8 pictures."""
    out = []
    for scene in scenes:
        image = world.render(scene, size).image
        if sigma > 0:
            image = cv2.GaussianBlur(image, (0, 0), sigma)
        out.append(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))
    return out


def object_scores(scenes, pictures, reader: str = "trained", model=None) -> list[dict]:
    """Read each picture with `reader` and score every object of its scene against the
    ground truth: one dict per object with "shape", "color_and_shape" (1/0), "size" and
    "n_objects" (of the scene) and "answer" (the shape read, or None when not found)."""
    detections = world.analyze_arrays(pictures, reader=reader, model=model)
    rows = []
    for scene, found in zip(scenes, detections):
        result = world.score_detections(world.scene_target(scene), found)
        by_color = {d.color: d.kind for d in found}
        for shape, fields in zip(scene.shapes, result["objects"]):
            rows.append({"shape": fields["shape"], "color_and_shape": fields["color"] * fields["shape"], "size": shape.size,
                         "kind": shape.kind, "n_objects": len(scene.shapes), "answer": by_color.get(shape.color)})
    return rows


def shape_accuracy(net, scenes, sigma: float) -> float:
    """Share of the objects of `scenes` (blurred by `sigma`) whose shape `net` reads right."""
    rows = object_scores(scenes, blurred(scenes, sigma), "trained", net)
    return sum(r["shape"] for r in rows) / max(len(rows), 1)


# ---- the training node ----------------------------------------------------------------------------


class WorldReaderResult(NamedTuple):
    reader_path: str
    loss_plot: str
    holdout_accuracy: float


@node(category="train", name="TrainWorldReader", persist=True)
def train_world_reader(
    ctx: RunContext,
    seed: Annotated[Seed, Doc("network init and the world data stream")] = 0,
    steps: Annotated[int, Range(1, 1_000_000), Doc("optimizer steps")] = 2000,
    batch_size: Annotated[int, Range(1, 1024), Doc("world pictures per step (each holds 1–3 objects)")] = 32,
    learning_rate: Annotated[float, Range(1e-6, 1e-1)] = 2e-3,
    blur: Annotated[float, Range(0.0, 5.0), Doc("largest Gaussian blur σ (px) of the augmentation")] = 1.2,
    noise: Annotated[float, Range(0.0, 0.5), Doc("largest pixel-noise σ of the augmentation")] = 0.05,
    jitter: Annotated[float, Range(0.0, 0.3), Doc("colour jitter: per-channel gain 1 ± jitter, offset ± jitter")] = 0.04,
    melt: Annotated[float, Range(0.0, 0.5), Doc("outline melting of the augmentation: largest rounding σ as a fraction of the shape's radius; 0 = off")] = 0.15,
    wobble: Annotated[float, Range(0.0, 5.0), Doc("largest smooth outline displacement (px) of the augmentation; 0 = off")] = 1.0,
    unclear_below: Annotated[float, Range(0.0, 1.0), Doc("the reader answers \"unclear\" when no shape is this likely (0.5: more likely than all others together)")] = 0.5,
    min_fit: Annotated[float, Range(0.0, 1.0), Doc("... or when the outline of the shape it read overlaps the object's pixels less than this (IoU)")] = 0.72,
    lr_decay: Annotated[float, Range(0.0, 1.0), Doc("share of the last steps over which the learning rate eases down to a tenth")] = 0.3,
    checkpoint_every: Annotated[int, Range(1, 100_000)] = 100,
    name: Annotated[str, Doc("folder written under the first model root (WorldEvaluate's reader_model)")] = "world-reader",
) -> WorldReaderResult:
    """Train the world reader: a small CNN that names the shape of each object the colour
    labelling finds, from a 32×32 crop around it. It learns from exact world renders only,
    blurred, jittered and noised at random, never from a generator's pictures, so it
    judges a generated picture like an honest observer. Reports shape accuracy on held-out
    scenes (clean and blurred σ 1 px). Writes config.json + model.safetensors that
    WorldEvaluate(reader="trained", reader_model=name) reads."""
    from . import train as T

    T._check_name(name)
    if not 1 <= batch_size <= 1024:
        raise NodeInputError("batch_size", "need at least one picture per step", expected="1 .. 1024", got=repr(batch_size))
    device = T.pick_device()
    net = T._seeded_init(seed, lambda: build_reader(reader_config(unclear_below=unclear_below, min_fit=min_fit))).to(device).train()
    optimizer = T.adamw(net.parameters(), learning_rate, weight_decay=1e-4)

    def step_fn(step: int) -> float:
        crops, labels = training_batch(seed, step, batch_size, blur, noise, jitter, melt, wobble)
        loss = F.cross_entropy(net(crops.to(device)), labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    losses = T.run_training(
        ctx, steps=steps, checkpoint_every=checkpoint_every, modules={"reader": net}, optimizer=optimizer,
        learning_rate=learning_rate, warmup=min(100, steps // 10 + 1), step_fn=step_fn, label="reader ",
        decay_fraction=lr_decay,
    )
    net = net.cpu().eval()
    scenes = holdout_scenes(seed, 96)
    clean, soft = shape_accuracy(net, scenes, 0.0), shape_accuracy(net, scenes, 1.0)
    facts = {"trainer": "TrainWorldReader", "seed": seed, "steps": steps, "batch_size": batch_size, "blur": blur,
             "noise": noise, "jitter": jitter, "melt": melt, "wobble": wobble, "lr_decay": lr_decay, "holdout_shape_accuracy_clean": round(clean, 4),
             "holdout_shape_accuracy_blur_1px": round(soft, 4), "final_loss": losses[-1] if losses else None}
    path = T.publish(ctx, name, lambda folder: save_reader(net, folder), facts)
    plot = T.plot_losses(losses, ctx.output_path(f"train/{name}_loss.png"),
                         f"TrainWorldReader: held-out shapes {clean:.1%} clean, {soft:.1%} blurred σ 1")
    ctx.wrote(plot)
    return WorldReaderResult(path, str(plot), round(clean, 4))
