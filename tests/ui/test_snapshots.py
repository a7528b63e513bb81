"""SVG snapshots (pytest-textual-snapshot) of the main screen, the inspector, the add-node
palette and an error state. Deterministic: relative paths (the working directory is a
temp folder), no timings on screen, no blinking cursors, notifications cleared.

Update after an intended visual change: pytest tests/ui/test_snapshots.py --snapshot-update"""

from __future__ import annotations

import pytest

from nodegraph.ui.app import NodegraphApp
from nodegraph.ui.widgets.number_input import NumberInput

from .helpers import finish_run, no_blink, select, settle

SIZE = (120, 40)


@pytest.fixture
def app(example_graph, builtin_registry, ui_roots, monkeypatch):
    monkeypatch.chdir(example_graph.parent)
    return NodegraphApp(example_graph.name, registry=builtin_registry, roots=ui_roots)


async def _quiet(pilot) -> None:
    await settle(pilot)
    pilot.app.clear_notifications()
    no_blink(pilot.app)
    await settle(pilot)


def test_main_screen_after_a_run(app, snap_compare):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("r")
        await finish_run(pilot)
        await select(pilot, "5")
        await _quiet(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_inspector_of_a_blend_node(app, snap_compare):
    async def run_before(pilot):
        await select(pilot, "5")
        factor = pilot.app.screen.query_one("#in-factor", NumberInput)
        factor.cursor_blink = False
        factor.focus()
        await pilot.press("+")  # 0.5 → 0.55: a step key
        await _quiet(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_add_node_palette_filtered(app, snap_compare):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        await pilot.press(*"Blend")
        await _quiet(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_error_state(app, snap_compare):
    async def run_before(pilot):
        await select(pilot, "2")
        width = pilot.app.screen.query_one("#in-width", NumberInput)
        width.focus()
        width.value = "32"
        await pilot.press("enter", "escape")
        await pilot.press("r")
        await finish_run(pilot)
        await _quiet(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_lesson_one_after_a_run(builtin_registry, ui_roots, tmp_path, monkeypatch, snap_compare):
    """Lesson 1 open, run, its checks passed: the README screenshot."""
    monkeypatch.chdir(tmp_path)
    app = NodegraphApp(registry=builtin_registry, roots=ui_roots, lesson=1)

    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("r")
        await finish_run(pilot)
        await select(pilot, "4")
        pilot.app.main_screen.query_one("#tabs").active = "tab-lesson"
        await _quiet(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
