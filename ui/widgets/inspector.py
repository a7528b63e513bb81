"""The inspector: a form for the selected node, generated from its NodeSpec.

Each input gets the control its schema asks for (as trogon builds forms from click
parameters): numbers → NumberInput with step keys, enums → Select, booleans → Switch,
seeds → NumberInput plus randomize, prompts → TextArea, files → Input checked against the
allowed roots, JSON → Input. A linked input shows its source and a disconnect button.

A value is checked with the engine's own `InputSpec.check_literal` (and `Roots`) before
it reaches the graph: an invalid value is refused in place, with the reason under it."""

from __future__ import annotations

import json
import random
from typing import Any, Callable

from rich.text import Text
from textual import on
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import DescendantBlur
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static, Switch, TextArea

from nodegraph.context import Roots
from nodegraph.graph import Link
from nodegraph.node import InputSpec, NodeSpec
from nodegraph.registry import Registry
from nodegraph.types import BOOL, FLOAT, INT, SEED, STRING, FileInput, FileOutput

from ..document import Document
from ..messages import InputAction, InputEdited
from .number_input import NumberInput

_UNSET = object()


def describe_input(spec: InputSpec) -> str:
    """'INT 1..8192 step 8 · how many steps' – the hint line under an input's name."""
    parts = [spec.type_names]
    if spec.range is not None:
        low = "" if spec.range.min is None else f"{spec.range.min:g}"
        high = "" if spec.range.max is None else f"{spec.range.max:g}"
        parts.append(f"{low}..{high}" + (f" step {spec.range.step:g}" if spec.range.step else ""))
    if isinstance(spec.file, FileInput):
        parts.append(f"file under the {spec.file.root} roots")
    elif isinstance(spec.file, FileOutput):
        parts.append("file under the output root")
    if spec.required:
        parts.append("required")
    if spec.doc:
        parts.append(spec.doc)
    return " · ".join(parts)


class InputRow(Vertical):
    """One input: name, hint, control, and a line for the reason a value was refused."""

    def __init__(self, node_id: str, spec: InputSpec, value: Any) -> None:
        super().__init__(id=f"row-{spec.name}", classes="input-row")
        self.node_id = node_id
        self.spec = spec
        self.value = value  # the literal currently in the graph (or the default), or a Link

    def compose(self):
        name = Text(self.spec.name, "bold")
        name.append(f"  {describe_input(self.spec)}", "dim")
        yield Label(name, classes="input-name")
        with Horizontal(classes="input-control"):
            yield from self._controls()
        yield Static("", classes="reason")

    def _controls(self):
        spec, value = self.spec, self.value
        kind = spec.types[0]
        cid = f"in-{spec.name}"
        if isinstance(value, Link):
            yield Static(Text(f"◀ #{value.node_id}.{value.output}", "magenta"), classes="link-source", id=cid)
            yield Button("disconnect", id=f"disconnect-{spec.name}", compact=True, classes="row-action")
            yield Button("relink…", id=f"connect-{spec.name}", compact=True, classes="row-action")
            return
        if not spec.accepts_literal:
            yield Static(Text("not connected", "italic red" if spec.required else "dim"), classes="link-source", id=cid)
        elif spec.choices is not None:
            options = [(choice, choice) for choice in spec.choices]
            selected = value if value in spec.choices else Select.NULL
            yield Select(options, value=selected, allow_blank=spec.optional or selected is Select.NULL, compact=True, id=cid)
        elif kind is BOOL:
            yield Switch(value=bool(value), id=cid)
        elif kind in (INT, FLOAT, SEED):
            yield NumberInput(spec, value, id=cid)
            if kind is SEED:
                yield Button("randomize", id=f"randomize-{spec.name}", compact=True, classes="row-action")
        elif spec.multiline:
            yield TextArea("" if value is None else str(value), id=cid, classes="prompt", soft_wrap=True)
        elif kind is STRING:
            yield Input("" if value is None else str(value), compact=True, id=cid)
        else:  # JSON and other literal types: typed as JSON
            yield Input("" if value is None else json.dumps(value), compact=True, id=cid)
        yield Button("link…", id=f"connect-{spec.name}", compact=True, classes="row-action")

    def refuse(self, reason: str | None) -> None:
        self.set_class(reason is not None, "-invalid")
        self.query_one(".reason", Static).update(Text(f"✗ {reason}", "bold red") if reason else "")

    def read(self) -> tuple[Any, str | None]:
        """The value the control holds now, and the reason it is refused (or None)."""
        control = self.query_one(f"#in-{self.spec.name}")
        if isinstance(control, NumberInput):
            return control.parse()
        if isinstance(control, Select):
            return (None if control.value is Select.NULL else control.value), None
        if isinstance(control, Switch):
            return control.value, None
        if isinstance(control, TextArea):
            return control.text, None
        if isinstance(control, Input):
            if self.spec.types[0] is STRING:
                return control.value, None
            if not control.value.strip():
                return None, None
            try:
                return json.loads(control.value), None
            except json.JSONDecodeError as exc:
                return None, f"not valid JSON: {exc.msg}"
        return _UNSET, None


