"""Both plugin discovery paths, with the example plugins shipped under tests/plugins."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nodegraph import node
from nodegraph.errors import RegistryError
from nodegraph.registry import Registry

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


def test_folder_plugin_registers_its_nodes():
    registry = Registry()
    loaded = registry.load_folder(PLUGINS / "folder")
    assert loaded == ["posterize"]
    spec = registry.get("FolderPosterize")
    assert spec is not None and spec.source.startswith("plugin posterize")
    assert spec.inputs["levels"].range.min == 2


def test_entry_point_plugin_is_discovered(tmp_path, monkeypatch):
    # What `pip install tests/plugins/example_plugin` leaves in site-packages: a dist-info
    # folder with entry_points.txt. importlib.metadata reads it exactly as for a real install.
    dist = tmp_path / "ng_example_plugin-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ng-example-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[nodegraph.nodes]\nexample = ng_example_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(PLUGINS / "example_plugin"))
    monkeypatch.delitem(sys.modules, "ng_example_plugin", raising=False)
    registry = Registry()
    assert registry.load_entry_points() == ["example"]
    assert registry.get("ExampleInvert").source.startswith("plugin example")
    assert registry.get("ExampleScale").outputs["float"].type.name == "FLOAT"


def test_plugin_cannot_silently_replace_a_node(tmp_path):
    registry = Registry()
    with registry.loading("builtin"):

        @node(name="Twice")
        def twice(x: int) -> int:
            return 2 * x

    plugin = tmp_path / "clash.py"
    plugin.write_text(
        "from nodegraph import node\n"
        "@node(name='Twice')\n"
        "def my_twice(x: int) -> int:\n"
        "    return 3 * x\n"
    )
    with pytest.raises(RegistryError) as info:
        registry.load_folder(tmp_path)
    assert "Twice" in str(info.value) and "replace=True" in str(info.value)
    assert registry.get("Twice").run(x=2) == 4


def test_plugin_may_replace_when_it_opts_in(tmp_path):
    registry = Registry()
    with registry.loading("builtin"):

        @node(name="Twice")
        def twice(x: int) -> int:
            return 2 * x

    (tmp_path / "override.py").write_text(
        "from nodegraph import node\n"
        "@node(name='Twice', replace=True)\n"
        "def better_twice(x: int) -> int:\n"
        "    return x + x\n"
    )
    registry.load_folder(tmp_path)
    assert registry.get("Twice").source.startswith("plugin override")


def test_broken_plugin_gives_a_clear_error(tmp_path):
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(RegistryError) as info:
        Registry().load_folder(tmp_path)
    assert "broken.py" in str(info.value) and "not_a_module_anywhere" in str(info.value)


def test_unannotated_input_is_refused_at_registration():
    registry = Registry()
    with pytest.raises(RegistryError) as info:

        @node(registry=registry)
        def sloppy(x) -> int:
            return x

    assert "needs a type annotation" in str(info.value)


def test_bad_default_is_refused_at_registration():
    from typing import Annotated

    from nodegraph import Range

    registry = Registry()
    with pytest.raises(RegistryError):

        @node(registry=registry)
        def odd(x: Annotated[int, Range(0, 10)] = 11) -> int:
            return x
