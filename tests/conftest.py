"""Shared test set-up: no network, deterministic, everything under tmp dirs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from nodegraph.context import Roots  # noqa: E402
from nodegraph.registry import load_builtin_nodes  # noqa: E402


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models are far too small to gain from threads, and on a shared 2-core machine
    torch's spinning worker threads make every call 10x slower. Restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def roots(tmp_path):
    """Input/output/model roots inside a temp dir."""
    made = Roots(
        inputs=[tmp_path / "input"],
        outputs=tmp_path / "output",
        models=[tmp_path / "models"],
        cache=tmp_path / "cache",
    )
    for folder in (*made.inputs, made.outputs, *made.models, made.cache):
        folder.mkdir(parents=True, exist_ok=True)
    return made


@pytest.fixture
def registry():
    return load_builtin_nodes()
