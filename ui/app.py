"""The nodegraph TUI: open a graph or a lesson, edit it, run it, look at the pictures.

    nodegraph tui [GRAPH] [--images MODE]          (cli.py calls run_tui)

The app only wires things together: the engine objects (registry, roots, one Executor for
the whole session so its cache makes re-runs fast), how pictures are drawn (half-blocks
unless the user opted in to terminal graphics, see image_modes.py) and the main screen."""

from __future__ import annotations

import sys
from pathlib import Path

from textual.app import App
from textual.binding import Binding

from nodegraph.context import Roots
from nodegraph.errors import NodegraphError
from nodegraph.executor import Executor
from nodegraph.registry import Registry

from .commands import NodegraphCommands
from .document import Document
from .image_modes import HALFBLOCK, IMAGES_OPTION, ImageModeError, check_image_mode, choose_image_mode
from .recent import remember
from .screens.main import MainScreen
from .widgets.image_preview import picture_renderer_for


class NodegraphApp(App):
    TITLE = "nodegraph"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {NodegraphCommands}
    BINDINGS = [
        Binding("q,ctrl+q", "quit", "Quit"),
    ]

    def __init__(
        self,
        graph_path: str | Path | None = None,
        registry: Registry | None = None,
        roots: Roots | None = None,
        lesson: int | None = None,
        memory_budget_bytes: int | None = None,
        images: str = HALFBLOCK,
    ) -> None:
        """`images` is an image mode (image_modes.IMAGE_MODES); an unknown one raises
        ImageModeError. The environment is not read here: run_tui does that, so tests and
        snapshots always get half-blocks unless they ask otherwise."""
        super().__init__()
        # Built now, before the app runs: graphics modes query the terminal on import.
        self.picture_renderer = picture_renderer_for(check_image_mode(images, IMAGES_OPTION))
        if registry is None or roots is None:
            from nodegraph.config import load_config
            from nodegraph.registry import build_registry

            config = load_config()
            roots = roots or config.roots
            registry = registry or build_registry(config.plugins)
            memory_budget_bytes = memory_budget_bytes or config.memory_budget_bytes
        self.registry = registry
        self.roots = roots
        self.executor = Executor(registry, roots, memory_budget_bytes=memory_budget_bytes or 4 * 2**30)
        self.graph_path = Path(graph_path) if graph_path is not None else None
        self.start_lesson = lesson
        self.main_screen: MainScreen | None = None

    def get_default_screen(self) -> MainScreen:
        document = Document()
        if self.graph_path is not None:
            document = Document.open(self.graph_path)
            remember(self.graph_path)
        self.main_screen = MainScreen(
            document,
            self.registry,
            self.roots,
            self.executor,
            lesson=self.start_lesson,
            picture_renderer=self.picture_renderer,
        )
        return self.main_screen

    _quit_armed = False

    async def action_quit(self) -> None:
        """Quit; with unsaved changes, the first q only warns (a second q quits)."""
        screen = self.main_screen
        if screen is not None and screen.document.dirty and not self._quit_armed:
            self._quit_armed = True
            self.notify("unsaved changes: ctrl+s saves, q again quits without saving", severity="warning")
            return
        if screen is not None and screen.cancel_token is not None:
            screen.cancel_token.cancel()
        self.exit()


def run_tui(graph_path: str | None = None, images: str | None = None) -> int:
    """Start the TUI on `graph_path` (a file, or a packaged name such as lessons/01_images_as_tensors).
    `images` is the --images option; without it $NODEGRAPH_TUI_IMAGES, else half-blocks."""
    try:
        image_mode = choose_image_mode(images)
    except ImageModeError as exc:
        print(f"nodegraph: {exc}", file=sys.stderr)
        return 2
    path = None
    if graph_path is not None:
        from nodegraph.cli import resolve_graph_path

        try:
            path = resolve_graph_path(graph_path)
            Document.open(path)  # report a broken file here, not inside the full-screen app
        except NodegraphError as exc:
            print(f"nodegraph: {exc}", file=sys.stderr)
            return 2
    lesson = _lesson_number(path) if path is not None else None
    app = NodegraphApp(None if lesson is not None else path, lesson=lesson, images=image_mode)
    app.run()
    return 0


def _lesson_number(path: Path) -> int | None:
    """A packaged lesson opens as a lesson (notes, checks, and never saved over)."""
    try:
        from nodegraph.lessons import list_lessons

        for lesson in list_lessons():
            if lesson.path.resolve() == path.resolve():
                return lesson.number
    except Exception:
        return None
    return None
