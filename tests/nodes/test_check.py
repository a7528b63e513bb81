"""Measurement nodes of the check pack: what lessons use to prove what they teach."""

from __future__ import annotations

import math

import pytest
import torch

from nodegraph import CancelToken, NodeInputError, RunContext
from nodegraph.frames import FrameStream
from nodegraph.nodes.check import check, flow_magnitude, frame_at, image_distance, image_size, video_info
from nodegraph.nodes.video import video_encode


def solid(value: float, size: int = 16) -> torch.Tensor:
    return torch.full((1, 3, size, size), float(value))


def counting_stream(n: int, log: list[int] | None = None, known: bool = True) -> FrameStream:
    """Frame i is a solid grey of value i/10; `log` records which frames were made."""

    def frames():
        for i in range(n):
            if log is not None:
                log.append(i)
            yield solid(i / 10)

    return FrameStream(frames, count=n if known else None)


# ---- the original three -----------------------------------------------------------------------


def test_image_size_distance_and_check():
    a, b = solid(0.0), solid(0.5)
    assert image_size(a) == (16, 16, 3, 1)
    assert image_distance(a, b, "mae") == pytest.approx(0.5)
    assert image_distance(a, b, "mse") == pytest.approx(0.25)
    assert image_distance(a, b, "psnr") == pytest.approx(10 * math.log10(4))
    assert image_distance(a, a, "psnr") == math.inf
    assert check(1.0, 2.0, "<", "x")["passed"] and not check(3.0, 2.0, "<", "x")["passed"]
    with pytest.raises(NodeInputError):
        image_distance(a, solid(0.0, 8))


# ---- FlowMagnitude ------------------------------------------------------------------------------


def test_flow_magnitude_is_the_mean_offset_length_and_respects_the_mask():
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0, :, :4] = 3.0  # left half moves 3 px in x...
    flow[:, 1, :, :4] = 4.0  # ...and 4 px in y: length 5
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :, :4] = 1.0
    assert flow_magnitude(flow) == pytest.approx(2.5)
    assert flow_magnitude(flow, mask, "inside") == pytest.approx(5.0)
    assert flow_magnitude(flow, mask, "outside") == pytest.approx(0.0)
    # a batch-of-one mask is used for every flow of a batch
    assert flow_magnitude(flow.expand(3, -1, -1, -1), mask, "inside") == pytest.approx(5.0)


def test_flow_magnitude_refuses_bad_inputs():
    flow = torch.zeros(1, 2, 8, 8)
    with pytest.raises(NodeInputError, match="FLOW"):
        flow_magnitude(torch.zeros(1, 3, 8, 8))
    with pytest.raises(NodeInputError, match="size"):
        flow_magnitude(flow, torch.ones(1, 1, 4, 4))
    with pytest.raises(NodeInputError, match="batch"):
        flow_magnitude(torch.zeros(2, 2, 8, 8), torch.ones(3, 1, 8, 8))
    with pytest.raises(NodeInputError, match="no pixel"):
        flow_magnitude(flow, torch.ones(1, 1, 8, 8), "outside")


# ---- FrameAt ------------------------------------------------------------------------------------


def test_frame_at_picks_frames_of_a_stream_and_stops_early():
    log: list[int] = []
    stream = counting_stream(6, log)
    first = frame_at(stream, 0)
    assert first.shape == (1, 3, 16, 16) and float(first.mean()) == pytest.approx(0.0)
    assert log == [0]  # nothing after the wanted frame is rendered
    assert float(frame_at(stream, 2).mean()) == pytest.approx(0.2)
    assert float(frame_at(stream, -1).mean()) == pytest.approx(0.5)
    assert float(frame_at(stream, -6).mean()) == pytest.approx(0.0)


