"""Does a folder hold a part, in the architecture the registry expects (docs/weights.md)?

Reads only a JSON config and a safetensors header (no tensor data), so it is cheap enough to run on
every load. Nothing is unpickled.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from lsd.weights.registry import Part

__all__ = ["ArchitectureMismatch", "check_architecture", "safetensors_shapes"]


class ArchitectureMismatch(ValueError):
    """A part's files are present but hold another model; the message names the file and field."""


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, from a safetensors file's header (8-byte little-endian length + JSON)."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ArchitectureMismatch(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        (length,) = struct.unpack("<Q", head)
        size = path.stat().st_size
        if length > size - 8:
            raise ArchitectureMismatch(f"{path}: not a safetensors file (header of {length} bytes in {size})")
        try:
            header = json.loads(handle.read(length))
        except ValueError as err:
            raise ArchitectureMismatch(f"{path}: unreadable safetensors header ({err})") from err
    return {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def _same(found: Any, expected: Any) -> bool:
    if isinstance(expected, list | tuple):
        return isinstance(found, list | tuple) and list(found) == list(expected)
    return found == expected


def check_architecture(part: Part, folder: Path, where: str, weights: bool = True) -> None:
    """Raise :class:`ArchitectureMismatch` naming the first file and field of ``folder`` (the part's
    own folder) that differs from ``part.architecture``; ``where`` names the source in the message.
    ``weights=False`` checks the config only."""
    arch = part.architecture
    if arch.config is not None:
        path = folder / arch.config
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ArchitectureMismatch(f"{where}: cannot read {arch.config} ({err})") from err
        for key, expected in arch.fields.items():
            if key not in config:
                raise ArchitectureMismatch(f"{where}: {arch.config} has no field {key!r} (expected {expected!r})")
            if not _same(config[key], expected):
                raise ArchitectureMismatch(
                    f"{where}: {arch.config} field {key!r} is {config[key]!r}, {part.name} has {expected!r}"
                )
    if weights and arch.weights is not None:
        shapes = safetensors_shapes(folder / arch.weights)
        for name, shape in arch.tensors.items():
            if name not in shapes:
                raise ArchitectureMismatch(f"{where}: {arch.weights} has no tensor {name!r}")
            if shapes[name] != tuple(shape):
                raise ArchitectureMismatch(
                    f"{where}: {arch.weights} tensor {name!r} has shape {list(shapes[name])}, "
                    f"{part.name} has {list(shape)}"
                )
