"""Video encode / decode through imageio-ffmpeg's bundled ffmpeg (offline)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from nodegraph import CancelToken, Cancelled, NodeInputError, RunContext
from nodegraph.frames import FrameStream
from nodegraph.nodes.video import load_video_frames, probe_video, read_video_frames, save_frames, video_encode

COLOURS = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 0.0), (0.2, 0.4, 0.8)]


def solid(colour, h, w):
    return torch.tensor(colour).view(1, 3, 1, 1).expand(1, 3, h, w).clone()


def stream(n, h, w, fail_at=None):
    """A lazily produced FRAMES of solid colours; optionally raises at frame `fail_at`."""

    def frames():
        for i in range(n):
            if i == fail_at:
                raise RuntimeError("frame source broke")
            yield solid(COLOURS[i % len(COLOURS)], h, w)

    return FrameStream(frames, count=n)


def make_ctx(roots, token=None):
    return RunContext("t", "T", roots, token or CancelToken())


def listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.mark.parametrize("fmt, fps", [("mp4", 12.0), ("webm", 8.0), ("gif", 10.0)])
def test_encoded_video_decodes_back(roots, fmt, fps):
    ctx = make_ctx(roots)
    path = video_encode(ctx, stream(10, 32, 48), f"clips/anim.{fmt}", fmt, fps, 20, "ultrafast")
    assert path == str(roots.outputs / "clips" / f"anim.{fmt}")
    info = probe_video(path)
    assert (info.frames, info.width, info.height) == (10, 48, 32)
    assert info.fps == pytest.approx(fps, rel=1e-3)
    assert ctx.files == [roots.outputs / "clips" / f"anim.{fmt}"]
    assert listing(roots.outputs) == ["clips", f"clips/anim.{fmt}"]  # no temp file left
    # the pictures survive the round trip in RGB order
    decoded = list(read_video_frames(path))
    assert len(decoded) == 10
    for i, frame in enumerate(decoded):
        want = torch.tensor(COLOURS[i % len(COLOURS)])
        assert torch.allclose(frame[0].mean(dim=(1, 2)), want, atol=0.08), (i, frame[0].mean(dim=(1, 2)))


def test_image_batch_input_and_extension_added(roots):
    ctx = make_ctx(roots)
    batch = torch.cat([solid(c, 16, 16) for c in COLOURS])
    path = video_encode(ctx, batch, "batch", "mp4", 5.0)
    assert path.endswith("batch.mp4")
    assert probe_video(path)[:3] == (5, 16, 16)
    with pytest.raises(NodeInputError, match="extension"):
        video_encode(ctx, batch, "batch.gif", "mp4")


def test_odd_size_is_padded(roots):
    path = video_encode(make_ctx(roots), stream(4, 21, 33), "odd.mp4", "mp4", 10.0, odd_size="pad")
    info = probe_video(path)
    assert (info.frames, info.width, info.height) == (4, 34, 22)
    assert os.path.getsize(path) > 0
    # gif has no even-size rule: kept as is
    gif = video_encode(make_ctx(roots), stream(4, 21, 33), "odd.gif", "gif", 10.0)
    assert probe_video(gif)[:3] == (4, 33, 21)


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_odd_size_rejected_leaves_no_file(roots, fmt):
    with pytest.raises(NodeInputError, match="even width and height") as info:
        video_encode(make_ctx(roots), stream(4, 21, 32), f"odd.{fmt}", fmt, odd_size="error")
    assert "32×21" in str(info.value)
    assert listing(roots.outputs) == []


def test_failing_frame_source_leaves_no_file(roots):
    with pytest.raises(RuntimeError, match="frame source broke"):
        video_encode(make_ctx(roots), stream(8, 16, 16, fail_at=5), "broken.mp4")
    assert listing(roots.outputs) == []
    # an older complete file with the same name survives a failed re-render untouched
    good = video_encode(make_ctx(roots), stream(3, 16, 16), "keep.mp4")
    before = open(good, "rb").read()
    with pytest.raises(RuntimeError):
        video_encode(make_ctx(roots), stream(8, 16, 16, fail_at=6), "keep.mp4")
    assert open(good, "rb").read() == before
    assert listing(roots.outputs) == ["keep.mp4"]


def test_cancel_mid_encode_leaves_no_file(roots):
    token = CancelToken()
    seen = []

    def frames():
        for i in range(50):
            if i == 3:
                token.cancel()
            seen.append(i)
            yield solid(COLOURS[0], 16, 16)

    with pytest.raises(Cancelled):
        video_encode(make_ctx(roots, token), FrameStream(frames, count=50), "cancelled.webm", "webm")
    assert len(seen) < 10  # stopped at once, did not drain the source
    assert listing(roots.outputs) == []


def test_bad_inputs_are_clear(roots):
    ctx = make_ctx(roots)
    with pytest.raises(NodeInputError, match="no frames"):
        video_encode(ctx, FrameStream(lambda: iter(()), count=0), "empty.mp4")
    with pytest.raises(NodeInputError, match="different size"):
        video_encode(ctx, FrameStream.from_list([solid(COLOURS[0], 16, 16), solid(COLOURS[1], 18, 16)]), "mixed.mp4")
    with pytest.raises(NodeInputError, match="crf"):
        video_encode(ctx, stream(2, 16, 16), "q.mp4", crf=60)
    with pytest.raises(NodeInputError, match="escapes"):
        video_encode(ctx, stream(2, 16, 16), "../outside.mp4")
    assert listing(roots.outputs) == []


def test_frames_are_streamed_not_collected(roots):
    """The encoder holds one frame at a time: every yielded frame is freed before the next."""
    import weakref

    alive = []

    def frames():
        for i in range(12):
            frame = solid(COLOURS[i % 5], 16, 16)
            alive.append(weakref.ref(frame))
            yield frame
            del frame  # plain reference counting frees it: no gc.collect() needed
            assert sum(r() is not None for r in alive) <= 2

    video_encode(make_ctx(roots), FrameStream(frames, count=12), "stream.mp4")
    assert probe_video(roots.outputs / "stream.mp4").frames == 12


def test_save_frames_png_sequence(roots):
    ctx = make_ctx(roots)
    folder = save_frames(ctx, stream(3, 8, 12), "seq", "f_")
    assert sorted(os.listdir(folder)) == ["f_00000.png", "f_00001.png", "f_00002.png"]
    from PIL import Image

    with Image.open(os.path.join(folder, "f_00001.png")) as im:
        assert im.size == (12, 8) and im.getpixel((0, 0)) == (0, 255, 0)
    assert len(ctx.files) == 3
    # a failing source leaves the existing sequence as it was and no temp folder
    with pytest.raises(RuntimeError):
        save_frames(ctx, stream(5, 8, 12, fail_at=4), "seq", "g_")
    assert listing(roots.outputs) == ["seq", "seq/f_00000.png", "seq/f_00001.png", "seq/f_00002.png"]
    with pytest.raises(NodeInputError, match="prefix"):
        save_frames(ctx, stream(1, 8, 8), "seq", "../x")


def test_load_video_frames_is_lazy_and_round_trips(roots):
    ctx = make_ctx(roots)
    path = video_encode(ctx, stream(10, 32, 32), "clip.mp4", "mp4", 12.0, 10)
    os.replace(path, roots.inputs[0] / "clip.mp4")
    loaded = load_video_frames(ctx, "clip.mp4")
    assert loaded.fps == pytest.approx(12.0) and loaded.frame_count == 10
    assert isinstance(loaded.frames, FrameStream) and loaded.frames.count == 10
    frames = list(loaded.frames)
    assert len(frames) == 10 and frames[0].shape == (1, 3, 32, 32)
    assert torch.allclose(frames[2][0].mean(dim=(1, 2)), torch.tensor(COLOURS[2]), atol=0.08)
    # every nth frame and a cap; leaving the stream early stops the decoder
    nth = load_video_frames(ctx, "clip.mp4", every_nth=3, max_frames=3)
    assert nth.frame_count == 3 and nth.fps == pytest.approx(4.0)
    picked = list(nth.frames)
    assert len(picked) == 3
    assert torch.allclose(picked[1][0].mean(dim=(1, 2)), torch.tensor(COLOURS[3]), atol=0.08)
    first = next(iter(loaded.frames))
    assert first.shape == (1, 3, 32, 32)
    # and it re-encodes (video-input lesson path)
    again = video_encode(ctx, loaded.frames, "again.mp4", fps=loaded.fps)
    assert probe_video(again)[:4] == (10, 32, 32, 12.0)
    with pytest.raises(NodeInputError, match="not found"):
        load_video_frames(ctx, "missing.mp4")
    (roots.inputs[0] / "junk.mp4").write_bytes(b"not a video at all")
    with pytest.raises(NodeInputError, match="cannot read junk.mp4"):
        load_video_frames(ctx, "junk.mp4")


def test_node_specs_read_from_signatures():
    spec = video_encode.__nodegraph_spec__
    assert spec.output_node and list(spec.outputs) == ["path"]
    assert [t.name for t in spec.inputs["frames"].types] == ["FRAMES", "IMAGE"]
    assert spec.inputs["odd_size"].choices == ("pad", "error")
    assert spec.inputs["format"].choices == ("mp4", "webm", "gif")
    load = load_video_frames.__nodegraph_spec__
    assert list(load.outputs) == ["frames", "fps", "frame_count"]
    assert np.array_equal([o.type.name for o in load.outputs.values()], ["FRAMES", "FLOAT", "INT"])


def test_video_nodes_run_in_a_graph(roots):
    from nodegraph.executor import Executor
    from nodegraph.graph import graph_from_data

    path = video_encode(make_ctx(roots), stream(6, 16, 24), "src.webm", "webm", 6.0)
    os.replace(path, roots.inputs[0] / "src.webm")
    graph = graph_from_data(
        {
            "format": "nodegraph/1",
            "nodes": {
                "1": {"type": "LoadVideoFrames", "inputs": {"video": "src.webm", "every_nth": 2}},
                "2": {
                    "type": "VideoEncode",
                    "inputs": {"frames": {"from": ["1", "frames"]}, "fps": {"from": ["1", "fps"]}, "filename": "out.gif", "format": "gif"},
                },
                "3": {"type": "SaveFrames", "inputs": {"frames": {"from": ["1", "frames"]}, "folder": "pngs"}},
            },
        }
    )
    result = Executor(roots=roots).run(graph)
    assert probe_video(result.outputs["2"]["path"])[:3] == (3, 24, 16)
    assert sorted(os.listdir(result.outputs["3"]["path"])) == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    assert roots.outputs / "out.gif" in result.files