def test_frame_at_on_image_batches_and_lists():
    batch = torch.cat([solid(i / 10) for i in range(4)])
    assert float(frame_at(batch, 1).mean()) == pytest.approx(0.1)
    assert frame_at(batch, -1).shape == (1, 3, 16, 16)
    assert float(frame_at(batch, -1).mean()) == pytest.approx(0.3)
    # a stream whose items are batches counts pictures, not items
    stream = FrameStream(lambda: [batch[:2], batch[2:]], count=4)
    assert float(frame_at(stream, 3).mean()) == pytest.approx(0.3)


def test_frame_at_refuses_missing_frames():
    with pytest.raises(NodeInputError, match="no such frame"):
        frame_at(counting_stream(3), 3)
    with pytest.raises(NodeInputError, match="no such frame"):
        frame_at(counting_stream(3), -4)
    with pytest.raises(NodeInputError, match="no such frame"):
        frame_at(torch.cat([solid(0), solid(1)]), 2)
    with pytest.raises(NodeInputError, match="length"):
        frame_at(counting_stream(3, known=False), -1)
    assert float(frame_at(counting_stream(3, known=False), 1).mean()) == pytest.approx(0.1)
    with pytest.raises(NodeInputError, match="FRAMES"):
        frame_at("not frames", 0)


# ---- VideoInfo ----------------------------------------------------------------------------------


def make_ctx(roots):
    return RunContext("t", "T", roots, CancelToken())


def test_video_info_reads_back_what_an_encoder_wrote(roots):
    ctx = make_ctx(roots)
    path = video_encode(ctx, counting_stream(7), "clip.mp4", "mp4", 10.0, 20, "ultrafast")
    info = video_info(ctx, path)
    assert (info.frames, info.width, info.height) == (7, 16, 16)
    assert info.fps == pytest.approx(10.0)
    assert info.duration == pytest.approx(0.7, abs=0.05)
    # a name relative to the output root works too
    assert video_info(ctx, "clip.mp4").frames == 7


def test_video_info_reads_only_under_the_roots(roots, tmp_path):
    ctx = make_ctx(roots)
    outside = tmp_path / "elsewhere.mp4"
    video_encode(make_ctx(roots), counting_stream(2), "x.mp4", "mp4", 10.0, 20, "ultrafast")
    outside.write_bytes((roots.outputs / "x.mp4").read_bytes())
    with pytest.raises(NodeInputError):
        video_info(ctx, str(outside))
    (roots.outputs / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(NodeInputError, match="cannot read"):
        video_info(ctx, "broken.mp4")


def test_measurements_in_a_graph(roots):
    """FrameAt + VideoInfo + Check on a real stream, through the executor."""
    from nodegraph.executor import Executor
    from nodegraph.graph import graph_from_data

    graph = graph_from_data({
        "format": "nodegraph/1",
        "nodes": {
            "1": {"type": "WorldMovingScene", "inputs": {"seed": 1, "frames": 5, "size": 32, "n_objects": 1}},
            "2": {"type": "VideoEncode", "inputs": {"frames": {"from": ["1", "frames"]}, "filename": "m.mp4", "fps": 5.0}},
            "3": {"type": "VideoInfo", "inputs": {"path": {"from": ["2", "path"]}}},
            "4": {"type": "Check", "inputs": {"value": {"from": ["3", "frames"]}, "threshold": 5, "op": "=="}},
            "5": {"type": "FrameAt", "inputs": {"frames": {"from": ["1", "frames"]}, "index": -1}},
            "6": {"type": "ImageSize", "inputs": {"image": {"from": ["5", "image"]}}},
            "7": {"type": "Check", "inputs": {"value": {"from": ["6", "width"]}, "threshold": 32, "op": "=="}},
            "8": {"type": "FlowMagnitude", "inputs": {"flow": {"from": ["1", "flows"]}}},
            "9": {"type": "Check", "inputs": {"value": {"from": ["8", "pixels"]}, "threshold": 0.0, "op": ">"}},
        },
    })
    result = Executor(roots=roots).run(graph)
    assert result.status == "ok", result.error
    for node_id in ("4", "7", "9"):
        assert result.outputs[node_id]["check"]["passed"], result.outputs[node_id]["check"]
