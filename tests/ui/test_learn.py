"""Lessons, help, command palette, open and recent files."""

from __future__ import annotations

from nodegraph.lessons import load_lesson
from nodegraph.ui.app import NodegraphApp
from nodegraph.ui.recent import load_recent
from nodegraph.ui.screens.help import HelpScreen
from nodegraph.ui.screens.open_file import OpenFileScreen
from nodegraph.ui.screens.picker import PickerScreen
from textual.widgets import Footer, Input, Markdown
from textual.widgets._footer import FooterKey

from .helpers import finish_run, settle, text_of

SIZE = (120, 40)


async def test_lesson_picker_notes_new_nodes_and_checks(builtin_registry, ui_roots):
    app = NodegraphApp(registry=builtin_registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("l")
        await settle(pilot)
        picker = app.screen
        assert isinstance(picker, PickerScreen)
        assert any("01  Images as tensors" in str(label) for label, _ in picker.items)
        await pilot.press("enter")
        await settle(pilot)
        screen = app.main_screen
        lesson = load_lesson(1)
        assert screen.lesson.number == 1
        assert screen.document.graph == lesson.graph()
        assert screen.document.path is None  # the packaged lesson is never overwritten
        assert screen.query_one("#tabs").active == "tab-lesson"
        notes = screen.query_one("#lesson-notes", Markdown)
        assert "Images as tensors" in notes.source
        assert "✚new" in str(screen.graph_view.get_option(lesson.new_nodes[0]).prompt)
        assert "New in this step" in text_of(screen.query_one("#lesson-head"))
        await pilot.press("r")
        await finish_run(pilot)
        assert screen.last_result.status == "ok"
        assert screen.last_checks and all(check.passed for check in screen.last_checks)
        checks = text_of(screen.query_one("#lesson-checks"))
        assert f"Checks: {len(lesson.checks)}/{len(lesson.checks)} passed" in checks
        await pilot.press("p")  # there is no lesson before 1
        assert screen.lesson.number == 1


async def test_help_lists_every_key_and_palette_runs_actions(example_graph, builtin_registry, ui_roots):
    app = NodegraphApp(example_graph, registry=builtin_registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        shown = " ".join(str(b.description) for _, bindings in app.screen.sections for b in bindings)
        for binding in app.main_screen.BINDINGS:
            assert binding.description in shown
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*"Add node")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PickerScreen) and app.screen.title_text == "Add a node"


async def test_open_file_and_recent(example_graph, builtin_registry, ui_roots, tmp_path):
    app = NodegraphApp(registry=builtin_registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not app.main_screen.document.graph.nodes
        await pilot.press("o")
        await settle(pilot)
        assert isinstance(app.screen, OpenFileScreen)
        app.screen.query_one("#open-path", Input).value = str(example_graph)
        app.screen.query_one("#open-path", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert len(app.main_screen.document.graph.nodes) == 6
        assert load_recent()[0] == example_graph.resolve()
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, PickerScreen)
        assert app.screen.items[0][1] == example_graph.resolve()


def test_run_tui_reports_a_missing_graph_without_starting(capsys):
    from nodegraph.ui.app import run_tui

    assert run_tui("no/such/graph.json") == 2
    assert "no graph file" in capsys.readouterr().err



async def test_lesson_with_a_plugin_node_opens_valid(ui_roots):
    """Lesson 14 uses a node from its own plugin folder: opening it loads that folder."""
    from nodegraph.registry import Registry, load_builtin_nodes

    builtins = load_builtin_nodes()  # other tests may already have run lesson 14 into it
    registry = Registry()
    registry.include(builtins, categories=tuple({s.category for s in builtins} - {"lesson"}))
    assert registry.get("Posterize") is None
    app = NodegraphApp(registry=registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.main_screen
        assert screen.open_lesson(14)
        await settle(pilot)
        assert registry.get("Posterize") is not None
        assert screen.lesson.number == 14
        assert screen.problems == []


async def test_graph_drawing_shows_every_node_from_the_final_ones_back(builtin_registry, ui_roots):
    from nodegraph.ui.screens.drawing import DrawingScreen
    from textual.geometry import Region

    app = NodegraphApp(registry=builtin_registry, roots=ui_roots, lesson=1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("D")
        await settle(pilot)
        assert isinstance(app.screen, DrawingScreen)
        box = app.screen.query_one("#help").region  # centred on an opaque screen, as help is
        assert abs(box.x - (SIZE[0] - box.right)) <= 1 and abs(box.y - (SIZE[1] - box.bottom)) <= 1
        assert app.screen.styles.background.a == 1
        drawn = "\n".join(line.text for line in app.screen.query_one("#drawing").render_lines(Region(0, 0, 118, 60)))
        graph = app.main_screen.document.graph
        for node_id in graph.nodes:
            assert f"#{node_id} " in drawn
        # lesson 1: the resized house (#2) feeds the blend and both distances; drawn once, then referred to
        assert drawn.count("#2 ") >= 2 and "↑ above" in drawn
        assert "image_a ◀ .image #2" in drawn
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, DrawingScreen)


async def test_footer_fits_120_columns_and_shows_the_main_keys(builtin_registry, ui_roots):
    """At 120 columns nothing in the key bar is cut off, and the keys a learner needs first
    (run, edit inputs, save, lessons, help, quit) are in it; the rest stay in help (?)."""
    app = NodegraphApp(registry=builtin_registry, roots=ui_roots, lesson=1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, 3)
        footer = app.screen.query_one(Footer)
        assert footer.virtual_size.width <= footer.size.width
        palette = next(key for key in footer.query(FooterKey) if key.action == "command_palette")
        shown = {}
        for key in footer.query(FooterKey):
            if key is not palette:
                assert key.region.right <= palette.region.x, f"{key.key_display} {key.description} is hidden"
                shown[key.action] = f"{key.key_display} {key.description}"
        assert shown["run"] == "r Run"
        assert shown["focus_inspector"] == "i Edit inputs"
        assert shown["save"] == "^s Save"
        assert shown["lessons"] == "l Lessons"
        assert shown["help"] == "? Help"
        assert shown["quit"].endswith(" Quit")


async def test_lesson_tab_says_how_to_reach_the_inspector(builtin_registry, ui_roots):
    """The Lesson tab hides the inspector: its head names the keys that bring it back."""
    app = NodegraphApp(registry=builtin_registry, roots=ui_roots, lesson=1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.main_screen
        tabs = screen.query_one("#tabs")
        assert tabs.active == "tab-lesson"
        head = text_of(screen.query_one("#lesson-head"))
        assert "i: edit the selected node" in head and "m: node / notes" in head
        await pilot.press("down")
        await pilot.press("i")
        await settle(pilot)
        assert tabs.active == "tab-node" and screen.focused.id == "in-width"  # #2 ResizeImage
        await pilot.press("escape", "m")
        assert tabs.active == "tab-lesson"
        await pilot.press("m")
        assert tabs.active == "tab-node"
