"""A number field with step keys: `+`/`-` (or up/down) change the value by the input's
step, clamped to its range. Typing is restricted to characters a number can contain."""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widgets import Input

from nodegraph.node import InputSpec
from nodegraph.types import FLOAT


class NumberInput(Input):
    class Stepped(Message):
        def __init__(self, number_input: "NumberInput", value: float | int) -> None:
            super().__init__()
            self.number_input = number_input
            self.value = value

    def __init__(self, spec: InputSpec, value: object, **kwargs) -> None:
        self.spec = spec
        self.is_float = spec.types[0] is FLOAT
        text = "" if value is None else str(value)
        super().__init__(text, restrict=r"[-+0-9.eE]*", compact=True, **kwargs)

    @property
    def step(self) -> float | int:
        if self.spec.range is not None and self.spec.range.step:
            return self.spec.range.step
        return 0.1 if self.is_float else 1

    def parse(self) -> tuple[object, str | None]:
        """(value, reason) for the current text; reason is None when it parses."""
        text = self.value.strip()
        try:
            return (float(text) if self.is_float else int(text)), None
        except ValueError:
            return None, ("not a number" if self.is_float else "not an integer") + f": {text!r}"

    async def _on_key(self, event: events.Key) -> None:
        if event.key in ("plus", "up") or event.character == "+":
            event.stop()
            event.prevent_default()
            self._step(+1)
        elif event.key == "down" or (event.character == "-" and not self._typing_sign()):
            event.stop()
            event.prevent_default()
            self._step(-1)
        else:
            await super()._on_key(event)

    def _typing_sign(self) -> bool:
        """A '-' at the very start of an empty (or selected) field is a minus sign."""
        return self.value == "" or (self.cursor_position == 0 and not self.value.startswith("-"))

    def _step(self, direction: int) -> None:
        current, reason = self.parse()
        if reason is not None:
            current = self.spec.default if isinstance(self.spec.default, (int, float)) else 0
        value = current + direction * self.step
        if self.is_float:
            value = round(value, 10)
        else:
            value = int(value)
        if self.spec.range is not None:
            if self.spec.range.min is not None:
                value = max(value, self.spec.range.min)
            if self.spec.range.max is not None:
                value = min(value, self.spec.range.max)
        if not self.is_float:
            value = int(value)
        self.value = str(value)
        self.cursor_position = len(self.value)
        self.post_message(self.Stepped(self, value))
