"""Import heavy libraries on first use, so registering nodes stays fast.

Node packs write ``torch = lazy_import("torch")`` and then use ``torch.randn(...)`` as
usual: the real import happens the first time a node body touches it. This is what keeps
``nodegraph --help``, ``validate`` and ``nodes`` free of torch.
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_module"] = None

    def _load(self) -> types.ModuleType:
        module = self.__dict__["_lazy_module"]
        if module is None:
            module = importlib.import_module(self.__name__)
            self.__dict__["_lazy_module"] = module
        return module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __dir__(self) -> list[str]:
        return dir(self._load())


def lazy_import(name: str) -> Any:
    """Return the module if it is already imported, else a proxy that imports it on first use."""
    import sys

    return sys.modules.get(name) or LazyModule(name)
