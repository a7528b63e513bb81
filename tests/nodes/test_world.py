"""The synthetic world: determinism, ground truth consistent with the picture, captions,
exact flow, the evaluator, and clear errors. Real renders throughout, no mocks."""

from __future__ import annotations

import itertools
import re
import time

import numpy as np
import pytest
import torch

from nodegraph.errors import NodeInputError
from nodegraph.frames import FrameStream
from nodegraph.nodes import world as W


def _uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def scenes():
    rng = np.random.default_rng(1234)
    return [W.sample_scene(rng) for _ in range(60)]


# ---- determinism ----------------------------------------------------------------------------


def test_same_seed_same_tensors_different_seed_differs():
    a = W.world_scene(seed=7, n_objects=0)
    b = W.world_scene(seed=7, n_objects=0)
    c = W.world_scene(seed=8, n_objects=0)
    for x, y in zip(a[:4:2], b[:4:2]):
        assert torch.equal(x, y)
    assert torch.equal(a.masks, b.masks) and a.caption == b.caption and a.scene == b.scene
    assert not torch.equal(a.image, c.image)


def test_iter_batches_deterministic_and_resumable():
    first = next(W.iter_batches(seed=3, batch_size=4, size=32))
    again = next(W.iter_batches(seed=3, batch_size=4, size=32))
    assert torch.equal(first["image"], again["image"]) and first["caption"] == again["caption"]
    stream = W.iter_batches(seed=3, batch_size=4, size=32)
    next(stream)
    second = next(stream)
    resumed = next(W.iter_batches(seed=3, batch_size=4, size=32, start=1))
    assert second["index"] == resumed["index"] == 1
    assert torch.equal(second["image"], resumed["image"])
    assert not torch.equal(first["image"], second["image"])
    other = next(W.iter_batches(seed=4, batch_size=4, size=32))
    assert not torch.equal(first["image"], other["image"])
    assert first["image"].shape == (4, 3, 32, 32) and first["depth"].shape == (4, 1, 32, 32)
    assert first["masks"].shape == (4, 3, 32, 32) and len(first["caption"]) == 4


def test_dataset_node_matches_iter_batches():
    out = W.world_dataset(seed=5, batch_size=3, index=2, size=32)
    batch = next(W.iter_batches(seed=5, batch_size=3, size=32, start=2))
    assert torch.equal(out.image, batch["image"]) and out.captions == batch["caption"]


def test_rendering_is_fast_and_works_at_every_size(scenes):
    start = time.perf_counter()
    batch = W.render_batch(scenes[:64], 64)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"64 scenes at 64×64 took {elapsed:.2f}s"
    assert batch["image"].dtype == torch.float32 and 0 <= batch["image"].min() and batch["image"].max() <= 1
    for size in (32, 128, 256):
        r = W.render(scenes[0], size)
        assert r.image.shape == (size, size, 3) and r.masks.shape == (len(scenes[0].shapes), size, size)


def test_png_round_trip_is_exact(tmp_path):
    from PIL import Image as PILImage

    from nodegraph.nodes.image import image_to_pil, pil_to_image

    out = W.world_scene(seed=11, n_objects=3, background="texture")
    image_to_pil(out.image).save(tmp_path / "scene.png")
    assert torch.equal(pil_to_image(PILImage.open(tmp_path / "scene.png")), out.image)


# ---- ground truth against the picture -------------------------------------------------------


def test_palettes_keep_shapes_visible():
    shapes = np.asarray(list(W.COLORS.values()), float)
    assert min(np.linalg.norm(a - b) for a, b in itertools.combinations(shapes, 2)) > 80
    backgrounds = np.asarray(list(W.BACKGROUND_COLORS.values()), float)
    closest = min(
        np.linalg.norm(shapes - ((1 - t) * a + t * b), axis=1).min()
        for a, b in itertools.product(backgrounds, backgrounds)
        for t in np.linspace(0, 1, 11)
    )
    assert closest > 80  # every background colour, gradients included, is far from every shape colour


