"""Which device and dtype a run uses: CUDA, then Apple's MPS, then the CPU.

Set NODEGRAPH_DEVICE=cpu (or cuda:1, mps) to override. Nothing else in the node packs
names a device: they all ask here."""

from __future__ import annotations

import os
from functools import lru_cache

from nodegraph.lazy import lazy_import

torch = lazy_import("torch")


@lru_cache(maxsize=None)
def pick_device() -> "torch.device":
    wanted = os.environ.get("NODEGRAPH_DEVICE")
    if wanted:
        return torch.device(wanted)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: "torch.device | None" = None) -> "torch.dtype":
    """fp16 on CUDA saves half the memory at no visible cost for SD; CPU and MPS stay fp32
    (CPU fp16 is slow, MPS fp16 has numerics gaps). NODEGRAPH_DTYPE=float32 forces fp32."""
    wanted = os.environ.get("NODEGRAPH_DTYPE")
    if wanted:
        return getattr(torch, wanted)
    device = device or pick_device()
    return torch.float16 if device.type == "cuda" else torch.float32


def generator_for(seed: int, device: "torch.device | None" = None) -> "torch.Generator":
    """A seeded generator on the CPU: the same seed gives the same noise on every machine
    (noise drawn on a GPU differs between GPU models); move the noise to the device after."""
    return torch.Generator("cpu").manual_seed(int(seed) % 2**64)
