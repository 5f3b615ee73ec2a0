"""Subclassing a diffusers model with extra config fields.

diffusers' ``@register_to_config`` and ``from_config`` read the init *signature* to decide which
config fields a class accepts. A subclass written as ``__init__(self, *args, extra=..., **kwargs)``
would therefore drop every parent field on reload. :func:`extends_init` gives such an ``__init__``
the parent's full signature plus the extra fields, so configs written by the parent class (or by
the LSD release's subclasses, which add fields the same way) load unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def extends_init(parent: type, **extra_defaults: Any) -> Callable[[Callable], Callable]:
    """Decorator (apply *under* ``@register_to_config``) publishing ``parent.__init__``'s
    parameters followed by ``extra_defaults`` as the signature of the decorated ``__init__``."""
    parent_params = list(inspect.signature(parent.__init__).parameters.values())
    clash = set(extra_defaults) & {p.name for p in parent_params}
    if clash:
        raise ValueError(f"extra init fields {sorted(clash)} already exist on {parent.__name__}")
    extra = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default)
        for name, default in extra_defaults.items()
    ]

    def decorate(init: Callable) -> Callable:
        init.__signature__ = inspect.Signature(parent_params + extra)
        return init

    return decorate


def init_defaults(cls: type) -> dict[str, Any]:
    """``{name: default}`` for every init argument of ``cls`` (``self`` excluded)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.name != "self"}
