"""The shared save/load round-trip tester (diffusers keeps one in its ModelTesterMixin)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def public_config(module: Any) -> dict[str, Any] | None:
    """A module's diffusers config without the private ``_...`` entries, as JSON stores it (tuples
    become lists); None if it has none."""
    config = getattr(module, "config", None)
    if config is None or not hasattr(config, "items"):
        return None
    return json.loads(json.dumps({k: v for k, v in config.items() if not k.startswith("_")}, default=str))


def assert_round_trip(
    module: torch.nn.Module,
    folder: Path,
    forward: Callable[[torch.nn.Module], torch.Tensor] | None = None,
    cls: type | None = None,
) -> torch.nn.Module:
    """``module.save_pretrained(folder)`` then ``cls.from_pretrained(folder)`` (``cls``: the
    module's type) under a different RNG state; asserts the same public config, the same state
    keys, every tensor bitwise equal, and, with ``forward``, bitwise equal outputs in eval mode.
    Returns the loaded module."""
    cls = type(module) if cls is None else cls
    module.save_pretrained(folder)
    torch.manual_seed(123)  # loading must not depend on the RNG (no re-initialised weights)
    loaded = cls.from_pretrained(folder)
    assert public_config(loaded) == public_config(module)
    saved, restored = module.state_dict(), loaded.state_dict()
    assert restored.keys() == saved.keys()
    differ = [key for key, value in saved.items() if not torch.equal(restored[key], value)]
    assert differ == [], f"tensors changed by the round trip: {differ[:5]}"
    if forward is not None:
        module.eval(), loaded.eval()
        with torch.no_grad():
            assert torch.equal(forward(loaded), forward(module))
    return loaded
