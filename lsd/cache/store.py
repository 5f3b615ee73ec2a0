"""A cache folder on disk: safetensors shards, a JSON key and a manifest (docs/perf.md).

Layout of one cache folder (one kind: a VAE posterior, or a frozen backbone's features)::

    build.json              the key (written first: a resumed build checks it is the same)
    files.json              the image records the key's digest covers (names a changed image)
    shard-00000.safetensors items [0, S): one tensor per name, shape (S, V, ...)
    shard-00001.safetensors ...                 (V views: original, then mirrored)
    manifest.json           written last: the key, every shard's items, bytes and sha256

Every file is written to a temporary name and renamed into place (:mod:`lsd._atomic`), so a
killed build leaves whole shards only, and a rerun skips them. A reader checks the manifest's
format and each shard's size up front, so a truncated shard is named before training starts;
``lsd cache verify`` also checks every shard's sha256. Nothing here runs code on load: JSON and
safetensors only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from lsd._atomic import atomic_write, write_text_atomic
from lsd._integrity import sha256_file
from lsd.cache.keys import FORMAT_VERSION

MANIFEST = "manifest.json"
BUILD = "build.json"
FILES = "files.json"
#: dtypes a cache may store (bfloat16 halves the size; it is not bitwise equal to encoding on the fly).
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class CacheError(ValueError):
    """A cache that cannot be used: missing, damaged, of another format or stale. The message
    names the file and the reason (a user error: one line on the command line)."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.safetensors"


def shard_ranges(num_items: int, shard_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` item range of every shard."""
    return [(start, min(start + shard_size, num_items)) for start in range(0, num_items, shard_size)]


def read_json(path: Path) -> Any:
    """A JSON file of the cache; a damaged one raises :class:`CacheError` naming it."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CacheError(f"cache file {path} is unreadable ({type(err).__name__}: {err})") from err


def write_json(path: Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=1) + "\n")


def write_shard(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """One shard, atomically: ``tensors`` (contiguous, CPU) and string ``metadata``."""
    from safetensors.torch import save_file

    tensors = {name: value.detach().to("cpu").contiguous() for name, value in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def shard_problem(path: Path, names: list[str], count: int, views: int) -> str | None:
    """Why the shard at ``path`` is not a complete shard of ``count`` items x ``views`` views
    holding ``names`` (``None`` when it is)."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        return "missing"
    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = set(handle.keys())
            if keys != set(names):
                return f"holds {sorted(keys)}, expected {sorted(names)}"
            for name in names:
                shape = handle.get_slice(name).get_shape()
                if shape[:2] != [count, views]:
                    return f"{name} has shape {shape}, expected ({count}, {views}, ...)"
    except (SafetensorError, OSError, ValueError) as err:
        return f"unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
    return None


class CacheReader:
    """Items of a finished cache folder: ``reader.get(index, view) -> {name: tensor}`` (float32).

    Opening checks the manifest (format, key present) and that every shard has the size the
    manifest records, naming the first that does not (truncated, missing). Shards are
    memory-mapped on first use; the reader can be sent to DataLoader worker processes.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            hint = " (an unfinished build: rerun it to resume)" if (self.folder / BUILD).is_file() else ""
            raise CacheError(f"no cache in {self.folder}: {MANIFEST} is missing{hint}")
        manifest = read_json(path)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
            raise CacheError(f"{path}: not an lsd cache of format {FORMAT_VERSION}")
        self.manifest = manifest
        self.key: dict[str, Any] = manifest["key"]
        self.names: list[str] = manifest["tensors"]
        self.num_items: int = manifest["num_items"]
        self.num_views: int = len(self.key["views"])
        self.shards: list[dict[str, Any]] = manifest["shards"]
        self.shard_size: int = manifest["shard_size"]
        for shard in self.shards:
            file = self.folder / shard["file"]
            size = file.stat().st_size if file.is_file() else None
            if size != shard["bytes"]:
                found = "missing" if size is None else f"{size:,} bytes, the manifest records {shard['bytes']:,}"
                raise CacheError(f"cache shard {file} is damaged ({found}): rebuild with --rebuild-cache")
        self._handles: dict[int, Any] = {}

    def __len__(self) -> int:
        return self.num_items

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handles": {}}  # memory maps are reopened in each worker

    def _handle(self, shard: int):
        from safetensors import safe_open

        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.folder / self.shards[shard]["file"]), framework="pt")
        return self._handles[shard]

    def get(self, index: int, view: int = 0) -> dict[str, torch.Tensor]:
        """The cached tensors of item ``index`` in view ``view`` (0: as read, 1: mirrored), float32."""
        if not 0 <= index < self.num_items or not 0 <= view < self.num_views:
            raise IndexError(f"cache {self.folder}: item {index} view {view} out of range")
        shard, row = divmod(index, self.shard_size)
        handle = self._handle(shard)
        return {name: handle.get_slice(name)[row : row + 1, view][0].float() for name in self.names}

    def verify(self) -> list[str]:
        """Every shard whose sha256 differs from the manifest's (empty: the cache is intact)."""
        return [
            f"{self.folder / shard['file']}: sha256 differs from {MANIFEST}"
            for shard in self.shards
            if sha256_file(self.folder / shard["file"]) != shard["sha256"]
        ]

    def describe(self) -> dict[str, Any]:
        """What ``lsd cache info`` prints."""
        size = sum(shard["bytes"] for shard in self.shards)
        return {
            "folder": str(self.folder),
            "kind": self.key["kind"],
            "items": self.num_items,
            "views": self.key["views"],
            "tensors": {name: self.manifest["shapes"][name] for name in self.names},
            "dtype": self.key["dtype"],
            "shards": len(self.shards),
            "bytes": size,
            "bytes_per_item": size / max(self.num_items, 1),
            "encoder": self.key["encoder"]["class"],
            "images_root": self.manifest.get("images_root"),
        }


__all__ = [
    "BUILD", "CacheError", "CacheReader", "DTYPES", "FILES", "MANIFEST", "read_json", "shard_name",
    "shard_problem", "shard_ranges", "write_json", "write_shard",
]  # fmt: skip
