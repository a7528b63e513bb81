"""The trained world reader: the shipped network reads held-out renders, training works,
resumes exactly and writes a folder the evaluator loads, and the analytic reader stays
available. Real renders and real (tiny) training runs, no mocks."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from nodegraph.context import CancelToken, RunContext
from nodegraph.errors import Cancelled, NodeInputError
from nodegraph.nodes import train as T
from nodegraph.nodes import world as W
from nodegraph.nodes import models as M
from nodegraph.nodes import world_reader as R

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEST_STREAM = 808  # held-out scenes (train.HOLDOUT + 808): neither the trainer nor the benchmark draws them


def make_ctx(roots, signature="sig", on_progress=None, cancel=None):
    ctx = RunContext("1", "TrainWorldReader", roots, cancel or CancelToken(), on_progress)
    ctx.signature = signature
    return ctx


def _share(rows, key="shape"):
    return sum(r[key] for r in rows) / len(rows)


# ---- the shipped reader -----------------------------------------------------------------------


def test_shipped_reader_is_small_and_names_every_world_shape():
    folder = R.shipped_folder()
    assert {p.name for p in folder.iterdir()} >= {M.NET_CONFIG, M.NET_WEIGHTS, T.MARKER}
    assert (folder / M.NET_WEIGHTS).stat().st_size < 0.5 * 2**20
    net = R.default_reader()
    assert net is R.default_reader()  # loaded once
    assert net.config["kinds"] == list(W.SHAPES) and 0 < net.config["unclear_below"] < 1
    facts = json.loads((folder / T.MARKER).read_text())
    assert facts["trainer"] == "TrainWorldReader"


def test_shipped_reader_reads_clean_and_blurred_held_out_renders():
    singles = R.holdout_scenes(TEST_STREAM, 60, 1)
    clean = R.object_scores(singles, R.blurred(singles, 0.0))
    assert _share(clean) >= 0.98 and _share(clean, "color_and_shape") >= 0.98
    triples = R.holdout_scenes(TEST_STREAM, 16, 3)  # occlusion included
    assert _share(R.object_scores(triples, R.blurred(triples, 0.7))) >= 0.95
    soft = R.object_scores(singles, R.blurred(singles, 1.0))
    assert _share(soft) >= 0.95


def test_trained_reader_sees_small_shapes_through_blur_better_than_the_template_fit():
    scenes = R.holdout_scenes(TEST_STREAM + 1, 36, 1)
    small = [W.Scene(s.background, (replace(s.shapes[0], size="small", radius=W.SIZES["small"]),)) for s in scenes]
    pictures = R.blurred(small, 1.2)
    trained = _share(R.object_scores(small, pictures, "trained"))
    analytic = _share(R.object_scores(small, pictures, "analytic"))
    assert trained >= 0.9 and trained > analytic + 0.1, (trained, analytic)


def test_a_blob_no_world_shape_resembles_is_unclear():
    """A long thin bar is no circle, square, triangle, star, diamond or cross: the trained
    reader says so instead of naming the nearest shape."""
    picture = np.full((64, 64, 3), 128, np.uint8)
    picture[28:36, 8:56] = W.COLORS["red"]
    (found,) = W.analyze_array(picture)
    assert found.color == "red" and found.kind == W.UNCLEAR and found.reader == "trained"
    assert set(found.scores) == set(W.SHAPES)
    result = W.world_evaluate(torch.from_numpy(picture).permute(2, 0, 1)[None].float() / 255, "a red square")
    assert result.color == 1.0 and result.color_and_shape == 0.0


# ---- the evaluator's readers ---------------------------------------------------------------------


def test_world_evaluate_reads_with_either_reader():
    right = W.world_scene_from_prompt(prompt="a large blue star at the bottom right", seed=1)
    for reader in ("trained", "analytic"):
        good = W.world_evaluate(right.image, "a large blue star at the bottom right", reader=reader)
        assert good.score == 1.0 and good.report["reader"] == reader
        assert good.report["images"][0]["detected"][0]["reader"] == reader
    analytic = W.world_evaluate(right.image, "a large blue star at the bottom right", reader="analytic")
    assert analytic.report["images"][0]["detected"][0]["scores"]["star"] > 0.9  # template IoU per kind


@pytest.mark.parametrize(
    "call, input_name",
    [
        (lambda image: W.world_evaluate(image, "a red circle", reader="neural"), "reader"),
        (lambda image: W.evaluate(image, "a red circle", reader="neural"), "reader"),
        (lambda image: W.world_evaluate(image, "a red circle", reader_model="no-such-reader"), "reader_model"),
    ],
)
def test_bad_reader_inputs_are_clear_errors(call, input_name):
    image = W.world_scene(seed=2).image
    with pytest.raises(NodeInputError) as info:
        call(image)
    assert info.value.input == input_name and info.value.expected


# ---- training --------------------------------------------------------------------------------------


def _holdout_loss(net) -> float:
    crops, labels = R.training_batch(T.HOLDOUT + TEST_STREAM, 0, 16, 1.0, 0.03, 0.03)
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(net.eval()(crops), labels))


def test_training_steps_reduce_the_loss_and_write_a_folder_the_evaluator_reads(roots):
    before = _holdout_loss(T._seeded_init(3, R.build_reader))
    events = []
    ctx = make_ctx(roots, "wr", lambda i, n, p, t: events.append((i, n, t)))
    result = R.train_world_reader(ctx, seed=3, steps=24, batch_size=8, learning_rate=2e-3, checkpoint_every=12, name="wr")
    assert result.reader_path == "wr" and 0.0 <= result.holdout_accuracy <= 1.0
    folder = roots.models[0] / "wr"
    assert {p.name for p in folder.iterdir()} == {M.NET_CONFIG, M.NET_WEIGHTS, T.MARKER}
    net = R.load_reader(folder)
    after = _holdout_loss(net)
    assert after < before - 0.3, (before, after)
    facts = json.loads((folder / T.MARKER).read_text())
    assert facts["steps"] == 24 and facts["holdout_shape_accuracy_clean"] == result.holdout_accuracy
    assert (roots.outputs / "train" / "wr_loss.png").read_bytes()[:4] == b"\x89PNG"
    assert [e[0] for e in events if e[0] > 0][-1] == 24 and "loss" in events[-1][2]
    # WorldEvaluate finds the trained folder under the run's model roots
    scene = W.world_scene_from_prompt(prompt="a large red circle at the center", seed=4)
    out = W.world_evaluate(scene.image, "a large red circle at the center", reader_model="wr", ctx=make_ctx(roots, "eval"))
    assert out.color == 1.0 and out.report["images"][0]["detected"][0]["reader"] == "trained"


def test_training_resumes_after_cancel_with_identical_weights(tmp_path):
    from nodegraph.context import Roots
    from safetensors.torch import load_file

    def roots_in(name):
        base = tmp_path / name
        made = Roots(inputs=[], outputs=base / "out", models=[base / "models"], cache=base / "cache")
        made.models[0].mkdir(parents=True)
        return made

    kwargs = dict(seed=6, steps=4, batch_size=4, learning_rate=3e-3, checkpoint_every=4, lr_decay=0.5, name="r")
    straight = roots_in("straight")
    R.train_world_reader(make_ctx(straight, "s"), **kwargs)
    resumed = roots_in("resumed")
    cancel = CancelToken()

    def on_progress(step, total, preview, text):
        if step == 2:
            cancel.cancel()

    with pytest.raises(Cancelled):
        R.train_world_reader(make_ctx(resumed, "r", on_progress, cancel), **kwargs)
    assert T.Checkpoint(resumed.cache / "work" / "r").load()["step"] == 2  # the cancel kept every finished step
    assert not (resumed.models[0] / "r").exists()
    steps = []
    R.train_world_reader(make_ctx(resumed, "r", lambda s, n, p, t: steps.append(s)), **kwargs)
    assert steps[0] == 2 and 1 not in steps
    a = load_file(straight.models[0] / "r" / M.NET_WEIGHTS)
    b = load_file(resumed.models[0] / "r" / M.NET_WEIGHTS)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_batches_are_reproducible_and_labelled_with_the_truth():
    crops, labels = R.training_batch(1, 5, 6, 1.2, 0.05, 0.04, melt=0.15, wobble=1.0)
    again, same = R.training_batch(1, 5, 6, 1.2, 0.05, 0.04, melt=0.15, wobble=1.0)
    assert torch.equal(crops, again) and torch.equal(labels, same)
    assert crops.shape[1:] == (len(R.CHANNELS), R.CROP, R.CROP)
    clean, truth = R.training_batch(1, 5, 6, 0.0, 0.0, 0.0)  # undegraded: every object is found
    scenes = W.batch_scenes(1, 5, 6)
    assert sorted(truth.tolist()) == sorted(W.SHAPES.index(s.kind) for scene in scenes for s in scene.shapes)
    assert clean[:, 3].amax(dim=(1, 2)).min() == 1.0  # the object's own mask is in every crop
