"""Editing through the TUI: every assertion is on the Graph model (and what the screen says)."""

from __future__ import annotations

from nodegraph.graph import Link, load_graph
from nodegraph.ui.app import NodegraphApp
from nodegraph.ui.screens.picker import PickerScreen
from nodegraph.ui.screens.text_prompt import TextPromptScreen
from nodegraph.ui.widgets.inspector import InputRow
from nodegraph.ui.widgets.number_input import NumberInput
from textual.widgets import Input, Select

from .helpers import select, settle, text_of

SIZE = (120, 40)


def app_for(path, registry, roots) -> NodegraphApp:
    return NodegraphApp(path, registry=registry, roots=roots)


def graph_of(app):
    return app.main_screen.document.graph


async def test_open_graph_lists_nodes_in_run_order(example_graph, builtin_registry, ui_roots):
    app = app_for(example_graph, builtin_registry, ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        view = app.main_screen.graph_view
        assert [o.id for o in view.options] == ["1", "2", "3", "4", "5", "6"]
        row = str(view.get_option("5").prompt)
        assert row.startswith("○ #5 BlendImages") and "◀ #4.image" in row and "◀ #3.image" in row
        assert app.main_screen.inspector.node_id == "1"
        # [ and ] follow links: 5 reads #4 first; 4 is read by 5
        await select(pilot, "5")
        await pilot.press("left_square_bracket")
        assert view.selected == "4"
        await pilot.press("right_square_bracket")
        assert view.selected == "5"


async def test_edit_number_by_typing_and_step_keys(example_graph, builtin_registry, ui_roots):
    app = app_for(example_graph, builtin_registry, ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "2")
        width = app.screen.query_one("#in-width", NumberInput)
        width.focus()
        width.value = ""
        await pilot.press("3", "2", "enter")
        await settle(pilot)
        assert graph_of(app).nodes["2"].inputs["width"] == 32
        await pilot.press("+")  # step is 8 (Range(1, 8192, step=8))
        assert graph_of(app).nodes["2"].inputs["width"] == 40
        await pilot.press("-", "-")
        assert graph_of(app).nodes["2"].inputs["width"] == 24
        assert app.main_screen.document.dirty


async def test_invalid_value_is_refused_with_reason(example_graph, builtin_registry, ui_roots):
    app = app_for(example_graph, builtin_registry, ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "5")
        factor = app.screen.query_one("#in-factor", NumberInput)
        factor.focus()
        factor.value = "1.5"
        await pilot.press("enter")
        await settle(pilot)
        assert graph_of(app).nodes["5"].inputs["factor"] == 0.5  # unchanged
        row = app.screen.query_one("#row-factor", InputRow)
        assert row.has_class("-invalid")
        assert "outside the allowed range" in text_of(row.query_one(".reason"))
        # a path escaping the input roots is refused too
        await select(pilot, "1")
        path = app.screen.query_one("#in-path", Input)
        path.focus()
        path.value = "../../etc/passwd"
        await pilot.press("enter")
        await settle(pilot)
        assert graph_of(app).nodes["1"].inputs["path"] == "example.png"
        assert "escapes the allowed input roots" in text_of(app.screen.query_one("#row-path .reason"))
        assert not app.main_screen.document.can_undo


async def test_enum_select_sets_value(example_graph, builtin_registry, ui_roots):
    app = app_for(example_graph, builtin_registry, ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "5")
        app.screen.query_one("#in-mode", Select).value = "multiply"
        await settle(pilot)
        assert graph_of(app).nodes["5"].inputs["mode"] == "multiply"


async def test_disconnect_connect_and_no_cycles_offered(example_graph, builtin_registry, ui_roots):
    app = app_for(example_graph, builtin_registry, ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "4")
        await pilot.press("x")  # node 4 has one link: disconnect it directly
        await settle(pilot)
        assert "image" not in graph_of(app).nodes["4"].inputs
        assert "4" in app.main_screen.graph_view.problem_nodes  # required input now missing
        # connect: only type-compatible outputs of nodes not downstream of #4
        await pilot.press("c")
        await settle(pilot)
        picker = app.screen
        assert isinstance(picker, PickerScreen)
        offered = [value for _, value in picker.items if value[0] == "link"]
        sources = {value[2] for value in offered}
        assert sources == {"1", "2", "3"}  # 5 and 6 read from 4: linking them would make a cycle
        await pilot.press(*"#3", "enter")
        await settle(pilot)
        assert graph_of(app).nodes["4"].inputs["image"] == Link(source=("3", "image"))
        assert "4" not in app.main_screen.graph_view.problem_nodes


async def test_disconnect_from_inspector_button_restores_default(example_graph, builtin_registry, ui_roots):
    app = app_for(example_graph, builtin_registry, ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "5")
        await pilot.click("#disconnect-image_b")
        await settle(pilot)
        assert "image_b" not in graph_of(app).nodes["5"].inputs
        assert "not connected" in text_of(app.screen.query_one("#in-image_b"))


async def test_add_node_from_palette_and_from_an_input(example_graph, builtin_registry, ui_roots):
    app = app_for(example_graph, builtin_registry, ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press(*"ToGray", "enter")
        await settle(pilot)
        graph = graph_of(app)
        assert graph.nodes["7"].type == "ImageToGrayscale"
        assert app.main_screen.graph_view.selected == "7"
        # from an input: the palette only offers types whose outputs fit an IMAGE input
        await pilot.press("c")
        await settle(pilot)
        await pilot.press(*"new", "enter")
        await settle(pilot)
        picker = app.screen
        assert isinstance(picker, PickerScreen)
        types = {value for _, value in picker.items}
        assert "LoadImage" in types and "Int" not in types and "SaveImage" not in types
        await pilot.press(*"Load", "enter")
        await settle(pilot)
        graph = graph_of(app)
        assert graph.nodes["8"].type == "LoadImage"
        assert graph.nodes["8"].inputs == {"path": "example.png"}
        assert graph.nodes["7"].inputs["image"] == Link(source=("8", "image"))
        await pilot.press("u")  # add + connect is one undo step
        assert "8" not in graph_of(app).nodes and "image" not in graph_of(app).nodes["7"].inputs


async def test_delete_rename_undo_redo(example_graph, builtin_registry, ui_roots):
    app = app_for(example_graph, builtin_registry, ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        original = graph_of(app).copy_deep()
        await select(pilot, "3")
        await pilot.press("d")
        await settle(pilot)
        assert "3" not in graph_of(app).nodes
        assert "image_b" not in graph_of(app).nodes["5"].inputs
        await pilot.press("t")
        await settle(pilot)
        assert isinstance(app.screen, TextPromptScreen)
        prompt = app.screen.query_one("#prompt-input", Input)
        prompt.value = "mixer"
        await pilot.press("enter")
        await settle(pilot)
        selected = app.main_screen.graph_view.selected
        assert graph_of(app).nodes[selected].title == "mixer"
        await pilot.press("u")
        await pilot.press("u")
        await settle(pilot)
        assert graph_of(app) == original
        await pilot.press("U")
        await settle(pilot)
        assert "3" not in graph_of(app).nodes
        await pilot.press("ctrl+y")
        await settle(pilot)
        assert graph_of(app).nodes[selected].title == "mixer"
        await pilot.press("ctrl+z", "ctrl+z")
        assert graph_of(app) == original


async def test_save_round_trip(example_graph, builtin_registry, ui_roots, tmp_path):
    before = example_graph.read_bytes()
    app = app_for(example_graph, builtin_registry, ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert example_graph.read_bytes() == before  # unchanged graph: byte-identical
        await select(pilot, "2")
        app.screen.query_one("#in-height", NumberInput).focus()
        await pilot.press("+")
        await pilot.press("escape")  # back to the graph list
        await pilot.press("ctrl+s")
        await settle(pilot)
        after = example_graph.read_text()
        assert load_graph(example_graph) == graph_of(app)
        assert load_graph(example_graph).nodes["2"].inputs["height"] == 72
        changed = [line for a, line in zip(before.decode().splitlines(), after.splitlines()) if a != line]
        assert changed == ['        "height": 72,']
        # save as
        await pilot.press("S")
        await settle(pilot)
        target = tmp_path / "copy.json"
        app.screen.query_one("#prompt-input", Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        assert target.read_text() == after
        assert app.main_screen.document.path == target
        assert not app.main_screen.document.dirty


async def test_seed_bool_and_prompt_controls(tmp_path, builtin_registry, ui_roots):
    path = tmp_path / "prims.json"
    path.write_text(
        '{"format": "nodegraph/1", "meta": {}, "nodes": {'
        '"1": {"type": "Seed", "inputs": {"seed": 7}},'
        '"2": {"type": "Bool", "inputs": {"value": false}},'
        '"3": {"type": "String", "inputs": {"value": "a cat"}}}}\n'
    )
    app = app_for(path, builtin_registry, ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "1")
        await pilot.click("#randomize-seed")
        await settle(pilot)
        seed = graph_of(app).nodes["1"].inputs["seed"]
        assert isinstance(seed, int) and 0 <= seed < 2**32 and seed != 7  # 1 in 4e9 to collide
        assert app.screen.query_one("#in-seed", NumberInput).value == str(seed)
        await select(pilot, "2")
        await pilot.click("#in-value")  # a Switch
        await settle(pilot)
        assert graph_of(app).nodes["2"].inputs["value"] is True
        await select(pilot, "3")
        from textual.widgets import TextArea

        prompt = app.screen.query_one("#in-value", TextArea)
        prompt.focus()
        prompt.text = "a cat\nin the rain"
        await pilot.press("escape")  # leaving the field applies it
        await settle(pilot)
        assert graph_of(app).nodes["3"].inputs["value"] == "a cat\nin the rain"


async def test_quit_with_unsaved_changes_warns_first(example_graph, builtin_registry, ui_roots):
    app = app_for(example_graph, builtin_registry, ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "3")
        await pilot.press("d")
        await pilot.press("q")
        await settle(pilot)
        assert app.is_running  # warned, not quit
        await pilot.press("q")
        await settle(pilot)
        assert not app.is_running


def test_packaged_lesson_path_opens_as_a_lesson():
    from nodegraph.lessons import load_lesson
    from nodegraph.ui.app import _lesson_number

    assert _lesson_number(load_lesson(1).path) == 1


async def test_edit_inputs_key_focuses_the_first_value_field_not_a_button(builtin_registry, ui_roots):
    """Lesson 1, #4 BlendImages: its first two inputs are linked (disconnect buttons), so `i`
    must land on `factor`; an Enter right after must not break the graph."""
    app = NodegraphApp(registry=builtin_registry, roots=ui_roots, lesson=1)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "4")
        links = dict(graph_of(app).nodes["4"].links())
        await pilot.press("i")
        await settle(pilot)
        focused = app.screen.focused
        assert isinstance(focused, NumberInput) and focused.id == "in-factor"
        assert app.main_screen.query_one("#tabs").active == "tab-node"
        await pilot.press("enter")
        await settle(pilot)
        assert dict(graph_of(app).nodes["4"].links()) == links


async def test_edit_inputs_key_falls_back_to_a_button_when_every_input_is_linked(example_graph, builtin_registry, ui_roots):
    app = app_for(example_graph, builtin_registry, ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "6")  # SaveImage: image (linked) and filename_prefix (a value)
        await pilot.press("i")
        await settle(pilot)
        assert app.screen.focused.id == "in-filename_prefix"
        await select(pilot, "4")  # one input, linked: its buttons are all there is
        await pilot.press("i")
        await settle(pilot)
        assert app.screen.focused.id == "disconnect-image"
