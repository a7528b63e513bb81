"""How pictures are drawn: half-blocks by default, sixel or kitty graphics (textual-image)
when the user opts in with --images or $NODEGRAPH_TUI_IMAGES, and a clear refusal of an
unknown mode. textual-image is imported inside the tests that opt in, as the app does."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from PIL import Image
from textual.geometry import Region
from textual.widgets import Static

from nodegraph.ui.app import NodegraphApp, run_tui
from nodegraph.ui.image_modes import IMAGES_ENV, ImageModeError, choose_image_mode
from nodegraph.ui.widgets.image_preview import ImagePreview, tensor_to_pil

from .helpers import finish_run, select, settle

SIZE = (120, 40)
ALLOWED = "halfblock, sixel, kitty, auto"


async def _run_and_show_the_blend(pilot) -> tuple[ImagePreview, Image.Image]:
    """Run the example graph, select its BlendImages node (#5, a 64×64 IMAGE): the preview
    and the picture it was given."""
    await settle(pilot)
    await pilot.press("r")
    await finish_run(pilot)
    await select(pilot, "5")
    await settle(pilot)
    screen = pilot.app.main_screen
    source = tensor_to_pil(screen.executor.outputs_of(screen.last_result, "5")["image"])
    return screen.query_one("#preview", ImagePreview), source


def _drawn_text(widget) -> str:
    return "\n".join(strip.text for strip in widget.render_lines(Region(0, 0, *widget.region.size)))


def _assert_shows_the_picture_in_whole_cells(picture, source: Image.Image, cell_size: tuple[int, int]) -> None:
    """The textual-image widget holds the source picture enlarged (crisp, NEAREST) to exactly
    the cells it occupies: the same box the half-blocks use."""
    cell_width, cell_height = cell_size
    shown = picture.image
    assert picture.region.width * cell_width == shown.width
    assert picture.region.height * cell_height == shown.height
    assert (picture.region.width, picture.region.height) == (28, 14)  # 64×64 into the 66×14-cell box
    assert shown.resize(source.size, Image.Resampling.NEAREST).tobytes() == source.convert("RGB").tobytes()


async def test_default_mode_draws_half_blocks(example_graph, builtin_registry, ui_roots):
    app = NodegraphApp(example_graph, registry=builtin_registry, roots=ui_roots)
    async with app.run_test(size=SIZE) as pilot:
        preview, _ = await _run_and_show_the_blend(pilot)
        assert preview.renderer.mode == "halfblock"
        assert type(preview.picture) is Static
        assert preview.has_image and "#5 BlendImages.image  64×64" in preview.caption
        drawn = _drawn_text(preview.picture)
        assert "▀" in drawn or "▄" in drawn
        assert len([line for line in drawn.splitlines() if line.strip()]) == 14  # 64×64 px → 28 px tall → 14 rows


@pytest.mark.parametrize("mode", ["sixel", "kitty"])
async def test_graphics_mode_mounts_the_textual_image_widget(mode, example_graph, builtin_registry, ui_roots):
    from textual_image.renderable import TGPImage as TGPRenderable
    from textual_image.widget import SixelImage, TGPImage

    app = NodegraphApp(example_graph, registry=builtin_registry, roots=ui_roots, images=mode)
    async with app.run_test(size=SIZE) as pilot:
        preview, source = await _run_and_show_the_blend(pilot)
        assert preview.renderer.mode == mode
        assert preview.has_image and "#5 BlendImages.image  64×64" in preview.caption
        assert "#5 BlendImages.image  64×64" in _drawn_text(preview.caption_line)
        picture = preview.picture
        assert picture.parent is preview and picture.display
        _assert_shows_the_picture_in_whole_cells(picture, source, preview.renderer.cell_size)
        if mode == "sixel":
            assert type(picture) is SixelImage
            (drawer,) = picture.children  # textual-image injects the sixels from a child widget
            drawn = "".join(segment.text for strip in drawer.render_lines(Region(0, 0, 28, 14)) for segment in strip)
            assert "\x1bP" in drawn and "q" in drawn  # a DCS sixel sequence
        else:
            assert type(picture) is TGPImage
            assert isinstance(picture._renderable, TGPRenderable)
            assert "\U0010eeee" in _drawn_text(picture)  # kitty's Unicode placeholders
        # no picture: only the caption stays
        preview.show_pil(None, "#5 BlendImages: no picture")
        await settle(pilot)
        assert not preview.has_image and picture.image is None and not picture.display


async def test_auto_mode_without_a_terminal_falls_back_to_half_blocks(example_graph, builtin_registry, ui_roots):
    if sys.__stdout__ is not None and sys.__stdout__.isatty():
        pytest.skip("stdout is a terminal (pytest -s): auto would ask it for graphics support")
    app = NodegraphApp(example_graph, registry=builtin_registry, roots=ui_roots, images="auto")
    async with app.run_test(size=SIZE) as pilot:
        preview, _ = await _run_and_show_the_blend(pilot)
        assert preview.renderer.mode == "halfblock" and type(preview.picture) is Static


def test_the_option_wins_over_the_environment_which_wins_over_the_default():
    assert choose_image_mode(None, {}) == "halfblock"
    assert choose_image_mode(None, {IMAGES_ENV: "Sixel"}) == "sixel"
    assert choose_image_mode("kitty", {IMAGES_ENV: "sixel"}) == "kitty"
    assert choose_image_mode("auto", {IMAGES_ENV: "not-a-mode"}) == "auto"  # the option wins: env not read
    assert choose_image_mode(None, {IMAGES_ENV: ""}) == "halfblock"


def test_an_unknown_mode_is_refused_naming_the_option_and_the_allowed_values(builtin_registry, ui_roots, capsys):
    with pytest.raises(ImageModeError, match=f"--images: unknown image mode 'vga' \\(allowed: {ALLOWED}\\)"):
        NodegraphApp(registry=builtin_registry, roots=ui_roots, images="vga")
    assert run_tui(None, images="vga") == 2  # before anything starts, without a traceback
    err = capsys.readouterr().err
    assert err == f"nodegraph: --images: unknown image mode 'vga' (allowed: {ALLOWED})\n"


def test_an_unknown_mode_in_the_environment_is_refused_naming_the_variable(monkeypatch, capsys):
    monkeypatch.setenv(IMAGES_ENV, "ascii")
    assert run_tui(None) == 2
    assert capsys.readouterr().err == f"nodegraph: {IMAGES_ENV}: unknown image mode 'ascii' (allowed: {ALLOWED})\n"


def test_half_block_mode_never_imports_textual_image(tmp_path):
    """textual-image asks the terminal questions when imported: a default (headless) run must
    not import it at all. In a fresh interpreter, since this one may have imported it."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from pathlib import Path
        from nodegraph.context import Roots
        from nodegraph.registry import Registry
        from nodegraph.ui.app import NodegraphApp

        async def main():
            root = Path({str(tmp_path)!r})
            roots = Roots(inputs=[root], outputs=root, models=[root], cache=root)
            async with NodegraphApp(registry=Registry(), roots=roots).run_test() as pilot:
                await pilot.pause()
            print("textual_image imported:", "textual_image" in sys.modules)

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "textual_image imported: False" in done.stdout
