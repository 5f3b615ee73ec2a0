"""PEP 562 lazy exports: public names are imported from their modules on first access."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose names map to their defining modules."""
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module)
        value = getattr(loaded, name)
        namespace[name] = value
        # Importing submodule ``pkg.x`` binds ``pkg.x`` to the module; where an export shares the
        # submodule's name (``lsd.evaluation.evaluate``), bind it back to the export.
        short = module.rpartition(".")[2]
        if exports.get(short) == module and namespace.get(short) is loaded:
            namespace[short] = getattr(loaded, short)
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
