"""The synthetic world: flat coloured shapes with exact ground truth.

MiniSD, its ControlNet, its depth net and its text encoder are trained on this world, and
lessons *check* generated pictures against it. Everything here is exact, seeded and fast:
the same seed gives the same scene, bit for bit, on every machine.

The scene model
---------------
A :class:`Scene` is a :class:`Background` and one to three :class:`Shape` objects.

* kinds      circle, square, triangle, star, diamond, cross (all upright, never rotated)
* colours    red, orange, yellow, green, blue, purple, white, black (saturated or extreme);
             the colours of one scene are all different
* sizes      small, medium, large: the shape's nominal radius is 0.08, 0.115 or 0.15 of
             the image side (±3 %)
* positions  a 3×3 grid of words: top left, top, top right, left, center, right,
             bottom left, bottom, bottom right. A shape's position word is read from its
             centre: x < 1/3 is "left", x > 2/3 "right", likewise for y ("top" is y < 1/3,
             y points down). Centres are sampled near the cell centres (0.21, 0.5, 0.79)
             with jitter, so the word is never borderline. Objects of one scene sit in
             different cells.
* depth      each shape is a flat cut-out facing the camera at a disparity (larger =
             nearer) that follows perspective: small 0.45, medium 0.65, large 0.85, plus up
             to 0.12 at random. Nearer shapes are drawn over farther ones. The background is
             a wall at disparity 0. ``depth_order`` is the rank, 0 = farthest.
* background plain, gradient (between two background colours) or light texture (smooth
             luminance noise). Background colours (gray, sand, sky, sage, slate, rose) are
             muted mid-tones, far from every shape colour, so shapes always stand out.

Coordinates: x to the right, y down, both in [0, 1] of the image side; pixel (i, j) of an
N×N render has its centre at ((j + 0.5)/N, (i + 0.5)/N). Scenes are resolution-free: the
same scene renders at 32, 64, 128 or 256 pixels.

Ground truth
------------
``render(scene, size)`` gives the image (anti-aliased by supersampling, optional), the
per-pixel depth (DEPTH: larger = nearer, background 0), the id map and one *visible* mask
per object. Masks are exact point samples: a pixel belongs to an object when its centre
lies inside the object's outline and no nearer object covers it there.

Captions (a small grammar, one canonical caption per scene)
------------------------------------------------------------
* one object    "a small red circle at the top left"
* two objects   "a blue square left of a yellow triangle"  (relation on the axis where the
                 two centres differ most: left of, right of, above, below)
* three objects "a red circle at the top left, a blue square at the center and a green
                 star at the bottom right"

``vocabulary()`` lists every word a caption can contain (captions also contain spaces and
commas); ``parse_prompt(text)`` turns a caption (or a looser prompt in the same words)
back into a :class:`Target`: what was asked for.

Motion
------
A moving scene gives every shape a velocity (image sides per frame); shapes bounce off the
image border. Between frames t and t+1 every shape moves rigidly, so the optical flow is
known exactly. FLOW here follows the project convention (nodes/flow.py): a **backward**
flow, B×2×H×W pixel offsets (dx, dy), x right, y down, pixel centres at integers:

    flow[t](p) = where the content at pixel p of frame t+1 was in frame t, minus p

so ``warp(frame_t, flow[t]) ≈ frame_t+1`` (``warp`` reads frame_t at p + flow(p) with
bilinear grid_sample). On object pixels the flow is the object's displacement reversed;
on the static background it is 0. The ``valid`` masks mark the pixels of frame t+1 whose
source point shows the same surface in frame t (not disoccluded): there the warp is exact
up to anti-aliasing at edges.

Evaluation: reading pictures back
---------------------------------
``analyze(image)`` reads a picture of this world and reports each object's colour, shape,
size and position; ``evaluate(image, prompt)`` scores a picture against a prompt.

1. Objects are found analytically (``find_objects``), which is exact and readable: pixels
   are labelled by the nearest reference colour (the 8 shape colours against the
   background palette, gradients between background colours and the picture's own border
   colours, then a blend model for soft edges, see ``label_colors``), and each colour's
   pixels become one object.
2. Each object's shape is named by one of two readers (``reader=``):

   * "trained" (the default): a small CNN (nodes/world_reader.py, 0.14 M parameters,
     0.28 MB shipped in nodes/assets/models/world-reader) reads a 32×32 crop around the
     object: RGB, the object's mask and the other objects' mask. TrainWorldReader
     (graphs/train/world_reader.json) trained it on exact world renders only, blurred,
     noised, colour-jittered and with slightly rounded, wobbling outlines, never on a
     generator's pictures. It answers "unclear" when no shape is more likely than all the
     others together, or when the outline of the shape it read overlaps the object's
     pixels with an IoU under 0.72 (a blob no world shape resembles). The outline template
     of the kind it read is then fitted for the centre and radius (position and size).
   * "analytic": the outline template (same geometry as the renderer) that best overlaps
     the colour's pixels, fitted for position and radius, names the shape.

Measured by benchmarks/world_reader_eval.py at 64×64 on held-out scenes (200 one-, 100
two-, 100 three-object scenes, 700 objects; shape accuracy per object, trained vs
analytic; colour was right for every object): clean 100 % vs 100 %; Gaussian blur σ 0.7 px
100 % vs 99.6 %; σ 1.0 100 % vs 94.3 % (small shapes 100 % vs 82.5 %); σ 1.2 100 % vs
85.6 % (small 100 % vs 55.9 %: blurred small stars, crosses and diamonds look round to a
template); noise σ 0.06 100 % vs 100 %; no "unclear" answers on any of them. At 32 px
(trained at 64 only) clean renders give 98.8 % vs 90.4 %, at 128 px 100 % vs 100 %.
Reading 240 pictures takes about 1.6 s (trained) or 2.1 s (analytic) on one CPU thread.

On 240 one-object pictures drawn by an earlier MiniSD (an 8000-step UNet on a VAE trained
without object weighting; benchmarks/minisd_eval.py's prompts and seeds, 20 steps, CFG 8)
the two readers named the same shape for 213 (88.8 %); colour and shape as prompted:
80.8 % read by the trained reader, 86.2 % by the template fit. (The shipped MiniSD draws
cleaner outlines: 97.5 % and 95.8 %.) Looking at the 27 pictures where they differed: the trained reader is the stricter
judge, and a person mostly sides with it on odd outlines (a T-shape, a thin spike, a
boomerang, two merged blobs: "unclear", where the template fit accepts the nearest
template) and on MiniSD's four-lobed "diamonds", which look like rounded crosses (it says
cross). A person sides with the template fit on diamonds with pinched sides and sharp
tips (the trained reader says cross), on two thin-armed stars (the star outline fits them
with an IoU of only 0.72, so the trained reader says "unclear") and on a few small blobs
the network names confidently (a lumpy blob "star"). Use reader="analytic" to compare.

Nodes
-----
WorldScene, WorldSceneFromPrompt, WorldMovingScene, WorldDataset, WorldParsePrompt,
WorldEvaluate. For training code, ``iter_batches(seed, batch_size, size)`` streams
batches of tensors and captions forever, deterministically per seed.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Annotated, Any, Iterator, Literal, NamedTuple

from nodegraph import Doc, NodeInputError, Range, RunContext, node
from nodegraph.frames import FrameStream
from nodegraph.lazy import lazy_import
from nodegraph.types import Depth, Flow, Frames, Image, Mask, ModelFile, Prompt, Seed

torch = lazy_import("torch")
F = lazy_import("torch.nn.functional")
np = lazy_import("numpy")
cv2 = lazy_import("cv2")

# ---- the world's vocabulary of things -----------------------------------------------------

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "cross")

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (250, 140, 0),
    "yellow": (250, 225, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "purple": (140, 50, 190),
    "white": (250, 250, 250),
    "black": (15, 15, 15),
}

BACKGROUND_COLORS: dict[str, tuple[int, int, int]] = {
    "gray": (128, 128, 128),
    "sand": (200, 185, 150),
    "sky": (150, 185, 215),
    "sage": (140, 170, 130),
    "slate": (80, 90, 110),
    "rose": (200, 150, 160),
}

BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "texture")

SIZES: dict[str, float] = {"small": 0.08, "medium": 0.115, "large": 0.15}
SIZE_JITTER = 0.03
SIZE_DISPARITY: dict[str, float] = {"small": 0.45, "medium": 0.65, "large": 0.85}
DISPARITY_JITTER = 0.12
BACKGROUND_DISPARITY = 0.0
MIN_VISIBLE = 0.65  # every object keeps at least this fraction of its area visible

POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)  # fmt: skip
CELL_CENTERS = (0.21, 0.5, 0.79)
POSITION_JITTER = 0.05

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")

TEXTURE_AMPLITUDE = (0.035, 0.02)  # coarse and fine octave of the light texture


def position_word(x: float, y: float) -> str:
    """The grid word for a point (x, y in [0, 1], y down): thresholds at 1/3 and 2/3."""
    col = 0 if x < 1 / 3 else (2 if x > 2 / 3 else 1)
    row = 0 if y < 1 / 3 else (2 if y > 2 / 3 else 1)
    return POSITIONS[row * 3 + col]


def size_word(radius: float) -> str:
    """The size word for a nominal radius (fraction of the image side): nearest size, cut at midpoints."""
    small, medium, large = SIZES["small"], SIZES["medium"], SIZES["large"]
    if radius < (small + medium) / 2:
        return "small"
    if radius < (medium + large) / 2:
        return "medium"
    return "large"


# ---- shape geometry ------------------------------------------------------------------------
# Every kind is defined for a nominal radius 1 around its centre, in image orientation (v
# down). All polygons are star-shaped around the centre (a ray from the centre crosses the
# outline once), so one inside test serves them all; their centroid is the centre.


def _regular(n: int, radius: float, start_deg: float) -> list[tuple[float, float]]:
    return [
        (radius * math.cos(math.radians(start_deg + 360 * k / n)), radius * math.sin(math.radians(start_deg + 360 * k / n)))
        for k in range(n)
    ]


def _star(points: int, outer: float, inner: float) -> list[tuple[float, float]]:
    verts = []
    for k in range(2 * points):
        radius = outer if k % 2 == 0 else inner
        angle = math.radians(-90 + 180 * k / points)
        verts.append((radius * math.cos(angle), radius * math.sin(angle)))
    return verts


_CROSS_L, _CROSS_W = 1.1, 0.4
SHAPE_POLYGONS: dict[str, list[tuple[float, float]]] = {
    "square": [(0.85, 0.85), (-0.85, 0.85), (-0.85, -0.85), (0.85, -0.85)],
    "diamond": _regular(4, 1.15, 0),
    "triangle": _regular(3, 1.3, -90),  # apex up
    "star": _star(5, 1.3, 0.65),  # a point up
    "cross": [
        (_CROSS_L, _CROSS_W), (_CROSS_W, _CROSS_W), (_CROSS_W, _CROSS_L), (-_CROSS_W, _CROSS_L),
        (-_CROSS_W, _CROSS_W), (-_CROSS_L, _CROSS_W), (-_CROSS_L, -_CROSS_W), (-_CROSS_W, -_CROSS_W),
        (-_CROSS_W, -_CROSS_L), (_CROSS_W, -_CROSS_L), (_CROSS_W, -_CROSS_W), (_CROSS_L, -_CROSS_W),
    ],  # fmt: skip
}


def _polygon_area(verts: list[tuple[float, float]]) -> float:
    return 0.5 * abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(verts, verts[1:] + verts[:1])))


SHAPE_AREA: dict[str, float] = {"circle": math.pi, **{k: _polygon_area(v) for k, v in SHAPE_POLYGONS.items()}}
SHAPE_EXTENT: dict[str, tuple[float, float, float, float]] = {
    "circle": (-1.0, -1.0, 1.0, 1.0),
    **{
        k: (min(p[0] for p in v), min(p[1] for p in v), max(p[0] for p in v), max(p[1] for p in v))
        for k, v in SHAPE_POLYGONS.items()
    },
}  # (umin, vmin, umax, vmax) for radius 1

_POLY_CACHE: dict[str, tuple[Any, Any]] = {}


def _sorted_polygon(kind: str):
    if kind not in _POLY_CACHE:
        verts = np.asarray(SHAPE_POLYGONS[kind], dtype=np.float64)
        angles = np.arctan2(verts[:, 1], verts[:, 0])
        order = np.argsort(angles)
        _POLY_CACHE[kind] = (verts[order], angles[order])
    return _POLY_CACHE[kind]


def inside_unit(kind: str, u, v):
    """Boolean array: is the point (u, v) (relative to the centre, in radii) inside `kind`?"""
    if kind == "circle":
        return u * u + v * v <= 1.0
    verts, angles = _sorted_polygon(kind)
    n = len(verts)
    theta = np.arctan2(v, u)
    idx = np.searchsorted(angles, theta)
    a = verts[(idx - 1) % n]
    b = verts[idx % n]
    # the edge whose angular span holds the ray through the point; inside = on the centre's side
    cross = (b[..., 0] - a[..., 0]) * (v - a[..., 1]) - (b[..., 1] - a[..., 1]) * (u - a[..., 0])
    return cross >= 0.0


# ---- the scene model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One flat object. x, y: centre in [0, 1] (y down); radius: nominal radius as a
    fraction of the image side; disparity: larger = nearer; depth_order: 0 = farthest;
    velocity: (vx, vy) in image sides per frame (moving scenes only)."""

    kind: str
    color: str
    size: str
    x: float
    y: float
    radius: float
    disparity: float
    depth_order: int = 0
    velocity: tuple[float, float] = (0.0, 0.0)

    @property
    def position(self) -> str:
        return position_word(self.x, self.y)

    @property
    def rgb(self) -> tuple[int, int, int]:
        return COLORS[self.color]

    def extent(self) -> tuple[float, float, float, float]:
        """Bounding box (x0, y0, x1, y1) in [0, 1] coordinates."""
        umin, vmin, umax, vmax = SHAPE_EXTENT[self.kind]
        r = self.radius
        return (self.x + r * umin, self.y + r * vmin, self.x + r * umax, self.y + r * vmax)

    def contains(self, x, y):
        """Boolean array: are the points (x, y) (arrays in [0, 1] coordinates) inside the outline?"""
        return inside_unit(self.kind, (x - self.x) / self.radius, (y - self.y) / self.radius)

    def describe(self, with_size: bool = True, with_position: bool = True) -> str:
        words = []
        if with_size:
            words.append(self.size)
        words += [self.color, self.kind]
        words.insert(0, "an" if words[0][0] in "aeiou" else "a")
        if with_position:
            words += ["at", "the", self.position]
        return " ".join(words)


