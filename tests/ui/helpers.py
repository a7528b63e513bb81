"""Small helpers shared by the TUI tests."""

from __future__ import annotations


async def settle(pilot, rounds: int = 2) -> None:
    """Let queued messages (selection → inspector rebuild) run."""
    for _ in range(rounds):
        await pilot.pause()


async def select(pilot, node_id: str) -> None:
    await pilot.pause()
    pilot.app.main_screen.graph_view.select(node_id)
    pilot.app.main_screen.graph_view.focus()
    await settle(pilot)


async def finish_run(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await settle(pilot)


def text_of(widget) -> str:
    """Plain text a Static currently shows."""
    return str(widget.render())


def no_blink(app) -> None:
    for widget in app.screen.query("Input, TextArea"):
        widget.cursor_blink = False
