"""Files and folders written atomically (a temporary beside the target, then a rename) get
the permissions a plain open() / mkdir() would give them, and a file written over keeps
its own: mkstemp's 0600 and mkdtemp's 0700 must not leak into the user's files."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from nodegraph.cache import DiskCache
from nodegraph.context import CancelToken, RunContext, atomic_path, atomic_write
from nodegraph.graph import Graph, load_graph, save_graph
from nodegraph.nodes.video import save_frames


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def plain_file_mode(folder) -> int:
    """The mode open() gives a new file here: what an atomic write must match."""
    probe = folder / "plain"
    probe.write_bytes(b"")
    mode = mode_of(probe)
    probe.unlink()
    return mode


def plain_folder_mode(folder) -> int:
    probe = folder / "plain-dir"
    probe.mkdir()
    mode = mode_of(probe)
    probe.rmdir()
    return mode


def test_a_new_file_gets_the_mode_open_would_give_it(tmp_path):
    expected = plain_file_mode(tmp_path)
    assert expected == 0o666 & ~current_umask()
    with atomic_write(tmp_path / "a.bin") as handle:
        handle.write(b"x")
    with atomic_path(tmp_path / "b.png") as tmp:
        tmp.write_bytes(b"x")
    assert mode_of(tmp_path / "a.bin") == expected
    assert mode_of(tmp_path / "b.png") == expected


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o755, 0o600])
def test_writing_over_a_file_keeps_its_mode(tmp_path, mode):
    for name in ("a.bin", "b.png"):
        (tmp_path / name).write_bytes(b"old")
        os.chmod(tmp_path / name, mode)
    with atomic_write(tmp_path / "a.bin") as handle:
        handle.write(b"new")
    with atomic_path(tmp_path / "b.png") as tmp:
        tmp.write_bytes(b"new")
    for name in ("a.bin", "b.png"):
        assert (tmp_path / name).read_bytes() == b"new"
        assert mode_of(tmp_path / name) == mode


@pytest.mark.parametrize("mode", [0o644, 0o664])
def test_saving_over_a_graph_keeps_its_mode(tmp_path, mode):
    """The reported case: ctrl+s in the TUI (save_graph) turned a 0644 graph into 0600."""
    path = tmp_path / "graph.json"
    save_graph(Graph(), path)
    assert mode_of(path) == plain_file_mode(tmp_path)
    os.chmod(path, mode)
    save_graph(load_graph(path), path)
    assert mode_of(path) == mode


def test_folders_moved_into_place_get_the_mode_mkdir_would_give_them(roots):
    """SaveFrames' sequence and a disk-cache entry are built in a mkdtemp folder (0700)."""
    expected = plain_folder_mode(roots.outputs)
    assert expected == 0o777 & ~current_umask()
    ctx = RunContext("t", "T", roots, CancelToken())
    frames = [torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)]
    folder = save_frames(ctx, frames, "seq", "f_")
    assert mode_of(folder) == expected
    assert {mode_of(os.path.join(folder, name)) for name in os.listdir(folder)} == {plain_file_mode(roots.outputs)}
    cache = DiskCache(roots.cache)
    assert cache.put("ab" * 8, {"value": 3})
    assert mode_of(cache._folder("ab" * 8)) == expected
    # a trained model folder: new, then written again over one whose mode was changed
    from nodegraph.nodes.minisd import _atomic_folder

    model = roots.models[0] / "tiny"
    _atomic_folder(model, lambda staging: (staging / "config.json").write_text("{}"))
    assert mode_of(model) == expected
    os.chmod(model, 0o750)
    _atomic_folder(model, lambda staging: (staging / "config.json").write_text("{}"))
    assert mode_of(model) == 0o750
