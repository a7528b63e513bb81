"""Keyframe schedule nodes: parse, evaluate and plot schedules.

The schedule language itself (Deforum syntax, the whitelist evaluator, interpolation) lives
in the engine, ``nodegraph.schedule``, because any FLOAT/INT input of a node inside a frame
loop can take a schedule: ``{"schedule": "0:(1.0), 30:(1.5)"}``. Read its docstring for the
syntax and the security rules.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, NamedTuple

from nodegraph import Doc, Range, RunContext, node
from nodegraph.schedule import MAX_FRAMES, Interpolation, Schedule, ScheduleError, _short, as_schedule, parse_schedule  # noqa: F401
from nodegraph.types import Multiline, OutputFile, port_type

from .plots import save_line_plot

SCHEDULE = port_type("SCHEDULE", "a parsed keyframe schedule: a value for every frame")
ScheduleT = Annotated[Any, SCHEDULE]

# ---- nodes -------------------------------------------------------------------------------------

ScheduleText = Annotated[
    str, Multiline(), Doc('Deforum keyframes, e.g. "0:(1.0), 30:(1.5)"; values may use t, max_f, s, sin, ...')
]
MaxFrames = Annotated[int, Range(1, MAX_FRAMES), Doc("frames in the animation (max_f = max_frames - 1)")]


def _node_schedule(schedule: Any, input_name: str, **options: Any) -> Schedule:
    from nodegraph.errors import NodeInputError

    try:
        if isinstance(schedule, Schedule):
            return schedule
        return Schedule.parse(schedule, **options)
    except ScheduleError as exc:
        raise NodeInputError(input_name, str(exc), expected='a schedule such as "0:(1.0), 30:(1.5)"') from None


@node(category="schedule", name="ScheduleParse", output="schedule")
def schedule_parse(
    text: ScheduleText = "0:(1.0)",
    max_frames: MaxFrames = 120,
    interpolation: Interpolation = "linear",
    seed: Annotated[int, Range(0, 2**63 - 1), Doc("the value of s in formulas")] = 0,
) -> ScheduleT:
    """Parse a keyframe schedule once (and check it) for ScheduleValue and SchedulePlot."""
    return _node_schedule(text, "text", interpolation=interpolation, max_frames=max_frames, seed=seed)


class ScheduleValueOut(NamedTuple):
    value: float
    int_value: int


@node(category="schedule", name="ScheduleValue")
def schedule_value(
    schedule: str | ScheduleT = "0:(1.0)",
    frame: Annotated[int, Range(0, MAX_FRAMES)] = 0,
    max_frames: MaxFrames = 120,
    interpolation: Interpolation = "linear",
    seed: Annotated[int, Range(0, 2**63 - 1)] = 0,
) -> ScheduleValueOut:
    """The value of a schedule at one frame (a FLOAT, and rounded as an INT).

    A schedule from ScheduleParse keeps its own interpolation and seed; max_frames here
    sets max_f unless that schedule fixed it."""
    parsed = _node_schedule(schedule, "schedule", interpolation=interpolation, max_frames=max_frames, seed=seed)
    total = parsed.max_frames or max_frames
    try:
        value = parsed.at(frame, total)
    except ScheduleError as exc:
        from nodegraph.errors import NodeInputError

        raise NodeInputError("schedule", str(exc)) from None
    if not isinstance(value, float):
        from nodegraph.errors import NodeInputError

        raise NodeInputError("schedule", "a text schedule has no number value", expected="a number schedule")
    return ScheduleValueOut(value, int(math.floor(value + 0.5)))


@node(category="schedule", name="SchedulePlot", output_node=True, output="path")
def schedule_plot(
    ctx: RunContext,
    schedule: str | ScheduleT = "0:(1.0), 30:(1.5)",
    max_frames: MaxFrames = 120,
    interpolation: Interpolation = "linear",
    seed: Annotated[int, Range(0, 2**63 - 1)] = 0,
    filename: OutputFile = "schedule.png",
    title: str = "",
) -> str:
    """Plot a schedule's value over the frames as a PNG (keyframes marked)."""
    parsed = _node_schedule(schedule, "schedule", interpolation=interpolation, max_frames=max_frames, seed=seed)
    total = parsed.max_frames or max_frames
    if total > 100_000:
        from nodegraph.errors import NodeInputError

        raise NodeInputError("max_frames", "too many frames to plot", expected="<= 100000", got=str(total))
    try:
        ys = parsed.values(total)
        frames, _, _, _ = parsed._resolve(total)
    except ScheduleError as exc:
        from nodegraph.errors import NodeInputError

        raise NodeInputError("schedule", str(exc)) from None
    if parsed.kind != "number":
        from nodegraph.errors import NodeInputError

        raise NodeInputError("schedule", "only number schedules can be plotted")
    if not filename.lower().endswith(".png"):
        filename += ".png"
    path = ctx.output_path(filename, "filename")

    key_frames = [f for f in frames if f < total]
    save_line_plot(path, [("_value", range(total), ys, {"lw": 1.5}),
                          ("_keyframes", key_frames, [ys[f] for f in key_frames], {"marker": "o", "ms": 4, "ls": ""})],
                   xlabel="frame", ylabel="value", title=title or _short(parsed.text, 70), size=(6, 3))
    ctx.wrote(path)
    return str(path)