def test_masks_have_the_shape_colour_and_depth_matches(scenes):
    for scene in scenes[:30]:
        r = W.render(scene, 64, antialias=False)
        pixels = _uint8(r.image)
        assert len({s.color for s in scene.shapes}) == len(scene.shapes)
        for k, shape in enumerate(scene.shapes):
            mask = r.masks[k]
            assert mask.sum() > 0
            assert (pixels[mask] == np.asarray(shape.rgb, np.uint8)).all()
            assert np.allclose(r.depth[mask], shape.disparity)
            assert (r.ids[mask] == k).all()
        background = r.ids < 0
        assert np.allclose(r.depth[background], W.BACKGROUND_DISPARITY)
        assert r.depth[~background].min() > r.depth[background].max()  # background is farthest
        # with anti-aliasing the interior (away from any edge) is unchanged
        smooth = W.render(scene, 64, antialias=True)
        import cv2

        for k, shape in enumerate(scene.shapes):
            inner = cv2.erode(r.masks[k].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            assert (_uint8(smooth.image)[inner] == np.asarray(shape.rgb, np.uint8)).all()


def test_depth_order_matches_occlusion():
    rng = np.random.default_rng(5)
    checked = 0
    coords = (np.arange(64) + 0.5) / 64
    X, Y = np.meshgrid(coords, coords)
    for _ in range(200):
        scene = W.sample_scene(rng, 3)
        r = W.render(scene, 64)
        orders = sorted(s.depth_order for s in scene.shapes)
        assert orders == [0, 1, 2]
        for a, b in itertools.permutations(range(3), 2):
            overlap = scene.shapes[a].contains(X, Y) & scene.shapes[b].contains(X, Y)
            if overlap.any():
                front = a if scene.shapes[a].disparity > scene.shapes[b].disparity else b
                assert scene.shapes[front].depth_order > scene.shapes[a + b - front].depth_order
                assert (r.ids[overlap] == front).all()  # the nearer shape is the one you see
                checked += 1
        for k, shape in enumerate(scene.shapes):
            full = shape.contains(X, Y).sum()
            assert r.masks[k].sum() >= W.MIN_VISIBLE * full - 1
    assert checked > 5  # overlaps do happen


def test_position_and_size_fields_are_true():
    rng = np.random.default_rng(9)
    for _ in range(100):
        scene = W.sample_scene(rng)
        for shape in scene.shapes:
            x0, y0, x1, y1 = shape.extent()
            assert 0 <= x0 and x1 <= 1 and 0 <= y0 and y1 <= 1  # whole shape inside the picture
            assert W.size_word(shape.radius) == shape.size
            row, col = divmod(W.POSITIONS.index(shape.position), 3)
            assert (row, col) == (int(shape.y * 3), int(shape.x * 3))
        assert len({s.position for s in scene.shapes}) == len(scene.shapes)


# ---- captions -------------------------------------------------------------------------------


def test_captions_follow_the_grammar():
    scene = W.Scene(W.Background(), (W.Shape("circle", "red", "small", 0.2, 0.2, 0.08, 0.5),))
    assert W.caption(scene) == "a small red circle at the top left"
    two = W.Scene(
        W.Background(),
        (W.Shape("square", "blue", "medium", 0.2, 0.5, 0.1, 0.6), W.Shape("triangle", "yellow", "large", 0.8, 0.45, 0.15, 0.9)),
    )
    assert W.caption(two) == "a blue square left of a yellow triangle"
    three = W.Scene(
        W.Background(),
        (
            W.Shape("circle", "red", "small", 0.2, 0.2, 0.08, 0.5),
            W.Shape("square", "orange", "small", 0.5, 0.5, 0.08, 0.5),
            W.Shape("star", "green", "small", 0.8, 0.8, 0.08, 0.5),
        ),
    )
    assert W.caption(three) == "a red circle at the top left, an orange square at the center and a green star at the bottom right"


def test_caption_words_match_the_scene_and_the_vocabulary(scenes):
    vocab = set(W.vocabulary())
    for scene in scenes:
        text = W.caption(scene)
        assert re.fullmatch(r"[a-z ,]+", text)
        assert set(re.findall(r"[a-z]+", text)) <= vocab
        for shape in scene.shapes:
            assert f"{shape.color} {shape.kind}" in text
            if len(scene.shapes) != 2:
                assert f"at the {shape.position}" in text
            if len(scene.shapes) == 1:
                assert shape.size in text
        assert W.satisfies(scene, W.parse_prompt(text))  # the caption reads back as what the scene shows
    for prompt in W.single_object_prompts():
        assert set(re.findall(r"[a-z]+", prompt)) <= vocab
    assert len(W.single_object_prompts()) == len(W.COLORS) * len(W.SHAPES) * 9 * 3


def test_parser_reads_looser_prompts_and_rejects_nonsense():
    target = W.parse_prompt("A big red star in the middle")
    assert target.objects == (W.TargetObject("red", "star", "large", "center"),)
    target = W.parse_prompt("a green cross to the left of a black diamond")
    assert target.relations == ((0, "left of", 1),)
    target = W.parse_prompt("an orange circle on the right of a white square")
    assert target.relations == ((0, "right of", 1),) and target.objects[0].position is None
    with pytest.raises(W.PromptError, match="colour"):
        W.parse_prompt("a happy dog")
    with pytest.raises(W.PromptError, match="shape"):
        W.parse_prompt("a red banana")


def test_scene_from_prompt_satisfies_it():
    for seed, prompt in enumerate(
        ["a small red circle at the top left", "a blue square left of a yellow triangle", "a white star above a black cross",
         "a red circle at the top left, a blue square at the center and a green star at the bottom right"]
    ):  # fmt: skip
        out = W.world_scene_from_prompt(prompt=prompt, seed=seed)
        scene = W.Scene.from_dict(out.scene)
        target = W.parse_prompt(prompt)
        assert W.satisfies(scene, target)
        assert out.caption == prompt or len(target.objects) == 2 and out.caption == prompt
        assert out.masks.shape[0] == len(target.objects)


# ---- motion and flow ------------------------------------------------------------------------


def _interior(ids: np.ndarray, radius: int = 2) -> np.ndarray:
    """Pixels whose (2r+1)² neighbourhood shows one surface (away from edges and the border)."""
    pad = np.pad(ids.astype(np.int16), radius, constant_values=-99)  # the picture border is an edge too
    same = np.ones(ids.shape, bool)
    for di, dj in itertools.product(range(2 * radius + 1), repeat=2):
        same &= pad[di : di + ids.shape[0], dj : dj + ids.shape[1]] == ids
    return same


def test_warping_with_the_true_flow_reproduces_the_next_frame():
    out = W.world_moving_scene(seed=2, frames=6, size=64, n_objects=3, speed=1.5)
    frames = torch.cat(list(out.frames))
    assert isinstance(out.frames, FrameStream) and len(out.frames) == 6 and frames.shape == (6, 3, 64, 64)
    assert out.flows.shape == (5, 2, 64, 64) and out.depths.shape == (6, 1, 64, 64) and out.valid.shape == (5, 1, 64, 64)
    scene = W.sample_moving_scene(np.random.default_rng(2), 3, 1.5)
    motion = W.render_motion(scene, 6, 64)
    assert np.array_equal(motion.frames.transpose(0, 3, 1, 2), frames.numpy())
    moved = 0
    for t in range(5):
        warped = W.warp(frames[t : t + 1], out.flows[t : t + 1])[0]
        error = (warped - frames[t + 1]).abs().amax(0).numpy()
        valid = out.valid[t, 0].numpy().astype(bool)
        # away from edges (bilinear reads the anti-aliased rim) and from occlusion boundaries
        interior = _interior(motion.ids[t + 1]) & _interior(valid.astype(np.int8))
        assert interior.sum() > 0.5 * 64 * 64
        assert error[interior].max() < 0.02  # exact up to 8-bit rounding away from edges
        assert error[valid].mean() < 0.02  # and close on every non-occluded pixel
        moved += (out.flows[t].abs().sum(0) > 0).sum().item()
        # the flow of an object is its displacement, reversed (backward flow)
        for k in range(3):
            hit = motion.ids[t + 1] == k
            if hit.any():
                s0, s1 = motion.scenes[t].shapes[k], motion.scenes[t + 1].shapes[k]
                assert np.allclose(out.flows[t, 0].numpy()[hit], (s0.x - s1.x) * 64, atol=1e-4)
                assert np.allclose(out.flows[t, 1].numpy()[hit], (s0.y - s1.y) * 64, atol=1e-4)
    assert moved > 0


def test_integer_motion_without_antialias_is_exact():
    shape = W.Shape("star", "red", "large", 0.5, 0.5, 0.15, 0.9, velocity=(3 / 64, -2 / 64))
    scene = W.Scene(W.Background("texture", "sky", "sky", 0.0, 4), (shape,))
    motion = W.render_motion(scene, 3, 64, antialias=False)
    frames = torch.from_numpy(motion.frames.transpose(0, 3, 1, 2).copy())
    flows = torch.from_numpy(motion.flows.transpose(0, 3, 1, 2).copy())
    assert flows[0, 0][torch.from_numpy(motion.ids[1] == 0)].unique().tolist() == [-3.0]
    warped = W.warp(frames[:1], flows[:1])[0]
    valid = torch.from_numpy(motion.valid[0])
    assert torch.allclose(warped[:, valid], frames[1][:, valid], atol=1e-6)
    assert (~valid).sum() > 0  # the uncovered background behind the star is flagged


# ---- the evaluator --------------------------------------------------------------------------


def test_evaluator_is_exact_on_clean_single_objects():
    rng = np.random.default_rng(77)
    scenes = [W.sample_scene(rng, 1) for _ in range(48)]
    hits = {"color": 0, "shape": 0, "position": 0, "size": 0}
    for scene in scenes:
        result = W.score_detections(W.scene_target(scene), W.analyze_array(_uint8(W.render(scene, 64).image)))
        for name in hits:
            hits[name] += result["fields"][name]
    assert hits == {name: len(scenes) for name in hits}


def test_evaluator_on_multi_object_and_degraded_scenes():
    import cv2

    rng = np.random.default_rng(78)
    noise = np.random.default_rng(0)
    scenes = [W.sample_scene(rng, 3) for _ in range(12)] + [W.sample_scene(rng, 1) for _ in range(12)]
    correct = total = 0
    for scene in scenes:
        image = cv2.GaussianBlur(W.render(scene, 64).image, (0, 0), 0.7)
        image = image + noise.normal(0, 0.03, image.shape).astype(np.float32)
        result = W.score_detections(W.scene_target(scene), W.analyze_array(_uint8(image)))
        correct += sum(o["color"] * o["shape"] for o in result["objects"])
        total += len(scene.shapes)
    assert correct / total >= 0.9


def test_evaluate_node_scores_prompt_following():
    right = W.world_scene_from_prompt(prompt="a large blue star at the bottom right", seed=1)
    wrong = W.world_scene_from_prompt(prompt="a large red circle at the top left", seed=1)
    good = W.world_evaluate(right.image, "a large blue star at the bottom right")
    assert good.score == 1.0 and good.color_and_shape == 1.0 and good.report["all_correct"] == 1.0
    bad = W.world_evaluate(wrong.image, "a large blue star at the bottom right")
    assert bad.score < 0.5 and bad.report["accuracy"]["position"] == 0.0
    assert (good.color, good.position, bad.color, bad.position) == (1.0, 1.0, 0.0, 0.0)
    batch = torch.cat([right.image, wrong.image])
    both = W.world_evaluate(batch, "a large blue star at the bottom right")
    assert both.color_and_shape == 0.5 and len(both.report["images"]) == 2
    relation = W.world_scene_from_prompt(prompt="a green triangle above a purple diamond", seed=3)
    checked = W.world_evaluate(relation.image, "a green triangle above a purple diamond")
    assert checked.report["accuracy"]["relation"] == 1.0 and checked.score == 1.0
    flipped = W.world_evaluate(relation.image, "a green triangle below a purple diamond")
    assert flipped.report["accuracy"]["relation"] == 0.0


# ---- nodes and errors -----------------------------------------------------------------------


def test_nodes_are_registered_with_typed_ports():
    spec = W.world_scene.__nodegraph_spec__
    assert spec.type_name == "WorldScene" and spec.category == "world"
    assert {k: v.name for k, v in ((n, o.type) for n, o in spec.outputs.items())} == {
        "image": "IMAGE", "caption": "STRING", "depth": "DEPTH", "masks": "MASK", "scene": "JSON",
    }  # fmt: skip
    assert spec.inputs["background"].choices == ("random", "plain", "gradient", "texture")
    moving = W.world_moving_scene.__nodegraph_spec__
    assert moving.outputs["frames"].type.name == "FRAMES" and moving.outputs["flows"].type.name == "FLOW"
    for fn in (W.world_scene_from_prompt, W.world_dataset, W.world_evaluate, W.world_parse_prompt):
        assert fn.__nodegraph_spec__.category == "world"
    out = W.world_scene(seed=0, n_objects=2, size=32)
    assert out.image.shape == (1, 3, 32, 32) and out.depth.shape == (1, 1, 32, 32) and out.masks.shape == (2, 1, 32, 32)


@pytest.mark.parametrize(
    "call, input_name",
    [
        (lambda: W.world_scene(n_objects=4), "n_objects"),
        (lambda: W.world_scene(size=4), "size"),
        (lambda: W.world_scene(background="stripes"), "background"),
        (lambda: W.world_scene_from_prompt(prompt="a purple elephant"), "prompt"),
        (lambda: W.world_scene_from_prompt(prompt="a red circle and a red square"), "prompt"),
        (lambda: W.world_moving_scene(frames=1), "frames"),
        (lambda: W.world_dataset(batch_size=0), "batch_size"),
        (lambda: W.world_evaluate(torch.zeros(1, 1, 8, 8), "a red circle"), "image"),
        (lambda: W.world_evaluate(torch.zeros(1, 3, 8, 8), ""), "prompt"),
        (lambda: W.world_parse_prompt("draw me a sheep"), "prompt"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, input_name):
    with pytest.raises(NodeInputError) as info:
        call()
    assert info.value.input == input_name
    assert info.value.expected


def test_sampler_rejects_bad_restrictions():
    with pytest.raises(ValueError, match="kinds"):
        W.sample_scene(0, 1, kinds=("hexagon",))
    with pytest.raises(ValueError, match="n_objects"):
        W.sample_scene(0, 5)