@dataclass(frozen=True)
class Background:
    """kind: plain | gradient | texture. color2 and angle (radians) only matter for
    gradients, texture_seed only for textures."""

    kind: str = "plain"
    color: str = "gray"
    color2: str = "gray"
    angle: float = 0.0
    texture_seed: int = 0


@dataclass(frozen=True)
class Scene:
    """A background and 1–3 shapes. The order of `shapes` is the caption order; drawing
    order follows depth (`Shape.disparity`)."""

    background: Background
    shapes: tuple[Shape, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        data = asdict(self)
        for shape, out in zip(self.shapes, data["shapes"]):
            out["position"] = shape.position
            out["velocity"] = list(shape.velocity)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Scene":
        shapes = []
        for item in data["shapes"]:
            item = {k: v for k, v in item.items() if k != "position"}
            item["velocity"] = tuple(item.get("velocity", (0.0, 0.0)))
            shapes.append(Shape(**item))
        return cls(Background(**data["background"]), tuple(shapes))

    def back_to_front(self) -> list[int]:
        return sorted(range(len(self.shapes)), key=lambda k: self.shapes[k].disparity)


# ---- sampling -------------------------------------------------------------------------------


def _rng(rng) -> "np.random.Generator":
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _clamp_center(kind: str, radius: float, x: float, y: float) -> tuple[float, float]:
    """Move a centre so the whole shape lies inside the image."""
    umin, vmin, umax, vmax = SHAPE_EXTENT[kind]
    x = min(max(x, -radius * umin), 1.0 - radius * umax)
    y = min(max(y, -radius * vmin), 1.0 - radius * vmax)
    return x, y


def sample_background(rng, kind: str | None = None) -> Background:
    """A random background of the given kind (plain, gradient, texture; None = any)."""
    rng = _rng(rng)
    kind = kind or str(rng.choice(BACKGROUNDS))
    if kind not in BACKGROUNDS:
        raise ValueError(f"unknown background {kind!r}; one of {', '.join(BACKGROUNDS)}")
    names = list(BACKGROUND_COLORS)
    first, second = (str(c) for c in rng.choice(names, 2, replace=False))
    angle = float(rng.uniform(0, 2 * math.pi))
    seed = int(rng.integers(0, 2**31 - 1))
    if kind != "gradient":
        second = first
    return Background(kind=kind, color=first, color2=second, angle=angle, texture_seed=seed)


def _visible_fractions(shapes: list[Shape], size: int = 64) -> list[float]:
    coords = (np.arange(size) + 0.5) / size
    X, Y = np.meshgrid(coords, coords)
    order = sorted(range(len(shapes)), key=lambda k: -shapes[k].disparity)  # front to back
    covered = np.zeros((size, size), dtype=bool)
    fractions = [0.0] * len(shapes)
    for k in order:
        inside = shapes[k].contains(X, Y)
        total = inside.sum()
        fractions[k] = float((inside & ~covered).sum() / total) if total else 0.0
        covered |= inside
    return fractions


def sample_scene(
    rng,
    n_objects: int | None = None,
    *,
    background: str | None = None,
    kinds: tuple[str, ...] | list[str] = SHAPES,
    colors: tuple[str, ...] | list[str] | None = None,
    sizes: tuple[str, ...] | list[str] | None = None,
    positions: tuple[str, ...] | list[str] = POSITIONS,
    max_tries: int = 500,
) -> Scene:
    """A random scene: `n_objects` (1–3; None = 1, 2 or 3 at random) shapes of distinct
    colours in distinct grid cells, each at least 65 % visible, on a random background.

    rng: a numpy Generator or a seed. `kinds`, `colors`, `sizes`, `positions` restrict
    what is drawn (e.g. for an evaluation that covers every colour × shape)."""
    rng = _rng(rng)
    colors = tuple(colors) if colors is not None else tuple(COLORS)
    sizes = tuple(sizes) if sizes is not None else tuple(SIZES)
    for name, given, allowed in (
        ("kinds", kinds, SHAPES),
        ("colors", colors, tuple(COLORS)),
        ("sizes", sizes, tuple(SIZES)),
        ("positions", positions, POSITIONS),
    ):
        unknown = [g for g in given if g not in allowed]
        if unknown or not given:
            raise ValueError(f"{name}: {unknown or 'empty'} not in {', '.join(allowed)}")
    n = int(n_objects) if n_objects else int(rng.integers(1, 4))
    if not 1 <= n <= 3:
        raise ValueError(f"n_objects must be 1, 2 or 3, got {n}")
    if n > len(colors) or n > len(positions):
        raise ValueError(f"cannot place {n} objects with {len(colors)} colours and {len(positions)} positions")
    bg = sample_background(rng, background)
    for _ in range(max_tries):
        cells = [str(c) for c in rng.choice(positions, n, replace=False)]
        cols = [str(c) for c in rng.choice(colors, n, replace=False)]
        chosen_kinds = [str(k) for k in rng.choice(kinds, n)]
        chosen_sizes = [str(s) for s in rng.choice(sizes, n)]
        shapes = []
        for cell, color, kind, size in zip(cells, cols, chosen_kinds, chosen_sizes):
            index = POSITIONS.index(cell)
            cx = CELL_CENTERS[index % 3] + rng.uniform(-POSITION_JITTER, POSITION_JITTER)
            cy = CELL_CENTERS[index // 3] + rng.uniform(-POSITION_JITTER, POSITION_JITTER)
            radius = SIZES[size] * (1 + rng.uniform(-SIZE_JITTER, SIZE_JITTER))
            cx, cy = _clamp_center(kind, radius, cx, cy)
            disparity = SIZE_DISPARITY[size] + rng.uniform(0, DISPARITY_JITTER)
            shapes.append(Shape(kind, color, size, float(cx), float(cy), float(radius), float(disparity)))
        if any(s.position != cell for s, cell in zip(shapes, cells)):
            continue  # clamping pushed a centre out of its cell (cannot happen with the defaults)
        if n > 1 and min(_visible_fractions(shapes)) < MIN_VISIBLE:
            continue
        ranks = sorted(range(n), key=lambda k: shapes[k].disparity)
        shapes = [replace(s, depth_order=ranks.index(k)) for k, s in enumerate(shapes)]
        return Scene(bg, tuple(shapes))
    raise RuntimeError(f"could not place {n} objects without heavy occlusion in {max_tries} tries")


# ---- rendering ------------------------------------------------------------------------------


class Render(NamedTuple):
    """image H×W×3 float32 in [0, 1] (quantised to 8-bit levels); depth H×W float32
    (larger = nearer); ids H×W int16 (index into scene.shapes, -1 = background); masks
    n×H×W bool (visible part of each shape, in scene.shapes order)."""

    image: Any
    depth: Any
    ids: Any
    masks: Any


def render_background(background: Background, size: int):
    """The background alone: H×W×3 float32 in [0, 1]."""
    c1 = np.asarray(BACKGROUND_COLORS[background.color], dtype=np.float32) / 255.0
    if background.kind == "gradient":
        c2 = np.asarray(BACKGROUND_COLORS[background.color2], dtype=np.float32) / 255.0
        coords = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
        X, Y = np.meshgrid(coords, coords)
        ca, sa = math.cos(background.angle), math.sin(background.angle)
        t = 0.5 + (X * ca + Y * sa) / (abs(ca) + abs(sa))
        return c1 + (c2 - c1) * np.clip(t, 0, 1)[..., None]
    image = np.broadcast_to(c1, (size, size, 3)).astype(np.float32)
    if background.kind == "texture":
        rng = np.random.default_rng(background.texture_seed)
        noise = np.zeros((size, size), dtype=np.float32)
        for cells, amplitude in zip((5, 11), TEXTURE_AMPLITUDE):
            grid = rng.standard_normal((cells, cells)).astype(np.float32)
            noise += amplitude * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        image = image + noise[..., None]
    return np.clip(image, 0.0, 1.0)


def _bbox_pixels(shape: Shape, size: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = shape.extent()
    j0 = max(int(math.floor(x0 * size)) - 1, 0)
    i0 = max(int(math.floor(y0 * size)) - 1, 0)
    j1 = min(int(math.ceil(x1 * size)) + 1, size)
    i1 = min(int(math.ceil(y1 * size)) + 1, size)
    return i0, i1, j0, j1


def _coverage(shape: Shape, size: int, box: tuple[int, int, int, int], samples: int):
    """Point-sampled inside mask (pixel centres) and area coverage (samples×samples per pixel) in the box."""
    i0, i1, j0, j1 = box
    offsets = (np.arange(samples) + 0.5) / samples
    xs = ((np.arange(j0, j1)[:, None] + offsets[None, :]).reshape(-1)) / size
    ys = ((np.arange(i0, i1)[:, None] + offsets[None, :]).reshape(-1)) / size
    X, Y = np.meshgrid(xs, ys)
    inside = shape.contains(X, Y).reshape(i1 - i0, samples, j1 - j0, samples)
    if samples % 2 == 1:
        center = inside[:, samples // 2, :, samples // 2]
    else:
        cx = (np.arange(j0, j1) + 0.5) / size
        cy = (np.arange(i0, i1) + 0.5) / size
        CX, CY = np.meshgrid(cx, cy)
        center = shape.contains(CX, CY)
    coverage = inside.mean(axis=(1, 3), dtype=np.float32)
    return center, coverage


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 8 <= size <= 2048:
        raise NodeInputError("size", "image side in pixels out of range", expected="8 <= size <= 2048", got=repr(size))


def render(scene: Scene, size: int = 64, antialias: bool = True, samples: int | None = None) -> Render:
    """Render a scene to an N×N picture with its ground truth (see :class:`Render`).

    antialias: average samples×samples points per pixel (default 5 up to 128 px, 3 above)
    for smooth edges; the masks, ids and depth are point samples at pixel centres either
    way, so they are exact. The image is quantised to 8-bit levels, so saving it as PNG
    and loading it back gives the same tensor."""
    _check_size(size)
    if samples is None:
        samples = (5 if size <= 128 else 3) if antialias else 1
    image = render_background(scene.background, size).copy()
    ids = np.full((size, size), -1, dtype=np.int16)
    depth = np.full((size, size), BACKGROUND_DISPARITY, dtype=np.float32)
    for k in scene.back_to_front():
        shape = scene.shapes[k]
        box = _bbox_pixels(shape, size)
        i0, i1, j0, j1 = box
        if i1 <= i0 or j1 <= j0:
            continue
        center, coverage = _coverage(shape, size, box, samples if antialias else 1)
        color = np.asarray(shape.rgb, dtype=np.float32) / 255.0
        if not antialias:
            coverage = center.astype(np.float32)
        region = image[i0:i1, j0:j1]
        region += (color - region) * coverage[..., None]
        ids[i0:i1, j0:j1][center] = k
        depth[i0:i1, j0:j1][center] = shape.disparity
    image = np.round(np.clip(image, 0, 1) * 255.0).astype(np.float32) / 255.0
    masks = np.stack([ids == k for k in range(len(scene.shapes))]) if scene.shapes else np.zeros((0, size, size), bool)
    return Render(image, depth, ids, masks)


def ids_at(scene: Scene, x, y):
    """Which shape is visible at arbitrary points (arrays in [0, 1] coordinates): index or -1."""
    out = np.full(np.shape(x), -1, dtype=np.int16)
    for k in scene.back_to_front():
        out[scene.shapes[k].contains(x, y)] = k
    return out


def to_tensors(result: Render) -> dict:
    """One render as tensors: image 1×3×H×W, depth 1×1×H×W, masks n×1×H×W (float 0/1)."""
    image = torch.from_numpy(np.ascontiguousarray(result.image.transpose(2, 0, 1))).unsqueeze(0)
    depth = torch.from_numpy(result.depth)[None, None]
    masks = torch.from_numpy(result.masks.astype(np.float32)).unsqueeze(1)
    return {"image": image, "depth": depth, "masks": masks}


# ---- captions -------------------------------------------------------------------------------


def relation(a: Shape, b: Shape) -> str:
    """Where `a` is relative to `b`, on the axis where their centres differ most."""
    dx, dy = a.x - b.x, a.y - b.y
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of"
    return "above" if dy < 0 else "below"


def caption(scene: Scene) -> str:
    """The canonical caption of a scene (see the module docstring for the grammar)."""
    shapes = scene.shapes
    if len(shapes) == 1:
        return shapes[0].describe()
    if len(shapes) == 2:
        a, b = shapes
        return f"{a.describe(False, False)} {relation(a, b)} {b.describe(False, False)}"
    parts = [s.describe(with_size=False) for s in shapes]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def vocabulary() -> list[str]:
    """Every word a caption can contain, sorted (captions are these words, spaces and commas)."""
    words = {"a", "an", "at", "the", "and", "of", "above", "below"}
    for phrase in (*SHAPES, *COLORS, *SIZES, *POSITIONS, *RELATIONS):
        words.update(phrase.split())
    return sorted(words)


def caption_words(text: str) -> list[str]:
    """Split a caption into words and commas, the units a world tokenizer needs."""
    return re.findall(r"[a-z]+|,", text.lower())


def single_object_prompts(with_size: bool = True) -> list[str]:
    """Every single-object caption: colour × shape × position (× size), in a fixed order."""
    out = []
    for color in COLORS:
        for kind in SHAPES:
            for position in POSITIONS:
                for size in SIZES if with_size else (None,):
                    shape = Shape(kind, color, size or "medium", 0.5, 0.5, 0.1, 0.5)
                    text = shape.describe(with_size=size is not None, with_position=False)
                    out.append(f"{text} at the {position}")
    return out


# ---- prompts back into targets --------------------------------------------------------------


@dataclass(frozen=True)
class TargetObject:
    """One object a prompt asks for; size/position None when the prompt does not say."""

    color: str
    kind: str
    size: str | None = None
    position: str | None = None


@dataclass(frozen=True)
class Target:
    """What a prompt asks for: objects, and relations (index a, relation, index b) between them."""

    objects: tuple[TargetObject, ...]
    relations: tuple[tuple[int, str, int], ...] = ()

    def to_dict(self) -> dict:
        return {
            "objects": [asdict(o) for o in self.objects],
            "relations": [list(r) for r in self.relations],
        }


_SYNONYMS = {
    "grey": "gray", "centre": "center", "middle": "center", "big": "large", "tiny": "small",
    "little": "small", "upper": "top", "lower": "bottom", "violet": "purple", "circles": "circle",
    "squares": "square", "triangles": "triangle", "stars": "star", "diamonds": "diamond",
    "crosses": "cross", "plus": "cross",
}  # fmt: skip
_ARTICLES = {"a", "an", "one", "the"}
_PREPOSITIONS = {"at", "in", "on", "near"}


class PromptError(ValueError):
    """A prompt the world grammar cannot read."""


def parse_prompt(text: str) -> Target:
    """Read a caption of the world grammar (or a looser prompt in the same words: "an",
    "centre", "in the middle", "to the left of", "big" are understood) into a Target.
    Raises PromptError naming the first word it could not place."""
    tokens = [_SYNONYMS.get(t, t) for t in re.findall(r"[a-z]+", text.lower())]
    pos = 0
    objects: list[TargetObject] = []
    relations: list[tuple[int, str, int]] = []

    def peek(offset: int = 0) -> str | None:
        return tokens[pos + offset] if pos + offset < len(tokens) else None

    def fail(expected: str) -> None:
        where = " ".join(tokens[:pos]) + " >>" + (f" {peek()}" if peek() else " (end)")
        raise PromptError(f"cannot read the prompt at: {where!r}; expected {expected}")

    def read_position() -> str | None:
        nonlocal pos
        row = col = None
        if peek() in ("top", "bottom"):
            row = peek()
            pos += 1
        if peek() in ("left", "right") and peek(1) != "of":
            col = peek()
            pos += 1
        if row is None and col is None:
            if peek() == "center":
                pos += 1
                return "center"
            return None
        return " ".join(w for w in (row, col) if w)

    def read_relation() -> str | None:
        nonlocal pos
        start = pos
        if peek() == "to" or peek() in _PREPOSITIONS:
            pos += 1
            if peek() == "the":
                pos += 1
        if peek() in ("left", "right") and peek(1) == "of":
            pos += 2
            return f"{tokens[pos - 2]} of"
        if peek() in ("above", "below"):
            pos += 1
            return tokens[pos - 1]
        if peek() in ("under", "beneath"):
            pos += 1
            return "below"
        pos = start
        return None

    def read_object() -> TargetObject:
        nonlocal pos
        if peek() in _ARTICLES:
            pos += 1
        size = None
        if peek() in SIZES:
            size = peek()
            pos += 1
        if peek() not in COLORS:
            fail(f"a colour ({', '.join(COLORS)})")
        color = peek()
        pos += 1
        if peek() not in SHAPES:
            fail(f"a shape ({', '.join(SHAPES)})")
        kind = peek()
        pos += 1
        position = None
        start = pos
        if peek() in _PREPOSITIONS:
            pos += 1
            if peek() == "the":
                pos += 1
            position = read_position()
            if position is None:
                pos = start  # "on the left of ..." is a relation, read by the caller
        return TargetObject(color, kind, size, position)

    if not tokens:
        raise PromptError("the prompt is empty; expected e.g. 'a small red circle at the top left'")
    objects.append(read_object())
    while pos < len(tokens):
        rel = read_relation()
        if rel is not None:
            objects.append(read_object())
            relations.append((len(objects) - 2, rel, len(objects) - 1))
            continue
        if peek() in ("and", "with"):
            pos += 1
            objects.append(read_object())
            continue
        if peek() in _ARTICLES or peek() in SIZES or peek() in COLORS:
            objects.append(read_object())  # a comma-separated list
            continue
        fail("'and', a relation (left of, right of, above, below) or the end")
    if len(objects) > 3:
        raise PromptError(f"the world holds at most 3 objects, the prompt asks for {len(objects)}")
    return Target(tuple(objects), tuple(relations))


def scene_target(scene: Scene) -> Target:
    """The full ground truth of a scene as a Target (every field given)."""
    objects = tuple(TargetObject(s.color, s.kind, s.size, s.position) for s in scene.shapes)
    relations = ((0, relation(scene.shapes[0], scene.shapes[1]), 1),) if len(scene.shapes) == 2 else ()
    return Target(objects, relations)


def satisfies(scene: Scene, target: Target) -> bool:
    """Does the scene show what the target asks for (fields the target leaves open are free)?"""
    if len(scene.shapes) != len(target.objects):
        return False
    for shape, want in zip(scene.shapes, target.objects):
        if (shape.color, shape.kind) != (want.color, want.kind):
            return False
        if want.size and shape.size != want.size:
            return False
        if want.position and shape.position != want.position:
            return False
    for a, rel, b in target.relations:
        if relation(scene.shapes[a], scene.shapes[b]) != rel:
            return False
    return True


def scene_from_target(rng, target: Target, background: str | None = None, max_tries: int = 2000) -> Scene:
    """A random scene that satisfies a target (what is not specified is drawn at random)."""
    rng = _rng(rng)
    colors = [o.color for o in target.objects]
    if len(set(colors)) != len(colors):
        raise PromptError("the world never shows two objects of the same colour in one scene")
    positions = [o.position for o in target.objects if o.position]
    if len(set(positions)) != len(positions):
        raise PromptError("two objects cannot share a position word")
    n = len(target.objects)
    for _ in range(max_tries):
        scene = sample_scene(rng, n, background=background, max_tries=50)
        shapes = []
        for shape, want in zip(scene.shapes, target.objects):
            size = want.size or shape.size
            radius = shape.radius / SIZES[shape.size] * SIZES[size]
            x, y = shape.x, shape.y
            if want.position:
                index = POSITIONS.index(want.position)
                x = CELL_CENTERS[index % 3] + rng.uniform(-POSITION_JITTER, POSITION_JITTER)
                y = CELL_CENTERS[index // 3] + rng.uniform(-POSITION_JITTER, POSITION_JITTER)
            x, y = _clamp_center(want.kind, radius, x, y)
            disparity = SIZE_DISPARITY[size] + rng.uniform(0, DISPARITY_JITTER)
            shapes.append(replace(shape, kind=want.kind, color=want.color, size=size, x=float(x), y=float(y),
                                  radius=float(radius), disparity=float(disparity)))  # fmt: skip
        ranks = sorted(range(n), key=lambda k: shapes[k].disparity)
        shapes = [replace(s, depth_order=ranks.index(k)) for k, s in enumerate(shapes)]
        candidate = Scene(scene.background, tuple(shapes))
        if len({s.position for s in shapes}) != n:
            continue
        if n > 1 and min(_visible_fractions(shapes)) < MIN_VISIBLE:
            continue
        if satisfies(candidate, target):
            return candidate
    raise PromptError("could not lay out a scene that satisfies the prompt (contradictory relations?)")


# ---- motion ---------------------------------------------------------------------------------


def _bounce(p: float, lo: float, hi: float) -> float:
    span = hi - lo
    if span <= 0:
        return lo
    u = (p - lo) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


def scene_at(scene: Scene, t: float) -> Scene:
    """The scene at frame t: every shape moved by t × velocity, bouncing off the border."""
    shapes = []
    for s in scene.shapes:
        umin, vmin, umax, vmax = SHAPE_EXTENT[s.kind]
        x = _bounce(s.x + t * s.velocity[0], -s.radius * umin, 1 - s.radius * umax)
        y = _bounce(s.y + t * s.velocity[1], -s.radius * vmin, 1 - s.radius * vmax)
        shapes.append(replace(s, x=x, y=y))
    return Scene(scene.background, tuple(shapes))


def sample_moving_scene(rng, n_objects: int | None = None, speed: float = 1.0, **kwargs) -> Scene:
    """A random scene whose shapes have velocities: 0.008–0.03 image sides per frame
    (0.5–2 px per frame at 64 px) times `speed`, in a random direction."""
    rng = _rng(rng)
    scene = sample_scene(rng, n_objects, **kwargs)
    shapes = []
    for s in scene.shapes:
        magnitude = rng.uniform(0.008, 0.03) * speed
        angle = rng.uniform(0, 2 * math.pi)
        shapes.append(replace(s, velocity=(float(magnitude * math.cos(angle)), float(magnitude * math.sin(angle)))))
    return Scene(scene.background, tuple(shapes))


class MotionRender(NamedTuple):
    """frames T×H×W×3, depths T×H×W, ids T×H×W, flows (T-1)×H×W×2 backward (dx, dy) pixels,
    valid (T-1)×H×W bool (the flow's source shows the same surface), scenes: the T scenes."""

    frames: Any
    depths: Any
    ids: Any
    flows: Any
    valid: Any
    scenes: list


def flow_between(before: Scene, after: Scene, ids_after, size: int):
    """Exact backward flow from `after` to `before` (same shapes, moved) and its valid mask."""
    flow = np.zeros((size, size, 2), dtype=np.float32)
    for k, (s0, s1) in enumerate(zip(before.shapes, after.shapes)):
        hit = ids_after == k
        flow[hit, 0] = (s0.x - s1.x) * size
        flow[hit, 1] = (s0.y - s1.y) * size
    coords = np.arange(size, dtype=np.float64)
    J, I = np.meshgrid(coords, coords)
    source_x = (J + 0.5 + flow[..., 0]) / size
    source_y = (I + 0.5 + flow[..., 1]) / size
    valid = ids_at(before, source_x, source_y) == ids_after
    return flow, valid


def render_motion(scene: Scene, frames: int, size: int = 64, antialias: bool = True) -> MotionRender:
    """Render `frames` frames of a moving scene with depth, ids and the exact flows between them."""
    scenes = [scene_at(scene, t) for t in range(frames)]
    renders = [render(s, size, antialias) for s in scenes]
    flows, valid = [], []
    for t in range(frames - 1):
        f, v = flow_between(scenes[t], scenes[t + 1], renders[t + 1].ids, size)
        flows.append(f)
        valid.append(v)
    empty = (0, size, size)
    return MotionRender(
        np.stack([r.image for r in renders]),
        np.stack([r.depth for r in renders]),
        np.stack([r.ids for r in renders]),
        np.stack(flows) if flows else np.zeros((*empty, 2), np.float32),
        np.stack(valid) if valid else np.zeros(empty, bool),
        scenes,
    )


def warp(image, flow):
    """Backward warp: out(p) = image(p + flow(p)), bilinear, border pixels repeated.
    image B×C×H×W, flow B×2×H×W in pixels (pixel centres at integers, as nodes/flow.py)."""
    _, _, height, width = image.shape
    ys = torch.arange(height, dtype=image.dtype)
    xs = torch.arange(width, dtype=image.dtype)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    gx = 2.0 * (x + flow[:, 0]) / max(width - 1, 1) - 1.0
    gy = 2.0 * (y + flow[:, 1]) / max(height - 1, 1) - 1.0
    grid = torch.stack((gx, gy), dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


# ---- datasets -------------------------------------------------------------------------------

MAX_OBJECTS = 3


def render_batch(scenes: list[Scene], size: int = 64, antialias: bool = True) -> dict:
    """Render scenes into one batch: image B×3×H×W, depth B×1×H×W, masks B×3×H×W (object k
    in channel k, zeros for absent objects), ids B×H×W (long, -1 = background),
    n_objects B (long), caption (list of str), scene (list of Scene)."""
    _check_size(size)
    renders = [render(s, size, antialias) for s in scenes]
    b = len(scenes)
    masks = np.zeros((b, MAX_OBJECTS, size, size), dtype=np.float32)
    for i, r in enumerate(renders):
        masks[i, : len(r.masks)] = r.masks
    images = np.stack([r.image for r in renders]).transpose(0, 3, 1, 2)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(images)),
        "depth": torch.from_numpy(np.stack([r.depth for r in renders]))[:, None],
        "masks": torch.from_numpy(masks),
        "ids": torch.from_numpy(np.stack([r.ids for r in renders]).astype(np.int64)),
        "n_objects": torch.tensor([len(s.shapes) for s in scenes], dtype=torch.long),
        "caption": [caption(s) for s in scenes],
        "scene": list(scenes),
    }


def batch_scenes(seed: int, index: int, batch_size: int, n_objects: int | None = None, **kwargs) -> list[Scene]:
    """The scenes of batch `index` of the stream for `seed` (each batch has its own generator,
    so any batch can be made without the ones before it: resuming training is exact)."""
    rng = np.random.default_rng([int(seed) % 2**64, int(index)])
    return [sample_scene(rng, n_objects, **kwargs) for _ in range(batch_size)]


def iter_batches(
    seed: int = 0,
    batch_size: int = 64,
    size: int = 64,
    n_objects: int | None = None,
    start: int = 0,
    antialias: bool = True,
    **kwargs,
) -> Iterator[dict]:
    """Batches of world scenes forever (see render_batch for the keys; each dict also has
    "index"). Deterministic per seed; `start` resumes at a given batch index. Extra keyword
    arguments restrict the sampler (background=, kinds=, colors=, sizes=, positions=)."""
    _check_size(size)
    if batch_size < 1:
        raise NodeInputError("batch_size", "need at least one scene per batch", expected=">= 1", got=repr(batch_size))
    index = start
    while True:
        batch = render_batch(batch_scenes(seed, index, batch_size, n_objects, **kwargs), size, antialias)
        batch["index"] = index
        yield batch
        index += 1


# ---- reading pictures back: the evaluator ---------------------------------------------------


@dataclass
class Detection:
    """One object found in a picture."""

    color: str
    kind: str
    size: str
    position: str
    x: float  # fitted centre, [0, 1]
    y: float
    radius: float  # fitted nominal radius, fraction of the side
    area: float  # fraction of the picture covered by the colour
    fit: float  # IoU of the fitted template (of `kind`) with the colour's pixels (1 = perfect)
    scores: dict = field(default_factory=dict)  # per kind: template IoU (analytic) or probability (trained)
    reader: str = "analytic"  # which reader named the shape

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


_STATIC_BG_REFS: list = []


def _background_references(pixels_border) -> "np.ndarray":
    """Background colours to compare pixels with: the palette, points on the gradients
    between palette colours, and the picture's own border colours (unless they look like a
    shape colour)."""
    if not _STATIC_BG_REFS:
        names = [np.asarray(c, np.float32) for c in BACKGROUND_COLORS.values()]
        refs = list(names)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                refs += [(1 - t) * a + t * b for t in (0.2, 0.35, 0.5, 0.65, 0.8)]
        _STATIC_BG_REFS.append(np.stack(refs))
    shape_colors = np.asarray(list(COLORS.values()), np.float32)
    own = [c for c in pixels_border if np.min(np.linalg.norm(shape_colors - c, axis=1)) > 45]
    return np.concatenate([_STATIC_BG_REFS[0], np.asarray(own, np.float32).reshape(-1, 3)])


def _sq_distances(flat, refs):
    """Squared distances N×K between pixels N×3 and references K×3 (float32, via a matmul)."""
    return (flat * flat).sum(1, keepdims=True) - 2.0 * flat @ refs.T + (refs * refs).sum(1)[None]


def label_colors(rgb) -> "np.ndarray":
    """Per-pixel colour labels of an H×W×3 uint8 picture: index into COLORS, -1 = background.

    1. Nearest reference: each pixel goes to the nearest of the 8 shape colours or of the
       background references (palette, gradients between palette colours, the picture's
       own border colours); that finds the background.
    2. Blend model: the background behind every pixel is estimated from nearby background
       pixels (normalised Gaussian smoothing, so gradients and textures are followed), and
       each pixel is explained as background + alpha · (colour - background). A pixel
       takes the colour that explains it best if alpha >= 1/2: the outline of a blurred
       shape is found where it was before the blur, and a rim that merely mixes a shape
       with the background is not mistaken for a third colour (red on sand is not orange)."""
    img = rgb.astype(np.float32)
    h, w, _ = img.shape
    band = max(1, h // 32)
    border = [np.median(strip.reshape(-1, 3), axis=0) for strip in (img[:band], img[-band:], img[:, :band], img[:, -band:])]
    bg_refs = _background_references(border).astype(np.float32)
    shape_colors = np.asarray(list(COLORS.values()), np.float32)
    flat = img.reshape(-1, 3)
    d_shape = _sq_distances(flat, shape_colors)
    d_bg = _sq_distances(flat, bg_refs).min(1)
    best = d_shape.argmin(1)
    best_d = d_shape[np.arange(len(flat)), best]
    labels = np.where((best_d < d_bg) & (best_d < 110.0**2), best, -1).reshape(h, w)
    background = labels < 0
    if background.sum() < 0.2 * h * w:
        return labels  # too little background to model: keep the nearest-colour labels
    sigma = max(2.0, 0.08 * max(h, w))
    weight = cv2.GaussianBlur(background.astype(np.float32), (0, 0), sigma)
    local = cv2.GaussianBlur(img * background[..., None], (0, 0), sigma) / np.maximum(weight, 1e-4)[..., None]
    fallback = np.median(img[background], axis=0)
    local = np.where((weight > 1e-3)[..., None], local, fallback)
    offset = img - local
    best_res = np.full((h, w), np.inf, np.float32)
    best_alpha = np.zeros((h, w), np.float32)
    best_label = np.full((h, w), -1, np.int64)
    for index, color in enumerate(shape_colors):
        direction = color - local
        alpha = (offset * direction).sum(-1) / np.maximum((direction * direction).sum(-1), 1.0)
        residual = np.linalg.norm(offset - alpha[..., None] * direction, axis=-1)
        # only a plausible mixing weight counts; compare explanations by their residual
        better = (alpha > 0.3) & (alpha < 1.6) & (residual < best_res)
        best_res = np.where(better, residual, best_res)
        best_alpha = np.where(better, alpha, best_alpha)
        best_label = np.where(better, index, best_label)
    blended = np.where((best_alpha >= 0.5) & (best_res < 60.0), best_label, -1)
    return blended


def _fit_kind(kind: str, mask, care, X, Y, stats, refine: bool = True) -> tuple[float, float, float, float]:
    """Best (IoU, cx, cy, r) of one kind against a mask (only where `care`), in [0, 1]
    coordinates: start from the box and from the moments of the mask, then (refine) move
    the centre by half/quarter pixels and the radius by 4 %/2 % while the IoU improves."""
    left, top, right, bottom, area, mx, my = stats
    umin, vmin, umax, vmax = SHAPE_EXTENT[kind]
    candidates = []
    r_box = 0.5 * ((right - left) / (umax - umin) + (bottom - top) / (vmax - vmin))
    if r_box > 0:
        candidates.append(((left + right) / 2 - r_box * (umin + umax) / 2, (top + bottom) / 2 - r_box * (vmin + vmax) / 2, r_box))
    candidates.append((mx, my, math.sqrt(area / SHAPE_AREA[kind])))
    m = mask[care]
    Xc, Yc = X[care], Y[care]
    total = m.sum()

    def iou(cx: float, cy: float, r: float) -> float:
        if r <= 0:
            return 0.0
        t = inside_unit(kind, (Xc - cx) / r, (Yc - cy) / r)
        inter = np.count_nonzero(t & m)
        return inter / (np.count_nonzero(t) + total - inter + 1e-9)

    best = max(((iou(*c), *c) for c in candidates), key=lambda b: b[0])
    if not refine:
        return best
    step = 0.5 * (X[0, 1] - X[0, 0]) if X.shape[1] > 1 else 0.01  # half a pixel
    for scale in (1.0, 0.5):
        improved = True
        while improved:
            improved = False
            score, cx, cy, r = best
            for dx, dy, dr in ((step * scale, 0, 0), (-step * scale, 0, 0), (0, step * scale, 0), (0, -step * scale, 0),
                               (0, 0, 0.04 * scale * r), (0, 0, -0.04 * scale * r)):  # fmt: skip
                trial = (iou(cx + dx, cy + dy, r + dr), cx + dx, cy + dy, r + dr)
                if trial[0] > best[0] + 1e-6:
                    best, improved = trial, True
    return best


def find_objects(rgb, min_area: float = 0.003) -> list[tuple[str, "np.ndarray"]]:
    """The objects of an H×W×3 uint8 picture as (colour name, H×W bool mask): the pixels of
    each colour (label_colors) make one object. Colours covering less than `min_area` of the
    picture (after trimming a 1-pixel rim) are dropped, and so are thin blend rims around
    other objects. Both readers start from this; they differ only in how they name the shape."""
    h, w, _ = rgb.shape
    labels = label_colors(rgb)
    kernel = np.ones((3, 3), np.uint8)
    found = []
    names = list(COLORS)
    for index in np.unique(labels):
        if index < 0:
            continue
        mask = labels == index
        core = cv2.erode(mask.astype(np.uint8), kernel) if min(h, w) >= 48 else mask.astype(np.uint8)
        if core.sum() < min_area * h * w:
            continue
        # keep the components that survive the trimming (drops thin blend rims around other objects)
        n, comp = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        keep = np.zeros_like(mask)
        for c in range(1, n):
            part = comp == c
            if core[part].sum() >= 0.25 * min_area * h * w:
                keep |= part
        if keep.sum() == 0:
            continue
        found.append((names[index], keep))
    return found


def others_mask(found: list[tuple[str, "np.ndarray"]], index: int) -> "np.ndarray":
    """The pixels of every other found object, grown by one pixel, minus this object's own:
    where this object may be hidden behind a neighbour."""
    mask = found[index][1]
    others = np.zeros_like(mask)
    for k, (_, other) in enumerate(found):
        if k != index:
            others |= other
    return cv2.dilate(others.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~mask


class _Window(NamedTuple):
    mask: Any
    care: Any
    X: Any
    Y: Any
    stats: tuple


def _fit_window(mask, others) -> _Window:
    """The part of the picture an object's templates are fitted in: the colour's box grown so
    templates hidden under neighbours fit, the pixels to ignore (neighbours), and the box and
    moments the fits start from."""
    h, w = mask.shape
    X, Y = np.meshgrid((np.arange(w) + 0.5) / w, (np.arange(h) + 0.5) / h)
    ys, xs = np.nonzero(mask)
    i0, i1 = max(ys.min() - 3, 0), min(ys.max() + 4, h)
    j0, j1 = max(xs.min() - 3, 0), min(xs.max() + 4, w)
    grow = max(3, int(0.1 * max(h, w)))
    wi0, wi1 = max(i0 - grow, 0), min(i1 + grow, h)
    wj0, wj1 = max(j0 - grow, 0), min(j1 + grow, w)
    stats = (
        xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h,
        mask.sum() / (h * w), (xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h,
    )  # fmt: skip
    return _Window(mask[wi0:wi1, wj0:wj1], ~others[wi0:wi1, wj0:wj1], X[wi0:wi1, wj0:wj1], Y[wi0:wi1, wj0:wj1], stats)


def fit_templates(mask, others, kinds=SHAPES) -> dict[str, tuple[float, float, float, float]]:
    """(IoU, cx, cy, r) of the best-fitting outline of each kind: a coarse fit of every kind,
    then the three best refined (the analytic reader takes the best; the trained reader
    fits only the kind it read, for the object's centre and radius)."""
    win = _fit_window(mask, others)
    fits = {kind: _fit_kind(kind, win.mask, win.care, win.X, win.Y, win.stats, refine=False) for kind in kinds}
    for kind in sorted(fits, key=lambda k: -fits[k][0])[:3]:  # refine the three best guesses
        fits[kind] = _fit_kind(kind, win.mask, win.care, win.X, win.Y, win.stats, refine=True)
    return fits


READERS: tuple[str, ...] = ("trained", "analytic")
UNCLEAR = "unclear"  # the trained reader's answer when no shape is likely enough


def _check_reader(reader: str) -> None:
    if reader not in READERS:
        raise NodeInputError("reader", "unknown shape reader", expected=" or ".join(READERS), got=repr(reader))


def _detection(color: str, kind: str, fit: tuple, mask, scores: dict, reader: str) -> Detection:
    score, cx, cy, r = fit
    h, w = mask.shape
    return Detection(
        color=color, kind=kind, size=size_word(r), position=position_word(cx, cy), x=float(cx), y=float(cy),
        radius=float(r), area=float(mask.sum() / (h * w)), fit=float(score),
        scores={k: round(float(v), 4) for k, v in scores.items()}, reader=reader,
    )  # fmt: skip


def analyze_arrays(pictures, min_area: float = 0.003, reader: str = "trained", model=None) -> list[list[Detection]]:
    """Find and read the objects of H×W×3 uint8 pictures of the world (see the module
    docstring, "Evaluation"). reader "analytic": the outline template that overlaps the
    colour's pixels best names the shape; "trained": the small network of
    nodes/world_reader.py names it (`model`: a loaded reader; None = the shipped one), or
    says "unclear" (world_reader.read_objects), and the template of the kind it read gives
    the centre and radius. Per picture, detections sorted by area, largest first."""
    _check_reader(reader)
    found = [find_objects(rgb, min_area) for rgb in pictures]
    others = [[others_mask(objects, k) for k in range(len(objects))] for objects in found]
    if reader == "trained":
        from . import world_reader

        readings = world_reader.read_objects(pictures, found, others, model)
    out = []
    for p, objects in enumerate(found):
        detections = []
        for k, (color, mask) in enumerate(objects):
            if reader == "analytic":
                fits = fit_templates(mask, others[p][k])
                kind = max(fits, key=lambda name: fits[name][0])
                detections.append(_detection(color, kind, fits[kind], mask, {n: f[0] for n, f in fits.items()}, reader))
            else:
                kind, probabilities, fit = readings[p][k]
                detections.append(_detection(color, kind, fit, mask, probabilities, reader))
        detections.sort(key=lambda d: -d.area)
        out.append(detections)
    return out


def analyze_array(rgb, min_area: float = 0.003, reader: str = "trained", model=None) -> list[Detection]:
    """Find and read the objects of one H×W×3 uint8 picture (see analyze_arrays)."""
    return analyze_arrays([rgb], min_area, reader, model)[0]


def analyze(image, reader: str = "trained", model=None) -> list[list[Detection]]:
    """Detections for every picture of an IMAGE batch (B×3×H×W in [0, 1]); see analyze_arrays."""
    from .image import image_to_uint8

    _check_image(image, "image")
    _check_reader(reader)
    return analyze_arrays(list(image_to_uint8(image)), reader=reader, model=model)


FIELDS = ("color", "shape", "size", "position", "relation", "count")


def score_detections(target: Target, detections: list[Detection]) -> dict:
    """Compare what was asked for with what was found. Each target object is matched to
    the detection of its colour (else to an unmatched detection of its shape); fields
    are 1/0 per object (None when the prompt does not specify that field)."""
    remaining = list(detections)
    matches: list[Detection | None] = []
    for want in target.objects:
        hit = next((d for d in remaining if d.color == want.color), None)
        if hit is None:
            hit = next((d for d in remaining if d.kind == want.kind), None)
        if hit is not None:
            remaining.remove(hit)
        matches.append(hit)
    per_object = []
    for want, hit in zip(target.objects, matches):
        fields = {
            "color": float(hit is not None and hit.color == want.color),
            "shape": float(hit is not None and hit.kind == want.kind),
            "size": None if want.size is None else float(hit is not None and hit.size == want.size),
            "position": None if want.position is None else float(hit is not None and hit.position == want.position),
        }
        per_object.append(fields)
    relation_ok = []
    for a, rel, b in target.relations:
        da, db = matches[a], matches[b]
        if da is None or db is None:
            relation_ok.append(0.0)
            continue
        dx, dy = da.x - db.x, da.y - db.y
        ok = {"left of": dx < 0, "right of": dx > 0, "above": dy < 0, "below": dy > 0}[rel]
        relation_ok.append(float(ok))
    summary: dict[str, float | None] = {}
    for name in ("color", "shape", "size", "position"):
        values = [o[name] for o in per_object if o[name] is not None]
        summary[name] = sum(values) / len(values) if values else None
    summary["relation"] = sum(relation_ok) / len(relation_ok) if relation_ok else None
    summary["count"] = float(len(detections) == len(target.objects))
    both = [o["color"] * o["shape"] for o in per_object]
    summary["color_and_shape"] = sum(both) / len(both)
    return {
        "fields": summary,
        "objects": per_object,
        "detected": [d.to_dict() for d in detections],
        "all_correct": all(v == 1.0 for v in summary.values() if v is not None),
    }


def evaluate(image, prompt: str | Target, reader: str = "trained", model=None) -> dict:
    """Score every picture of an IMAGE batch against one prompt. Returns a JSON-friendly
    report: "accuracy" (mean per field over the batch), "score" (mean of the fields the
    prompt specifies), "all_correct" (fraction of pictures with every field right), and
    "images" (per-picture detail). reader: "trained" (default) or "analytic", see analyze_arrays."""
    target = prompt if isinstance(prompt, Target) else parse_prompt(prompt)
    per_image = [score_detections(target, d) for d in analyze(image, reader, model)]
    accuracy: dict[str, float | None] = {}
    for name in (*FIELDS, "color_and_shape"):
        values = [p["fields"][name] for p in per_image if p["fields"][name] is not None]
        accuracy[name] = sum(values) / len(values) if values else None
    used = [v for k, v in accuracy.items() if v is not None and k != "color_and_shape"]
    return {
        "prompt": prompt if isinstance(prompt, str) else None,
        "reader": reader,
        "target": target.to_dict(),
        "accuracy": accuracy,
        "score": sum(used) / len(used) if used else 0.0,
        "all_correct": sum(p["all_correct"] for p in per_image) / max(len(per_image), 1),
        "images": per_image,
    }


# ---- nodes ----------------------------------------------------------------------------------

SizeInput = Annotated[int, Range(16, 1024, step=8), Doc("image side in pixels (64 = MiniSD's native size)")]
BackgroundChoice = Literal["random", "plain", "gradient", "texture"]
SEED_DOC = Doc("same seed, same scene")
N_DOC = Doc("number of objects, 1–3; 0 = 1, 2 or 3 at random")


def _check_image(image, name: str) -> None:
    if not hasattr(image, "dim") or image.dim() != 4 or image.shape[1] != 3:
        got = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise NodeInputError(name, "needs an IMAGE batch", expected="tensor B×3×H×W in [0, 1]", got=str(got))


def _check_node_inputs(n_objects: int | None = None, background: str | None = None, size: int | None = None) -> None:
    if n_objects is not None and not 0 <= n_objects <= 3:
        raise NodeInputError("n_objects", "the world holds 1 to 3 objects", expected="0 (random) .. 3", got=repr(n_objects))
    if background is not None and background not in ("random", *BACKGROUNDS):
        raise NodeInputError("background", "unknown background", expected="random, plain, gradient or texture", got=repr(background))
    if size is not None:
        _check_size(size)


class SceneOutputs(NamedTuple):
    image: Image
    caption: str
    depth: Depth
    masks: Mask
    scene: dict


@node(category="world", name="WorldScene")
def world_scene(
    seed: Annotated[Seed, SEED_DOC] = 0,
    n_objects: Annotated[int, Range(0, 3), N_DOC] = 1,
    size: SizeInput = 64,
    background: Annotated[BackgroundChoice, Doc("plain colour, gradient, light texture or any")] = "random",
    antialias: Annotated[bool, Doc("smooth edges (masks and depth stay exact either way)")] = True,
) -> SceneOutputs:
    """A random scene of the synthetic world with its ground truth.

    image: 1×3×H×W; caption: what the scene shows in the world grammar ("a small red
    circle at the top left"); depth: 1×1×H×W, larger = nearer (background 0); masks: one
    visible-area mask per object, n×1×H×W in caption order; scene: every field as JSON
    (kind, colour, size, centre, radius, disparity, depth order, background)."""
    _check_node_inputs(n_objects, background, size)
    scene = sample_scene(np.random.default_rng(int(seed)), n_objects or None, background=None if background == "random" else background)
    t = to_tensors(render(scene, size, antialias))
    return SceneOutputs(t["image"], caption(scene), t["depth"], t["masks"], scene.to_dict())


@node(category="world", name="WorldSceneFromPrompt")
def world_scene_from_prompt(
    prompt: Annotated[Prompt, Doc("a caption in the world grammar, e.g. 'a blue square left of a yellow triangle'")] = "a small red circle at the top left",
    seed: Annotated[Seed, SEED_DOC] = 0,
    size: SizeInput = 64,
    background: Annotated[BackgroundChoice, Doc("plain colour, gradient, light texture or any")] = "random",
) -> SceneOutputs:
    """The ground-truth picture for a prompt: a scene that satisfies it (what the prompt
    leaves open — size, exact place, background — is drawn from the seed). The caption
    output is the scene's canonical caption. Use it as the reference a generated picture
    should look like."""
    _check_node_inputs(None, background, size)
    try:
        target = parse_prompt(prompt)
        scene = scene_from_target(np.random.default_rng(int(seed)), target, None if background == "random" else background)
    except PromptError as exc:
        raise NodeInputError("prompt", str(exc), expected="a caption of the world grammar", got=repr(prompt)) from None
    t = to_tensors(render(scene, size))
    return SceneOutputs(t["image"], caption(scene), t["depth"], t["masks"], scene.to_dict())


@node(category="world", name="WorldParsePrompt", output="target")
def world_parse_prompt(prompt: Annotated[Prompt, Doc("a caption in the world grammar")] = "a small red circle at the top left") -> dict:
    """What a prompt asks for, as JSON: objects (color, kind, size, position; null when
    not said) and relations [a, "left of", b]."""
    try:
        return parse_prompt(prompt).to_dict()
    except PromptError as exc:
        raise NodeInputError("prompt", str(exc), expected="a caption of the world grammar", got=repr(prompt)) from None


class MovingOutputs(NamedTuple):
    frames: Frames
    flows: Flow
    depths: Depth
    valid: Mask
    caption: str
    captions: list


@node(category="world", name="WorldMovingScene")
def world_moving_scene(
    seed: Annotated[Seed, SEED_DOC] = 0,
    frames: Annotated[int, Range(2, 240), Doc("number of frames")] = 16,
    size: SizeInput = 64,
    n_objects: Annotated[int, Range(0, 3), N_DOC] = 2,
    speed: Annotated[float, Range(0.0, 5.0, step=0.1), Doc("1 = 0.5–2 px per frame at 64 px")] = 1.0,
    background: Annotated[BackgroundChoice, Doc("plain colour, gradient, light texture or any")] = "random",
) -> MovingOutputs:
    """Shapes gliding over a static background (bouncing off the border) with the true motion.

    frames: the pictures (FRAMES, one 1×3×H×W tensor per frame); flows: (T-1)×2×H×W
    backward flow, flows[t](p) = where pixel p of frame t+1 was in frame t, minus p, so
    warping frame t with flows[t] gives frame t+1; depths: T×1×H×W; valid: (T-1)×1×H×W,
    1 where the flow's source is visible in frame t (0 where an object uncovered the
    background or another object); caption: of the first frame; captions: one per frame."""
    _check_node_inputs(n_objects, background, size)
    if isinstance(frames, bool) or not isinstance(frames, int) or not 2 <= frames <= 240:
        raise NodeInputError("frames", "need at least two frames for a motion", expected="2 .. 240", got=repr(frames))
    if not 0 <= speed <= 5:
        raise NodeInputError("speed", "speed factor out of range", expected="0 .. 5", got=repr(speed))
    scene = sample_moving_scene(
        np.random.default_rng(int(seed)), n_objects or None, speed, background=None if background == "random" else background
    )
    motion = render_motion(scene, frames, size)
    images = torch.from_numpy(np.ascontiguousarray(motion.frames.transpose(0, 3, 1, 2)))
    stream = FrameStream(lambda: (images[t : t + 1] for t in range(frames)), count=frames, width=size, height=size)
    flows = torch.from_numpy(np.ascontiguousarray(motion.flows.transpose(0, 3, 1, 2)))
    depths = torch.from_numpy(motion.depths)[:, None]
    valid = torch.from_numpy(motion.valid.astype(np.float32))[:, None]
    captions = [caption(s) for s in motion.scenes]
    return MovingOutputs(stream, flows, depths, valid, captions[0], captions)


class DatasetOutputs(NamedTuple):
    image: Image
    captions: list
    depth: Depth
    masks: Mask


@node(category="world", name="WorldDataset")
def world_dataset(
    seed: Annotated[Seed, SEED_DOC] = 0,
    batch_size: Annotated[int, Range(1, 1024)] = 16,
    index: Annotated[int, Range(0, None), Doc("which batch of the seed's endless stream")] = 0,
    size: SizeInput = 64,
    n_objects: Annotated[int, Range(0, 3), N_DOC] = 0,
) -> DatasetOutputs:
    """One batch of the world's training stream (batch `index` of seed `seed`; the same
    batches iter_batches yields to training code).

    image B×3×H×W, captions (list of B strings), depth B×1×H×W, masks B×3×H×W (object k of
    each scene in channel k, zeros where a scene has fewer objects)."""
    _check_node_inputs(n_objects, None, size)
    if batch_size < 1:
        raise NodeInputError("batch_size", "need at least one scene per batch", expected=">= 1", got=repr(batch_size))
    if index < 0:
        raise NodeInputError("index", "batch index cannot be negative", expected=">= 0", got=repr(index))
    batch = render_batch(batch_scenes(seed, index, batch_size, n_objects or None), size)
    return DatasetOutputs(batch["image"], batch["caption"], batch["depth"], batch["masks"])


class EvaluateOutputs(NamedTuple):
    score: float
    color_and_shape: float
    color: float
    position: float
    report: dict


@node(category="world", name="WorldEvaluate")
def world_evaluate(
    image: Annotated[Image, Doc("pictures to check (e.g. MiniSD's output)")],
    prompt: Annotated[Prompt, Doc("what the pictures were asked to show, in the world grammar")] = "a small red circle at the top left",
    reader: Annotated[Literal["trained", "analytic"], Doc("who names each object's shape: the small trained network (may answer 'unclear') or the outline-template fit")] = "trained",
    reader_model: Annotated[ModelFile, Doc("the trained reader's folder under the model roots (TrainWorldReader writes it; the shipped one by default)")] = "world-reader",
    ctx: RunContext = None,
) -> EvaluateOutputs:
    """Did the picture follow the prompt? Reads each picture like a world scene (colour
    regions, then the shape of each region) and compares with what the prompt asks for.

    The shape of each region is named by `reader`: "trained", a small network trained on
    world renders (nodes/world_reader.py), which answers "unclear" when it cannot tell,
    or "analytic", the outline template that overlaps the region best.

    score: mean accuracy over the fields the prompt specifies (colour, shape, size,
    position, relation, object count); color_and_shape: fraction of asked objects whose
    colour and shape are both right; color, position: fraction of asked objects with the
    right colour, in the right grid cell (0 when the prompt names no position); report: per-field accuracy, what was detected in each
    picture. Both readers are exact on clean 64 px world renders; figures for blurred and
    noisy pictures are in the module docstring."""
    _check_image(image, "image")
    _check_reader(reader)
    try:
        target = parse_prompt(prompt)
    except PromptError as exc:
        raise NodeInputError("prompt", str(exc), expected="a caption of the world grammar", got=repr(prompt)) from None
    model = _reader_model(reader_model, ctx) if reader == "trained" else None
    report = evaluate(image, target, reader, model)
    report["prompt"] = prompt
    accuracy = report["accuracy"]
    return EvaluateOutputs(float(report["score"]), float(accuracy["color_and_shape"]), float(accuracy["color"] or 0.0),
                           float(accuracy["position"] or 0.0), report)


def _reader_model(name: str, ctx: RunContext | None):
    """The trained reader named by WorldEvaluate's reader_model: looked up under the run's
    model roots, then among the packaged models (so the default works in any run)."""
    from nodegraph.config import builtin_model_roots

    from . import world_reader

    hint = "train one with graphs/train/world_reader.json, or use the shipped 'world-reader'"
    try:
        try:
            folder = ctx.roots.resolve_read(name, "model") if ctx is not None else None
        except FileNotFoundError:
            folder = None
        if folder is None:
            folder = builtin_model_roots()[0] / name
            if not folder.exists():
                raise FileNotFoundError(f"{name!r} is neither under the model roots nor among the packaged models")
        return world_reader.cached_reader(folder)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise NodeInputError("reader_model", f"cannot load the world reader {name!r}: {str(exc).splitlines()[0]}; {hint}",
                             expected="a folder written by TrainWorldReader", got=repr(name)) from None
