"""Checks that a saved folder is what was written, and that weights are finite.

Manifest (``manifest.json``, written LAST into a folder, see ``docs/checkpoints.md``)::

    {"format": "lsd-manifest-1",
     "files": {"<path relative to the folder, '/'-separated>": {"size": <bytes>, "sha256": "<hex>"}, ...}}

It lists every file under the folder except itself. :func:`verify_manifest` names each missing,
resized (truncated), changed or unlisted file.

Containment (:func:`check_links`, :func:`inside`): every name a model or run folder holds stays
inside it; a link that leaves the folder or dangles is refused, naming it, before anything is
read through it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "lsd-manifest-1"


class CorruptCheckpointError(ValueError):
    """A saved folder does not match its manifest (the message names the file), or has none."""


class NonFiniteWeightsError(ValueError):
    """Weights hold NaN or inf (the message names the tensor)."""


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    own = folder / MANIFEST_NAME
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p != own)


def write_manifest(folder: str | os.PathLike) -> Path:
    """Hash every file under ``folder`` into ``folder/manifest.json`` (call it after the last write)."""
    folder = Path(folder)
    files = {
        name: {"size": (folder / name).stat().st_size, "sha256": sha256_file(folder / name)} for name in _files(folder)
    }
    path = folder / MANIFEST_NAME
    path.write_text(json.dumps({"format": MANIFEST_FORMAT, "files": files}, indent=1, sort_keys=True) + "\n")
    return path


def verify_manifest(folder: str | os.PathLike, required: bool = True) -> bool:
    """Check ``folder`` against its manifest; raise :class:`CorruptCheckpointError` naming every bad
    file. Returns whether a manifest was there (``required=False`` lets a folder without one pass)."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if not path.is_file():
        if required:
            raise CorruptCheckpointError(f"{folder}: {MANIFEST_NAME} is missing (an incomplete or foreign checkpoint)")
        return False
    try:
        manifest = json.loads(path.read_text())
        listed: Mapping[str, Mapping] = manifest["files"]
        if manifest.get("format") != MANIFEST_FORMAT or not isinstance(listed, dict):
            raise ValueError(f"format {manifest.get('format')!r}")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise CorruptCheckpointError(f"{path}: not an lsd manifest ({err})") from err
    problems = []
    for name, entry in sorted(listed.items()):
        file = folder / name
        if not file.is_file():
            problems.append(f"{file} is missing")
        elif file.stat().st_size != entry.get("size"):
            problems.append(
                f"{file} is {file.stat().st_size} bytes, the manifest says {entry.get('size')} (truncated?)"
            )
        elif sha256_file(file) != entry.get("sha256"):
            problems.append(f"{file} does not match its sha256 in the manifest (changed or corrupt)")
    extra = sorted(set(_files(folder)) - set(listed))
    problems += [f"{folder / name} is not in the manifest (an extra file)" for name in extra]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise CorruptCheckpointError(f"{folder} is damaged: {'; '.join(problems[:3])}{more}")
    return True


class OutsideFolderError(ValueError):
    """A name or link in a model or run folder points outside it, or a link dangles."""


def inside(folder: str | os.PathLike, name: str, what: str) -> Path:
    """``folder / name``, refused (:class:`OutsideFolderError`, naming ``what``) unless it is a
    plain entry name (no separator, not ``.`` or ``..``) that resolves inside ``folder``."""
    folder = Path(folder)
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
        raise OutsideFolderError(f"{what}: {name!r} is not a plain name inside {folder}")
    path = folder / name
    _check_link(folder.resolve(), path, what)
    return path


def _check_link(root: Path, path: Path, what: str) -> None:
    if not path.is_symlink():
        return
    target = Path(os.readlink(path))
    if not path.exists():
        raise OutsideFolderError(f"{what}: {path} is a dangling link (to {target})")
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise OutsideFolderError(f"{what}: {path} is a link leaving {root} (to {resolved})")


def check_links(folder: str | os.PathLike, what: str, deep: bool = True) -> None:
    """Refuse (:class:`OutsideFolderError`, one line naming the link) a link under ``folder`` that
    dangles or leaves it; ``deep=False`` checks its direct entries only."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    root = folder.resolve()
    if deep:
        for parent, dirs, files in os.walk(folder):
            for name in dirs + files:
                _check_link(root, Path(parent) / name, what)
    else:
        for entry in folder.iterdir():
            _check_link(root, entry, what)


def first_non_finite(named: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    """Name of the first floating tensor holding NaN or inf, or ``None``."""
    for name, tensor in named:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def check_finite(named: Iterable[tuple[str, torch.Tensor]], where: str) -> None:
    """Raise :class:`NonFiniteWeightsError` naming the first tensor with NaN/inf values."""
    bad = first_non_finite(named)
    if bad is not None:
        raise NonFiniteWeightsError(f"{where}: tensor {bad} holds NaN or inf values; refusing to use these weights")


__all__ = [
    "MANIFEST_NAME",
    "CorruptCheckpointError",
    "NonFiniteWeightsError",
    "OutsideFolderError",
    "check_finite",
    "check_links",
    "first_non_finite",
    "inside",
    "verify_manifest",
    "write_manifest",
]
