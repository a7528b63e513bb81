"""Running from the TUI: the same Executor and events as the CLI, in a thread worker."""

from __future__ import annotations

import asyncio

from nodegraph.ui.app import NodegraphApp
from nodegraph.ui.widgets.image_preview import ImagePreview
from nodegraph.ui.widgets.inspector import InputRow
from nodegraph.ui.widgets.number_input import NumberInput

from .helpers import finish_run, select, settle, text_of

SIZE = (120, 40)


async def wait_until(pilot, condition, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await pilot.pause(0.02)


async def test_run_to_completion_lists_files_and_previews(example_graph, builtin_registry, ui_roots):
    app = NodegraphApp(example_graph, registry=builtin_registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await finish_run(pilot)
        screen = app.main_screen
        assert screen.last_result.status == "ok"
        assert set(screen.graph_view.statuses.values()) == {"done"}
        assert str(screen.graph_view.get_option("6").prompt).startswith("● #6")
        written = screen.last_result.files
        assert len(written) == 1 and written[0].exists()
        assert written[0].name in text_of(screen.query_one("#run-files"))
        # the picture of the selected node, drawn with half-blocks
        await select(pilot, "5")
        preview = screen.query_one("#preview", ImagePreview)
        assert preview.has_image and "#5 BlendImages.image  64×64" in preview.caption
        await select(pilot, "6")  # SaveImage shows the picture it saved
        assert preview.has_image and "#6 SaveImage ← #5 BlendImages.image" in preview.caption
        # a second run reuses everything from the session's cache
        await pilot.press("r")
        await finish_run(pilot)
        assert set(screen.graph_view.statuses.values()) == {"cached"}
        # run up to the selected node only
        await select(pilot, "2")
        await pilot.press("R")
        await finish_run(pilot)
        assert screen.last_result.plan == ["1", "2"]


async def test_ctrl_r_runs_from_a_value_field_with_the_typed_value(example_graph, builtin_registry, ui_roots):
    """r types into a field; ctrl+r runs from anywhere, and what was typed is applied first."""
    import torch

    app = NodegraphApp(example_graph, registry=builtin_registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "5")
        factor = app.screen.query_one("#in-factor", NumberInput)
        factor.focus()
        factor.value = ""
        await pilot.press("0")  # typed, not applied with enter
        await pilot.press("ctrl+r")
        await finish_run(pilot)
        screen = app.main_screen
        assert screen.focused is factor
        assert screen.last_result is not None and screen.last_result.status == "ok"
        assert screen.document.graph.nodes["5"].inputs["factor"] == 0.0
        blend = screen.executor.outputs_of(screen.last_result, "5")["image"]
        assert torch.equal(blend, screen.executor.outputs_of(screen.last_result, "4")["image"])  # factor 0: all A
        assert set(screen.graph_view.statuses.values()) == {"done"}


async def test_many_written_files_end_with_how_many_more_are_in_the_log(builtin_registry, ui_roots, tmp_path, monkeypatch):
    """#run-files has room for 3 lines under its header: past that, the last says how many
    more there are, and the Log tab lists every one."""
    from nodegraph.graph import Graph, save_graph
    from textual.widgets import RichLog

    monkeypatch.chdir(tmp_path)  # paths are shown relative to the working directory
    graph = Graph.model_validate({"format": "nodegraph/1", "nodes": {
        "1": {"type": "WorldMovingScene", "inputs": {"seed": 3, "frames": 6, "size": 16, "n_objects": 1}},
        "2": {"type": "SaveFrames", "inputs": {"frames": {"from": ["1", "frames"]}, "folder": "seq"}},
    }})
    app = NodegraphApp(save_graph(graph, tmp_path / "frames.json"), registry=builtin_registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await finish_run(pilot)
        screen = app.main_screen
        written = screen.last_result.files
        assert len(written) == 6
        files = screen.query_one("#run-files")
        lines = text_of(files).splitlines()
        assert lines[0] == "wrote 6 file(s):"
        assert [line.strip() for line in lines[1:3]] == ["output/seq/frame_00000.png", "output/seq/frame_00001.png"]
        assert lines[3].strip() == "… 4 more (see the Log tab)"
        assert len(lines) == 4 and files.region.height == 4  # every line on screen
        screen.query_one("#tabs").active = "tab-log"  # the log draws what it was sent once shown
        await settle(pilot)
        log = "".join(line.text for line in screen.query_one("#log", RichLog).lines)  # long lines are folded
        assert all(f"wrote {path}" in log for path in written)


async def test_error_is_shown_on_the_failed_node_naming_the_input(example_graph, builtin_registry, ui_roots):
    app = NodegraphApp(example_graph, registry=builtin_registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "2")
        width = app.screen.query_one("#in-width", NumberInput)
        width.focus()
        width.value = "32"
        await pilot.press("enter", "escape")
        await pilot.press("r")
        await finish_run(pilot)
        screen = app.main_screen
        assert screen.last_result.status == "failed"
        assert screen.graph_view.statuses["5"] == "error"
        assert screen.graph_view.selected == "5"  # the view jumps to the failure
        error = text_of(screen.query_one("#node-error"))
        assert "input 'image_b'" in error and "sizes differ" in error
        row = screen.query_one("#row-image_b", InputRow)
        assert row.has_class("-invalid")
        assert "failed" in text_of(screen.query_one("#run-status"))


async def test_invalid_graph_is_not_run_and_problems_are_shown(example_graph, builtin_registry, ui_roots):
    app = NodegraphApp(example_graph, registry=builtin_registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, "4")
        await pilot.press("x")  # #4 loses its required image input
        await settle(pilot)
        await pilot.press("r")
        await finish_run(pilot)
        screen = app.main_screen
        assert screen.last_result is None
        assert screen.graph_view.statuses["4"] == "error"
        assert "not run" in text_of(screen.query_one("#run-status"))
        assert "required input is missing" in text_of(screen.query_one("#row-image .reason"))


async def test_cancel_mid_run_and_live_preview(slow_graph, slow_registry, ui_roots):
    app = NodegraphApp(slow_graph, registry=slow_registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.main_screen
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.live_previews.get("1") is not None)
        preview = screen.query_one("#preview", ImagePreview)
        assert preview.has_image and preview.caption.startswith("live: #1 SlowImage step")
        assert "step" in text_of(screen.query_one("#run-status"))
        await pilot.press("escape")
        await finish_run(pilot)
        assert screen.last_result.status == "cancelled"
        assert screen.graph_view.statuses["1"] == "pending"
        assert "cancelled" in text_of(screen.query_one("#run-status"))
        assert not screen.running


async def test_keys_are_handled_while_a_long_run_goes_on(slow_graph, slow_registry, ui_roots):
    app = NodegraphApp(slow_graph, registry=slow_registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.main_screen
        await pilot.press("r")
        await wait_until(pilot, lambda: screen.graph_view.statuses.get("1") == "running")
        await pilot.press("down")
        await pilot.press("m")  # switch to the lesson tab and back
        assert screen.graph_view.selected == "2"
        assert screen.query_one("#tabs").active == "tab-lesson"
        assert screen.running and screen.graph_view.statuses["1"] == "running"  # the run still goes on
        await pilot.press("a")  # edits wait for the run: refused with a notice, not blocked
        assert screen.document.graph.nodes.keys() == {"1", "2"}
        await pilot.press("escape")
        await finish_run(pilot)
        assert screen.last_result.status == "cancelled"


async def test_flow_and_frames_previews_and_play_through(builtin_registry, ui_roots, tmp_path):
    from nodegraph.graph import Graph, save_graph

    graph = Graph.model_validate({"format": "nodegraph/1", "nodes": {
        "1": {"type": "WorldMovingScene", "inputs": {"seed": 3, "frames": 5, "size": 32, "n_objects": 1}},
        "2": {"type": "VideoEncode", "inputs": {"frames": {"from": ["1", "frames"]}, "filename": "moving.gif",
                                                "format": "gif", "fps": 25.0}},
    }})
    path = save_graph(graph, tmp_path / "moving.json")
    app = NodegraphApp(path, registry=builtin_registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await finish_run(pilot)
        screen = app.main_screen
        assert screen.last_result.status == "ok"
        preview = screen.query_one("#preview", ImagePreview)
        await select(pilot, "1")  # own outputs: the FRAMES come first
        assert preview.has_image and "#1 WorldMovingScene.frames" in preview.caption and "frame 1/5" in preview.caption
        screen.query_one("#preview", ImagePreview).show_value(
            screen.executor.outputs_of(screen.last_result, "1")["flows"], "FLOW", "flows")
        assert preview.has_image and "hue = direction" in preview.caption
        await select(pilot, "2")  # the encoder shows the frames it encoded, and plays them
        assert "#2 VideoEncode ← #1 WorldMovingScene.frames" in preview.caption
        await pilot.press("v")
        await wait_until(pilot, lambda: screen.playing is None)
        assert "played 5/5 frames" in str([n.message for n in app._notifications])
        assert "▶ frame 5/5" in preview.caption  # the last frame stays on screen
        # escape stops a play-through half way
        await pilot.press("v")
        assert screen.playing is not None
        await pilot.press("escape")
        assert screen.playing is None
        await select(pilot, "1")
        assert "frame 1/5" in preview.caption