class Inspector(VerticalScroll):
    """Shows one node. `show()` rebuilds the form; edits leave as InputEdited messages."""

    def __init__(self, registry: Registry, roots: Roots, **kwargs) -> None:
        super().__init__(**kwargs)
        self.registry = registry
        self.roots = roots
        self.node_id: str | None = None
        self.can_focus = False

    async def show(
        self,
        document: Document,
        node_id: str | None,
        error: str | None = None,
        failed_input: str | None = None,
        problems: list | None = None,
    ) -> None:
        self.node_id = node_id
        with self.app.batch_update():
            await self.remove_children()
            widgets = self._build(document, node_id, error, problems or [])
            await self.mount_all(widgets)
            for problem in problems or []:
                if problem.input:
                    self._refuse(problem.input, f"{problem.message}" + (f" (expected {problem.expected})" if problem.expected else ""))
            if failed_input:
                self._refuse(failed_input, error or "this input made the node fail")

    def _build(self, document: Document, node_id: str | None, error: str | None, problems: list) -> list[Widget]:
        if node_id is None or node_id not in document.graph.nodes:
            return [
                Static(
                    "[b]No node selected.[/b]\n\n"
                    "  [b]l[/b]  pick a lesson (start with lesson 1)\n"
                    "  [b]o[/b]  open a graph file      [b]f[/b]  recent files\n"
                    "  [b]a[/b]  add a node             [b]?[/b]  every key",
                    classes="empty",
                )
            ]
        entry = document.graph.nodes[node_id]
        spec: NodeSpec | None = self.registry.get(entry.type)
        title = Text(f"#{node_id} ", "bold")
        title.append(entry.title or entry.type, "bold")
        if entry.title:
            title.append(f"  {entry.type}", "dim")
        widgets: list[Widget] = [Label(title, id="node-title")]
        if spec is None:
            widgets.append(Static(Text(f"unknown node type {entry.type!r}", "bold red")))
            return widgets
        if spec.summary:
            widgets.append(Static(spec.summary, id="node-doc"))
        if error:
            widgets.append(Static(Text(f"✗ {error}", "bold red"), id="node-error"))
        for problem in problems:
            if not problem.input:
                widgets.append(Static(Text(f"⚠ {problem.message}", "red"), classes="node-problem"))
        for name, inp in spec.inputs.items():
            value = entry.inputs.get(name, inp.default if inp.has_default else None)
            widgets.append(InputRow(node_id, inp, value))
        outs = ", ".join(f"{o.name}: {o.type.name}" for o in spec.outputs.values()) or "(writes files)"
        widgets.append(Static(Text(f"outputs → {outs}", "dim"), id="node-outputs"))
        return widgets

    def _refuse(self, name: str, reason: str | None) -> None:
        rows = self.query(f"#row-{name}")
        if rows:
            rows.first(InputRow).refuse(reason)

    # -- committing values -----------------------------------------------------------------------
    def commit(self, row: InputRow, value: Any = _UNSET, deliver: Callable[[InputEdited], Any] | None = None) -> bool:
        """Check the row's value and send it on; refuse it in place when it is wrong.

        The edit leaves as a message, handled later; `deliver` hands it over at once instead
        (the run key applies a value still being typed before it copies the graph)."""
        if value is _UNSET:
            value, reason = row.read()
            if value is _UNSET:
                return False
        else:
            reason = None
        if reason is None:
            reason = self.reason(row.spec, value)
        row.refuse(reason)
        if reason is not None:
            return False
        if value != row.value or type(value) is not type(row.value):
            row.value = value
            (deliver or self.post_message)(InputEdited(row.node_id, row.spec.name, value))
        return True

    def reason(self, spec: InputSpec, value: Any) -> str | None:
        bad = spec.check_literal(value)
        if bad is not None:
            _, message, expected = bad
            return f"{message} (expected {expected})"
        if isinstance(value, str) and isinstance(spec.file, FileInput):
            return self.roots.check_read(value, spec.file.root)
        if isinstance(value, str) and isinstance(spec.file, FileOutput):
            return self.roots.check_write(value)
        return None

    @staticmethod
    def _row_of(widget: Widget) -> InputRow | None:
        for node in widget.ancestors_with_self:
            if isinstance(node, InputRow):
                return node
        return None

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        row = self._row_of(event.input)
        if row is not None:
            self.commit(row)

    @on(DescendantBlur)
    def _blurred(self, event: DescendantBlur) -> None:
        if isinstance(event.widget, (Input, TextArea)) and event.widget.is_attached:
            row = self._row_of(event.widget)
            if row is not None and row.is_attached:
                self.commit(row)

    @on(NumberInput.Stepped)
    def _stepped(self, event: NumberInput.Stepped) -> None:
        row = self._row_of(event.number_input)
        if row is not None:
            self.commit(row)

    @on(Select.Changed)
    def _selected(self, event: Select.Changed) -> None:
        row = self._row_of(event.select)
        if row is not None and event.value is not Select.NULL:
            self.commit(row)

    @on(Switch.Changed)
    def _switched(self, event: Switch.Changed) -> None:
        row = self._row_of(event.switch)
        if row is not None:
            self.commit(row)

    @on(Button.Pressed, ".row-action")
    def _row_button(self, event: Button.Pressed) -> None:
        event.stop()
        row = self._row_of(event.button)
        if row is None or event.button.id is None:
            return
        action = event.button.id.split("-", 1)[0]
        if action == "randomize":
            self.randomize(row)
        else:
            self.post_message(InputAction(row.node_id, row.spec.name, action))

    def randomize(self, row: InputRow) -> None:
        low = int(row.spec.range.min) if row.spec.range and row.spec.range.min is not None else 0
        high = int(row.spec.range.max) if row.spec.range and row.spec.range.max is not None else 2**32 - 1
        value = random.randint(low, high)
        self.query_one(f"#in-{row.spec.name}", NumberInput).value = str(value)
        self.commit(row, value)

    def focused_row(self) -> InputRow | None:
        focused = self.screen.focused
        return self._row_of(focused) if focused is not None else None

    def rows(self) -> list[InputRow]:
        return list(self.query(InputRow))
