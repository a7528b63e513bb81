"""Frame loops: animation as a graph that stays a DAG.

A ``FrameLoop`` node owns a *body*: a small graph it runs once per frame. Inside the body,
``LoopState`` gives the frame's state and ``LoopResult`` takes the frame it produced:

    FrameLoop(init_image, frames=48, seed, seed_behavior="iter")
      body:  LoopState ─previous─▶ Transform2D ─▶ ColorMatch(reference) ─▶ ... ─▶ LoopResult

LoopState outputs
    frame       the frame index t (0, 1, ...)
    previous    the previous frame (the init image at t = 0): feedback without a cycle
    reference   the first frame produced (the init image at t = 0): a colour reference
    seed        this frame's seed (see seed_behavior)
    max_frames  the number of frames

Body links may name nodes of the enclosing graph (a model loaded once outside the loop),
and any FLOAT/INT input in the body can take a keyframe schedule instead of a number:
``{"schedule": "0:(1.0), 30:(1.5)"}`` (see nodegraph.schedule).

The loop's output is a FRAMES stream: frames are rendered while a sink (video encoder, PNG
writer) consumes them, so a 300-frame animation never sits in memory. Body nodes that do
not depend on the loop state (a prompt encoding) are cached once like any node; nodes
that do are recomputed each frame and not kept.
"""

from __future__ import annotations

import random
from typing import Annotated, Any, Literal, NamedTuple

from .context import RunContext
from .errors import NodeInputError
from .frames import FrameStream
from .node import node
from .types import Doc, Frames, Image, Range, Seed

LOOP_STATE = "LoopState"
LOOP_RESULT = "LoopResult"
LOOP_NODE = "FrameLoop"


class LoopStateOut(NamedTuple):
    frame: int
    previous: Image
    reference: Image
    seed: Seed
    max_frames: int


@node(category="loop", name=LOOP_STATE)
def loop_state() -> LoopStateOut:
    """Inside a loop body: this frame's index, the previous frame, the colour reference,
    the seed and the frame count. The executor fills it in for every frame."""
    raise NodeInputError("body", "LoopState only has values inside a FrameLoop body")


@node(category="loop", name=LOOP_RESULT, output_node=True, output="image")
def loop_result(image: Image) -> Image:
    """Inside a loop body: the frame this pass produced. It becomes the next pass's
    `previous`, and the loop streams it to whatever reads the loop's frames."""
    return image


def frame_seed(behavior: str, seed: int, frame: int, schedule: str, max_frames: int) -> int:
    """fixed: the same seed every frame; iter: seed + frame; random: a seeded random
    sequence (same seed, same sequence); schedule: a keyframe schedule in t."""
    if behavior == "fixed":
        return seed
    if behavior == "iter":
        return (seed + frame) % 2**63
    if behavior == "random":
        return random.Random(f"{seed}:{frame}").randrange(2**63)
    from .schedule import ScheduleError, as_schedule

    try:
        return int(round(as_schedule(schedule, max_frames=max_frames, seed=seed).at(frame))) % 2**63
    except ScheduleError as exc:
        raise NodeInputError("seed_schedule", str(exc)) from None


@node(category="loop", name=LOOP_NODE, output="frames", body=True)
def frame_loop(
    init_image: Annotated[Image, Doc("the picture before frame 0 (previous and reference at t = 0)")],
    frames: Annotated[int, Range(1, 100_000), Doc("how many frames to render")] = 48,
    seed: Seed = 0,
    seed_behavior: Literal["fixed", "iter", "random", "schedule"] = "iter",
    seed_schedule: Annotated[str, Doc('used when seed_behavior is "schedule", e.g. "0:(5), 24:(9)"')] = "0:(0)",
    fps: Annotated[float, Range(0.1, 240.0)] = 12.0,
    *,
    ctx: RunContext,
) -> Frames:
    """Run the body once per frame, feeding each frame back in as the next one's
    `previous`. Returns a stream: frames are made while they are consumed."""
    if seed_behavior == "schedule":
        frame_seed(seed_behavior, seed, 0, seed_schedule, frames)  # a bad schedule fails now, not mid-render

    def render():
        previous = init_image
        reference = None
        for t in range(frames):
            ctx.check_cancelled()
            state = LoopStateOut(
                frame=t,
                previous=previous,
                reference=init_image if reference is None else reference,
                seed=frame_seed(seed_behavior, seed, t, seed_schedule, frames),
                max_frames=frames,
            )
            image = ctx.run_body(state._asdict(), t)
            ctx.progress(t + 1, frames, preview=image, text=f"frame {t + 1}/{frames}")
            previous = image
            if reference is None:
                reference = image
            yield image

    return FrameStream(render, count=frames, fps=fps)
