"""Package names imported on first use (PEP 562), so that importing a light module of a package (its config,
its constants) does not import torch and every model through the package's ``__init__``."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, sources: dict[str, tuple[str, ...]]) -> tuple[Callable[[str], Any],
                                                                             Callable[[], list[str]]]:
    """A package's module ``__getattr__`` and ``__dir__`` for the names in ``sources`` (submodule -> names it
    defines), each imported from its submodule when first asked for. Submodules themselves are found too,
    as an ``__init__`` that imported them used to make ``package.submodule`` work without an import."""
    where = {name: f"{package}.{module}" for module, names in sources.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in where:
            value = getattr(importlib.import_module(where[name]), name)
        # A name, not a dotted path: find_spec imports a path's parents, whose absence raised
        # ModuleNotFoundError where getattr's default and hasattr expect AttributeError.
        elif name.isidentifier() and not name.startswith("__") \
                and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)  # later look-ups find it without coming here
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
