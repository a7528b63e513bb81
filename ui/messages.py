"""Messages the UI passes around. Engine events arrive from the run worker's thread
wrapped in `EngineEvent` (post_message is thread-safe), so the engine never knows who is
watching; the widgets only ever see these."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from nodegraph.events import Event


class EngineEvent(Message):
    """One event of a run (RunStarted, NodeStarted, NodeProgress, ...)."""

    def __init__(self, event: Event, preview: Any = None) -> None:
        super().__init__()
        self.event = event
        self.preview = preview  # a PIL image made in the worker thread from NodeProgress.preview


class RunDone(Message):
    """The run worker finished: `result` is the engine's RunResult, or `problems` (a graph
    that did not validate), plus the lesson's check results when a lesson is open."""

    def __init__(self, result: Any = None, problems: list | None = None, checks: list | None = None) -> None:
        super().__init__()
        self.result = result
        self.problems = problems or []
        self.checks = checks


class FramePlayed(Message):
    """The play-through worker made the picture of frame `index` (0-based) of `total`;
    `pil` is None when the play-through ended (`index` frames were shown)."""

    def __init__(self, pil: Any, index: int, total: int | None, label: str, player: Any) -> None:
        super().__init__()
        self.pil, self.index, self.total, self.label = pil, index, total, label
        self.player = player  # the play-through this frame belongs to (its stop event)


class InputEdited(Message):
    """The inspector wants `node_id`.`name` set to a literal `value` (already checked)."""

    def __init__(self, node_id: str, name: str, value: Any) -> None:
        super().__init__()
        self.node_id = node_id
        self.name = name
        self.value = value


class InputAction(Message):
    """A button on an inspector row: action is "connect", "disconnect" or "add"."""

    def __init__(self, node_id: str, name: str, action: str) -> None:
        super().__init__()
        self.node_id = node_id
        self.name = name
        self.action = action
