"""The main screen: graph list on the left, inspector and picture on the right, the run
panel under the graph, lesson notes and a log in tabs.

Runs happen in a thread worker that drives the engine exactly as the CLI does
(`Executor.run(..., observers=[...], cancel=CancelToken())`); its events come back as
`EngineEvent` messages, so the screen never blocks and escape can cancel at any time."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog, TabbedContent, TabPane

from nodegraph.context import CancelToken, Roots
from nodegraph.errors import GraphError, NodeExecutionError, NodeInputError, NodegraphError
from nodegraph.events import (
    NodeCached,
    NodeFailed,
    NodeFinished,
    NodeProgress,
    NodeStarted,
    RunFinished,
    RunStarted,
)
from nodegraph.executor import Executor
from nodegraph.graph import Link
from nodegraph.registry import Registry
from nodegraph.validate import validate

from ..document import Document, compatible_node_types
from ..messages import EngineEvent, FramePlayed, InputAction, InputEdited, RunDone
from ..recent import load_recent, remember
from ..widgets.graph_view import GraphView
from ..widgets.image_preview import (
    PREVIEW_TYPES,
    ImagePreview,
    PictureRenderer,
    frame_count,
    frames_of,
    tensor_to_pil,
)
from ..widgets.inspector import Inspector
from ..widgets.lesson_panel import LessonPanel
from ..widgets.run_panel import RunPanel
from .help import HelpScreen
from .open_file import OpenFileScreen
from .picker import PickerScreen
from .text_prompt import TextPromptScreen

PREVIEW_INTERVAL = 0.2  # seconds between live previews converted in the worker
PROGRESS_INTERVAL = 0.05  # seconds between forwarded step events


class MainScreen(Screen):
    # The footer shows the keys a learner needs first and must fit 120 columns (the ^p
    # palette key takes 12 of them); every key, shown or not, is in help (?) and the palette.
    BINDINGS = [
        Binding("r", "run", "Run"),
        Binding("ctrl+r", "run", "Run (in a field too)", priority=True),
        Binding("R,shift+r", "run_until", "Run to here", show=False),
        Binding("escape", "cancel", "Cancel run"),
        Binding("i", "focus_inspector", "Edit inputs"),
        Binding("a", "add_node", "Add node"),
        Binding("c", "connect", "Connect", show=False),
        Binding("x", "disconnect", "Disconnect", show=False),
        Binding("d,delete", "delete_node", "Delete", show=False),
        Binding("t", "rename", "Rename (title)", show=False),
        Binding("u,ctrl+z", "undo", "Undo"),
        Binding("U,ctrl+y", "redo", "Redo", show=False),
        Binding("ctrl+s", "save", "Save"),
        Binding("S", "save_as", "Save as", show=False),
        Binding("o,ctrl+o", "open_file", "Open", show=False),
        Binding("f", "recent", "Recent files", show=False),
        Binding("l", "lessons", "Lessons"),
        Binding("n", "next_lesson", "Next lesson", show=False),
        Binding("p", "previous_lesson", "Previous lesson", show=False),
        Binding("m", "toggle_notes", "Notes / node", show=False),
        Binding("v", "play", "Play frames", show=False),
        Binding("D", "drawing", "Draw the graph", show=False),
        Binding("g", "focus_graph", "Back to graph", show=False),
        Binding("question_mark,f1", "help", "Help"),
    ]

    def __init__(
        self,
        document: Document,
        registry: Registry,
        roots: Roots,
        executor: Executor,
        lesson: int | None = None,
        picture_renderer: PictureRenderer | None = None,
    ) -> None:
        super().__init__()
        self.picture_renderer = picture_renderer  # None: half-blocks
        self.start_lesson = lesson  # opened once the screen is mounted
        self.document = document
        self.registry = registry
        self.roots = roots
        self.executor = executor
        self.lesson: Any = None
        self.problems: list = []
        self.node_errors: dict[str, tuple[str, str | None]] = {}
        self.signatures: dict[str, str] = {}
        self.live_previews: dict[str, Any] = {}
        self.cancel_token: CancelToken | None = None
        self.running = False
        self.last_result: Any = None
        self.last_checks: Any = None
        self.plan: list[str] = []  # node ids of the current run, in order
        self.playing: threading.Event | None = None  # set() stops the play-through

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield GraphView(id="graph")
                yield RunPanel(id="run")
            with Vertical(id="right"):
                with TabbedContent(id="tabs"):
                    with TabPane("Node", id="tab-node"):
                        yield Inspector(self.registry, self.roots, id="inspector")
                    with TabPane("Lesson", id="tab-lesson"):
                        yield LessonPanel(id="lesson")
                    with TabPane("Log", id="tab-log"):
                        yield RichLog(id="log", markup=False, wrap=True)
                yield ImagePreview(self.picture_renderer, id="preview")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#graph", GraphView).border_title = "graph (run order)"
        self.query_one("#run", RunPanel).border_title = "run"
        self.query_one("#inspector", Inspector).border_title = "inspector"
        self.query_one("#preview", ImagePreview).border_title = "picture"
        if self.start_lesson is None or not self.open_lesson(self.start_lesson):
            self.load(self.document, self.lesson)

    @property
    def graph_view(self) -> GraphView:
        return self.query_one("#graph", GraphView)

    @property
    def inspector(self) -> Inspector:
        return self.query_one("#inspector", Inspector)

    @property
    def selected(self) -> str | None:
        return self.graph_view.selected

    def log_line(self, text: str) -> None:
        self.query_one("#log", RichLog).write(text)

    # -- opening -----------------------------------------------------------------------------------
    def load(self, document: Document, lesson: Any = None) -> None:
        self.document = document
        self.lesson = lesson
        self.node_errors.clear()
        self.signatures.clear()
        self.live_previews.clear()
        view = self.graph_view
        view.statuses = {}
        view.new_nodes = set(lesson.new_nodes) if lesson is not None else set()
        self.query_one("#lesson", LessonPanel).show(lesson, sorted(view.new_nodes, key=_numeric))
        self.query_one("#run", RunPanel).files([])
        self._revalidate()
        view.show(document, select=document.run_order()[0] if document.graph.nodes else None)
        self._update_title()
        view.focus()

    def open_path(self, path: Path) -> bool:
        try:
            document = Document.open(path)
        except NodegraphError as exc:
            self.notify(str(exc), title="cannot open", severity="error", timeout=8)
            return False
        remember(path)
        self.load(document)
        self.notify(f"opened {path}")
        return True

    def open_lesson(self, number: int) -> bool:
        from nodegraph.lessons import load_lesson

        try:
            lesson = load_lesson(number)
            graph = lesson.graph()
            for folder in lesson.plugin_dirs():  # lesson 14 ships its own node
                self.registry.load_folder(folder)
        except NodegraphError as exc:
            self.notify(str(exc), title="cannot open lesson", severity="error", timeout=8)
            return False
        document = Document(graph, lesson.path)
        document.path = None  # never overwrite the packaged lesson: ctrl+s asks where to save
        self.load(document, lesson)
        self.query_one("#tabs", TabbedContent).active = "tab-lesson"
        return True

    def _update_title(self) -> None:
        doc = self.document
        name = str(doc.path) if doc.path else (f"lesson {self.lesson.number} (unsaved copy)" if self.lesson else "unsaved graph")
        self.title = doc.graph.meta.get("title") or "nodegraph"
        self.sub_title = name + ("  ● modified" if doc.dirty else "")

    # -- validation, refresh -----------------------------------------------------------------------
    def _revalidate(self) -> None:
        self.problems = validate(self.document.graph, self.registry, self.roots)
        self.graph_view.problem_nodes = {p.node_id for p in self.problems if p.node_id}

    def _problems_of(self, node_id: str | None) -> list:
        return [p for p in self.problems if p.node_id == node_id]

    async def _show_node(self, node_id: str | None) -> None:
        error, failed_input = self.node_errors.get(node_id, (None, None)) if node_id else (None, None)
        await self.inspector.show(self.document, node_id, error, failed_input, self._problems_of(node_id))
        self._show_preview(node_id)

    @on(GraphView.Selected)
    async def _selected(self, event: GraphView.Selected) -> None:
        await self._show_node(event.node_id)

    def _after_edit(self, select: str | None = None, touched: str | None = None, rebuild: bool = True) -> None:
        """Refresh everything an edit can change; results downstream of `touched` are stale."""
        view = self.graph_view
        if touched is not None and touched in self.document.graph.nodes:
            for node_id in {touched} | self.document.downstream(touched):
                view.statuses[node_id] = "pending"
                self.node_errors.pop(node_id, None)
        self._revalidate()
        if rebuild:
            view.show(self.document, select=select)  # posts Selected: the inspector follows
        else:  # an edit made in the inspector: keep its widgets (and the focus) as they are
            view.refresh_rows()
        self._update_title()

    # -- inspector messages ---------------------------------------------------------------------------
    @on(InputEdited)
    def _edited(self, event: InputEdited) -> None:
        self.document.set_literal(event.node_id, event.name, event.value)
        self.log_line(f"set #{event.node_id}.{event.name} = {event.value!r}")
        self._after_edit(touched=event.node_id, rebuild=False)

    @on(InputAction)
    def _row_action(self, event: InputAction) -> None:
        if event.action == "disconnect":
            self._disconnect(event.node_id, event.name)
        elif event.action == "connect":
            self._pick_source(event.node_id, [event.name])

    # -- running ----------------------------------------------------------------------------------------
    def action_run(self) -> None:
        """r, or ctrl+r from anywhere: a value still being typed is applied first, as enter would."""
        row = self.inspector.focused_row()
        if row is not None and not self.running and not self.inspector.commit(row, deliver=self._edited):
            self.notify("fix the refused value first (its reason is under it)", severity="warning")
            return
        self.start_run(None)

    def action_run_until(self) -> None:
        if self.selected is None:
            self.notify("select a node first", severity="warning")
            return
        self.start_run(self.selected)

    def start_run(self, until: str | None) -> None:
        if self.running:
            self.notify("a run is already going: escape cancels it", severity="warning")
            return
        self.running = True
        self.cancel_token = CancelToken()
        self.node_errors.clear()
        self.live_previews.clear()
        self.graph_view.statuses = {node_id: "pending" for node_id in self.document.graph.nodes}
        self.graph_view.refresh_rows()
        panel = self.query_one("#run", RunPanel)
        panel.status("validating…")
        panel.progress(0, 1)
        panel.files([])
        self._run_worker(self.document.graph.copy_deep(), until, self.cancel_token, self.lesson)

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _run_worker(self, graph, until: str | None, cancel: CancelToken, lesson: Any) -> None:
        """In a thread: run the engine, forwarding every event as a message."""
        last_preview = [0.0]

        last_progress = [0.0]

        def observe(event) -> None:
            preview = None
            if isinstance(event, NodeProgress):
                # Coalesce fast steps: the screen needs ~20 updates a second, not thousands.
                now = time.monotonic()
                last = event.step == event.total
                if not last and now - last_progress[0] < PROGRESS_INTERVAL:
                    return
                last_progress[0] = now
                if event.preview is not None and (last or now - last_preview[0] >= PREVIEW_INTERVAL):
                    last_preview[0] = now
                    try:
                        preview = tensor_to_pil(event.preview)
                    except Exception:
                        preview = None
            self.post_message(EngineEvent(event, preview))

        try:
            result = self.executor.run(graph, until=until, observers=[observe], cancel=cancel, raise_errors=False)
        except GraphError as exc:
            self.post_message(RunDone(problems=exc.problems))
            return
        except Exception as exc:  # an engine bug must not kill the UI
            self.post_message(RunDone(problems=[exc]))
            return
        checks = None
        if lesson is not None and lesson.checks and result.status == "ok" and until is None:
            from nodegraph.lessons import run_checks

            try:
                checks = run_checks(lesson, self.executor, graph)
            except Exception as exc:
                checks = exc
        self.post_message(RunDone(result=result, checks=checks))

    @on(EngineEvent)
    def _engine_event(self, message: EngineEvent) -> None:
        event = message.event
        view, panel = self.graph_view, self.query_one("#run", RunPanel)
        label = self._label(getattr(event, "node_id", ""))
        if isinstance(event, RunStarted):
            self.plan = list(event.plan)
            panel.progress(0, len(event.plan))
            panel.status(f"running {len(event.plan)} node(s)…")
            self.log_line(f"run {event.run_id}: plan {' → '.join(event.plan)}")
            return
        if isinstance(event, NodeStarted):
            view.statuses[event.node_id] = "running"
            panel.status(f"[{event.index + 1}/{event.total}] {label}…")
            panel.progress(event.index, event.total)
        elif isinstance(event, NodeProgress):
            panel.status(f"{label}: step {event.step}/{event.total} {event.text}".rstrip())
            panel.progress(event.step, event.total or None)
            if message.preview is not None:
                self.live_previews[event.node_id] = message.preview
                self.query_one("#preview", ImagePreview).show_pil(
                    message.preview, f"live: {label} step {event.step}/{event.total}"
                )
            return
        elif isinstance(event, NodeCached):
            view.statuses[event.node_id] = "cached"
            self.log_line(f"{label}: cached ({event.source})")
        elif isinstance(event, NodeFinished):
            view.statuses[event.node_id] = "done"
            self.log_line(f"{label}: done in {event.seconds:.2f}s")
            for path in event.files:
                self.log_line(f"  wrote {path}")
        elif isinstance(event, NodeFailed):
            view.statuses[event.node_id] = "error"
            self.node_errors[event.node_id] = describe_failure(event.error)
            self.log_line(f"{label}: FAILED: {event.error}")
        elif isinstance(event, RunFinished):
            panel.progress(len(event.executed) + len(event.cached), max(1, len(self.plan)))
        if isinstance(event, (NodeCached, NodeFinished)):
            done = sum(1 for n in self.plan if view.statuses.get(n) in ("done", "cached"))
            panel.progress(done, max(1, len(self.plan)))
        view.refresh_rows()

    @on(RunDone)
    async def _run_done(self, message: RunDone) -> None:
        self.running = False
        self.cancel_token = None
        view, panel = self.graph_view, self.query_one("#run", RunPanel)
        if message.problems:
            for problem in message.problems:
                node_id = getattr(problem, "node_id", None)
                if node_id in self.document.graph.nodes:
                    view.statuses[node_id] = "error"
                    self.node_errors.setdefault(node_id, (str(problem.message), problem.input))
            first = message.problems[0]
            panel.status(f"not run: {len(message.problems)} problem(s) in the graph: {first}", "bold red")
            panel.progress(0, 1)
            self.notify(str(first), title="the graph does not validate", severity="error", timeout=8)
            view.refresh_rows()
            failing = [getattr(p, "node_id", None) for p in message.problems if getattr(p, "node_id", None) in self.document.graph.nodes]
            await self._focus_failure(failing[0] if failing else None)
            return
        result = message.result
        self.last_result = result
        self.signatures = dict(result.signatures)
        panel.files(list(result.files))
        seconds = f"{result.seconds:.2f}s"
        if result.status == "ok":
            panel.status(f"done: {len(result.executed)} ran, {len(result.cached)} cached", "bold green")
            self.log_line(f"run done in {seconds}")
        elif result.status == "cancelled":
            for node_id, status in view.statuses.items():
                if status == "running":
                    view.statuses[node_id] = "pending"
            panel.status(f"cancelled after {seconds}", "bold yellow")
            self.notify("run cancelled")
        else:
            error = result.error
            panel.status(f"failed: {str(error).splitlines()[0]}", "bold red")
            self.notify(str(error).splitlines()[0], title="run failed", severity="error", timeout=8)
        view.refresh_rows()
        if message.checks is not None:
            self.last_checks = message.checks
            self.query_one("#lesson", LessonPanel).checks(message.checks)
        if result.status == "failed" and isinstance(result.error, NodeExecutionError):
            await self._focus_failure(result.error.node_id)
        else:
            self._show_preview(self.selected)

    async def _focus_failure(self, node_id: str | None) -> None:
        if node_id is None:
            return
        self.query_one("#tabs", TabbedContent).active = "tab-node"
        if self.selected == node_id:
            await self._show_node(node_id)
        else:
            self.graph_view.select(node_id)

    def action_cancel(self) -> None:
        if self.playing is not None:
            self._stop_playing()
        elif self.running and self.cancel_token is not None:
            self.cancel_token.cancel()
            self.query_one("#run", RunPanel).status("cancelling…", "bold yellow")
        else:
            self.graph_view.focus()

    # -- pictures ---------------------------------------------------------------------------------------
    def _show_preview(self, node_id: str | None) -> None:
        self._stop_playing()
        preview = self.query_one("#preview", ImagePreview)
        if node_id is None or node_id not in self.document.graph.nodes:
            preview.show_pil(None, "")
            return
        label = self._label(node_id)
        if node_id in self.live_previews and self.running:
            preview.show_pil(self.live_previews[node_id], f"live: {label}")
            return
        for source_id, output_name, type_name in self._picture_outputs(node_id):
            outputs = self._outputs_of(source_id)
            if outputs is not None and output_name in outputs:
                where = label if source_id == node_id else f"{label} ← {self._label(source_id)}.{output_name}"
                caption = f"{where}.{output_name}" if source_id == node_id else where
                if preview.show_value(outputs[output_name], type_name, caption):
                    return
        if self._picture_outputs(node_id):
            preview.show_pil(None, f"{label}: run the graph (r, ctrl+r) to see its picture")
        else:
            preview.show_pil(None, f"{label}: no picture output")

    def _picture_outputs(self, node_id: str) -> list[tuple[str, str, str]]:
        """(node id, output, port type) of the outputs worth drawing for this node: its own
        IMAGE/MASK/DEPTH/FLOW/FRAMES outputs, else the pictures linked into it (what a
        SaveImage saved, what a VideoEncode encoded)."""
        entry = self.document.graph.nodes[node_id]
        spec = self.registry.get(entry.type)
        if spec is None:
            return []
        own = [(node_id, o.name, o.type.name) for o in spec.outputs.values() if o.type.name in PREVIEW_TYPES]
        if own:
            return own
        linked = []
        for link in entry.links().values():
            source = self.document.graph.nodes.get(link.node_id)
            source_spec = self.registry.get(source.type) if source else None
            out = source_spec.outputs.get(link.output) if source_spec else None
            if out is not None and out.type.name in PREVIEW_TYPES:
                linked.append((link.node_id, link.output, out.type.name))
        return linked

    def action_drawing(self) -> None:
        from .drawing import DrawingScreen

        self.app.push_screen(DrawingScreen(self.document))

    # -- play-through of FRAMES ------------------------------------------------------------------------
    def action_play(self) -> None:
        """Play the selected node's frames (or the frames linked into it) at their fps."""
        if self.playing is not None:
            self._stop_playing()
            return
        if self.running:
            self.notify("wait for the run to finish", severity="warning")
            return
        node_id = self.selected
        for source_id, output_name, type_name in self._picture_outputs(node_id) if node_id else []:
            outputs = self._outputs_of(source_id) if type_name == "FRAMES" else None
            if outputs is not None and output_name in outputs:
                self.playing = threading.Event()
                self._play_worker(outputs[output_name], self._label(node_id), self.playing)
                return
        self.notify("nothing to play: select a node with FRAMES (after a run)", severity="warning")

    def _stop_playing(self) -> None:
        if self.playing is not None:
            self.playing.set()
            self.playing = None

    @work(thread=True, exclusive=True, group="play", exit_on_error=False)
    def _play_worker(self, frames: Any, label: str, stop: threading.Event) -> None:
        """In a thread: walk the frames at their fps (a frame loop's frames are read back
        from the cache, or rendered again if the cache let them go)."""
        fps = float(getattr(frames, "fps", None) or 12.0)
        total = frame_count(frames)
        shown = 0
        for index, frame in enumerate(frames_of(frames)):
            if stop.is_set():
                break
            started = time.monotonic()
            self.post_message(FramePlayed(tensor_to_pil(frame), index, total, label, stop))
            shown = index + 1
            stop.wait(max(0.0, 1.0 / fps - (time.monotonic() - started)))
        self.post_message(FramePlayed(None, shown, total, label, stop))

    @on(FramePlayed)
    def _frame_played(self, message: FramePlayed) -> None:
        if message.player is not self.playing:
            return  # a play-through that was stopped: its last frames arrive late
        preview = self.query_one("#preview", ImagePreview)
        of = f"/{message.total}" if message.total else ""
        if message.pil is not None:
            preview.show_pil(message.pil, f"{message.label} ▶ frame {message.index + 1}{of}  (v or escape stops)")
            return
        self.playing = None
        self.notify(f"played {message.index}{of} frames of {message.label}")

    def _outputs_of(self, node_id: str) -> dict | None:
        if self.running:  # the worker owns the executor's cache until the run ends
            return None
        if self.last_result is None or node_id not in self.signatures:  # not run since this graph was opened
            return None
        return self.executor.outputs_of(self.last_result, node_id)

    # -- editing ------------------------------------------------------------------------------------------
    def _label(self, node_id: str) -> str:
        return self.document.label(node_id) if node_id in self.document.graph.nodes else f"#{node_id}"

    def _guard(self) -> bool:
        """Edits wait for the run to end (the worker runs a copy, but statuses would lie)."""
        if self.running:
            self.notify("wait for the run to finish (escape cancels it)", severity="warning")
            return False
        return True

    def action_add_node(self) -> None:
        if self._guard():
            self._pick_node_type(None, None)

    def _pick_node_type(self, node_id: str | None, input_name: str | None) -> None:
        types = None
        title = "Add a node"
        if node_id is not None and input_name is not None:
            spec = self.registry.get(self.document.graph.nodes[node_id].type)
            accepted = spec.inputs[input_name].types
            types = set(compatible_node_types(self.registry, accepted))
            title = f"Add a node feeding #{node_id}.{input_name} ({spec.inputs[input_name].type_names})"
        items = []
        for spec in self.registry:
            if types is not None and spec.type_name not in types:
                continue
            outs = ",".join(o.type.name for o in spec.outputs.values()) or "files"
            label = f"{spec.type_name:<20} {spec.category:<11} → {outs:<12} {spec.summary}"
            items.append((label if len(label) <= 84 else label[:83] + "…", spec.type_name))

        def added(type_name: str | None) -> None:
            if type_name is None:
                return
            feed = (node_id, input_name) if node_id is not None and input_name is not None else None
            new_id = self.document.add_node(type_name, self.registry, feed=feed)
            self.log_line(f"added #{new_id} {type_name}")
            self._after_edit(select=new_id, touched=node_id)

        self.app.push_screen(PickerScreen(title, items), added)

    def action_connect(self) -> None:
        if self._guard() and self.selected is not None:
            spec = self.registry.get(self.document.graph.nodes[self.selected].type)
            if spec is not None:
                self._pick_source(self.selected, list(spec.inputs))

    def _pick_source(self, node_id: str, inputs: list[str]) -> None:
        """Offer type-compatible outputs of nodes not downstream of `node_id` (so no link can
        make a cycle), and adding a new node for each input."""
        if not self._guard():
            return
        items: list[tuple[str, Any]] = []
        for name in inputs:
            for source_id, output in self.document.link_sources(node_id, name, self.registry):
                items.append((f"{name} ◀ {self._label(source_id)}.{output}", ("link", name, source_id, output)))
            items.append((f"{name} ◀ + add a new node…", ("add", name)))
        if not items:
            self.notify("this node has no inputs", severity="warning")
            return

        def chosen(choice: Any) -> None:
            if choice is None:
                return
            if choice[0] == "add":
                self._pick_node_type(node_id, choice[1])
                return
            _, name, source_id, output = choice
            self.document.connect(node_id, name, source_id, output)
            self.log_line(f"connected #{source_id}.{output} → #{node_id}.{name}")
            self._after_edit(select=node_id, touched=node_id)

        self.app.push_screen(PickerScreen(f"Connect an input of {self._label(node_id)}", items), chosen)

    def action_disconnect(self) -> None:
        if not self._guard() or self.selected is None:
            return
        node_id = self.selected
        linked = list(self.document.graph.nodes[node_id].links())
        if not linked:
            self.notify("no linked input to disconnect", severity="warning")
        elif len(linked) == 1:
            self._disconnect(node_id, linked[0])
        else:
            links = self.document.graph.nodes[node_id].links()
            items = [(f"{name} ◀ #{links[name].node_id}.{links[name].output}", name) for name in linked]
            self.app.push_screen(
                PickerScreen(f"Disconnect an input of {self._label(node_id)}", items),
                lambda name: name is not None and self._disconnect(node_id, name),
            )

    def _disconnect(self, node_id: str, name: str) -> None:
        if not self._guard():
            return
        value = self.document.graph.nodes[node_id].inputs.get(name)
        if not isinstance(value, Link):
            return
        self.document.disconnect(node_id, name, self.registry)
        self.log_line(f"disconnected #{node_id}.{name}")
        self._after_edit(select=node_id, touched=node_id)

    def action_delete_node(self) -> None:
        if not self._guard() or self.selected is None:
            return
        node_id = self.selected
        order = self.document.run_order()
        index = order.index(node_id)
        readers = self.document.downstream(node_id)
        label = self._label(node_id)
        self.document.delete_node(node_id, self.registry)
        rest = [n for n in order if n != node_id]
        for reader in readers:
            self.graph_view.statuses[reader] = "pending"
        self.log_line(f"deleted {label}")
        self.notify(f"deleted {label} (u undoes)")
        self._after_edit(select=rest[min(index, len(rest) - 1)] if rest else None)

    def action_rename(self) -> None:
        if not self._guard() or self.selected is None:
            return
        node_id = self.selected

        def renamed(title: str | None) -> None:
            if title is not None:
                self.document.rename(node_id, title.strip() or None)
                self._after_edit(select=node_id)

        current = self.document.graph.nodes[node_id].title or ""
        self.app.push_screen(TextPromptScreen(f"Title for #{node_id} (empty: none)", current), renamed)

    def action_undo(self) -> None:
        if self._guard():
            label = self.document.undo()
            self.notify(f"undid: {label}" if label else "nothing to undo")
            self._after_edit()

    def action_redo(self) -> None:
        if self._guard():
            label = self.document.redo()
            self.notify(f"redid: {label}" if label else "nothing to redo")
            self._after_edit()

    # -- files ----------------------------------------------------------------------------------------------
    def action_save(self) -> None:
        if self.document.path is None:
            self.action_save_as()
            return
        self._save_to(self.document.path)

    def action_save_as(self) -> None:
        default = str(self.document.path) if self.document.path else (
            f"lesson{self.lesson.number:02d}_{self.lesson.slug}.json" if self.lesson else "graph.json"
        )

        def chosen(name: str | None) -> None:
            if name:
                self._save_to(Path(name).expanduser())

        self.app.push_screen(TextPromptScreen("Save as (path of a .json file)", default, _check_save_path), chosen)

    def _save_to(self, path: Path) -> None:
        try:
            saved = self.document.save(path)
        except OSError as exc:
            self.notify(f"cannot save {path}: {exc}", severity="error")
            return
        remember(saved)
        self.notify(f"saved {saved}")
        self._update_title()

    def action_open_file(self) -> None:
        start = self.document.path.parent if self.document.path else Path.cwd()
        self.app.push_screen(OpenFileScreen(start), lambda path: path is not None and self.open_path(path))

    def action_recent(self) -> None:
        items = [(str(p), p) for p in load_recent() if p.exists()]
        if not items:
            self.notify("no recent files yet")
            return
        self.app.push_screen(PickerScreen("Recent graphs", items), lambda path: path is not None and self.open_path(path))

    # -- lessons ------------------------------------------------------------------------------------------
    def action_lessons(self) -> None:
        from nodegraph.lessons import list_lessons

        try:
            lessons = list_lessons()
        except NodegraphError as exc:
            self.notify(str(exc), severity="error")
            return
        items = [(f"{l.number:02d}  {l.title} — {l.summary}", l.number) for l in lessons]
        self.app.push_screen(
            PickerScreen("Lessons", items), lambda number: number is not None and self.open_lesson(number)
        )

    def _step_lesson(self, delta: int) -> None:
        from nodegraph.lessons import list_lessons

        numbers = [l.number for l in list_lessons()]
        if not numbers:
            self.notify("no lessons installed", severity="warning")
            return
        if self.lesson is None:
            target = numbers[0]
        else:
            later = [n for n in numbers if (n > self.lesson.number if delta > 0 else n < self.lesson.number)]
            if not later:
                self.notify("no next lesson" if delta > 0 else "this is the first lesson")
                return
            target = min(later) if delta > 0 else max(later)
        self.open_lesson(target)

    def action_next_lesson(self) -> None:
        if self._guard():
            self._step_lesson(+1)

    def action_previous_lesson(self) -> None:
        if self._guard():
            self._step_lesson(-1)

    # -- focus and help ---------------------------------------------------------------------------------------
    def action_toggle_notes(self) -> None:
        tabs = self.query_one("#tabs", TabbedContent)
        tabs.active = "tab-lesson" if tabs.active == "tab-node" else "tab-node"

    def action_focus_inspector(self) -> None:
        """Focus the first value field (ids `in-<input>`); the row buttons (disconnect, link…)
        only when the node has no value field, so an Enter after `i` never unlinks anything."""
        self.query_one("#tabs", TabbedContent).active = "tab-node"
        focusable = [widget for widget in self.inspector.query("*") if widget.focusable]
        fields = [widget for widget in focusable if (widget.id or "").startswith("in-")]
        if fields or focusable:
            (fields or focusable)[0].focus()

    def action_focus_graph(self) -> None:
        self.graph_view.focus()

    def action_help(self) -> None:
        sections = [
            ("Graph and run", list(self.BINDINGS)),
            ("Graph list", list(GraphView.BINDINGS)),
            ("Number inputs", NUMBER_KEYS),
            ("App", [b for b in self.app.BINDINGS if isinstance(b, Binding)]),
        ]
        self.app.push_screen(HelpScreen(sections))


NUMBER_KEYS = [
    Binding("plus,up", "", "step up (clamped to the range)"),
    Binding("minus,down", "", "step down"),
    Binding("enter", "", "apply the value (tab also applies; escape applies and goes back to the graph)"),
]


def describe_failure(error: Exception) -> tuple[str, str | None]:
    """(message, input name) for a NodeFailed error: which input was at fault, if known."""
    cause = getattr(error, "cause", None)
    text = str(error).splitlines()[0]
    if isinstance(cause, NodeInputError):
        return text, cause.input
    return text, None


def _check_save_path(name: str) -> str | None:
    if not name.strip():
        return "type a file name"
    path = Path(name).expanduser()
    if path.is_dir():
        return "that is a folder"
    if path.suffix != ".json":
        return "graph files end in .json"
    return None


def _numeric(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 30, node_id)
