"""Lazy package exports (PEP 562), so that importing a package's light parts does not import torch or timm.

>>> __getattr__ = lazy_exports(__name__, {"SpectraNet": ".modeling"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` resolving each name of ``exports`` (name → relative module) on
    first access."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name], package), name)

    return __getattr__
