"""What a cache is a function of, and how to say what changed (docs/perf.md, "Cached latents").

A cache entry is a pure function of three things, and its key records all three:

- the images: every file's path (relative to its dataset root), size and modification time, or
  its sha256 when ``hash_files`` is asked for (slower; survives copies that reset mtimes);
- the preprocessing: reader, split, resolution, crop, views (original, mirrored);
- the frozen network: its class, config and a sha256 over its weights.

:func:`key_differences` compares a saved key with the current one and names each difference in
words, so a stale cache is refused with its reason (``lsd train`` / ``lsd cache build``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from lsd._integrity import sha256_file

#: Bumped when the on-disk layout changes; a cache of another format is refused, never misread.
FORMAT_VERSION = 1

#: One image file: ``[path relative to the dataset root, size in bytes, mtime in ns or sha256]``.
FileRecord = list


def common_root(paths: Sequence[Path]) -> Path:
    """The deepest folder holding every path (the dataset root the records are relative to)."""
    if not paths:
        raise ValueError("a cache needs at least one image")
    return Path(os.path.commonpath([str(p.parent.resolve()) for p in paths]))


def fingerprint_files(paths: Sequence[Path], hash_files: bool = False) -> tuple[str, list[FileRecord]]:
    """``(root, records)``: each image as ``[relative path, size, mtime_ns]`` (or ``[..., size,
    sha256]`` with ``hash_files``), in dataset order. A missing file raises naming it."""
    root = common_root(paths)
    records = []
    for path in paths:
        resolved = Path(path).resolve()
        try:
            stat = resolved.stat()
        except OSError as err:
            raise FileNotFoundError(f"cache: cannot read image {path} ({err.strerror})") from err
        stamp = sha256_file(resolved) if hash_files else stat.st_mtime_ns
        records.append([str(resolved.relative_to(root)), stat.st_size, stamp])
    return str(root), records


def records_digest(records: Iterable[FileRecord]) -> str:
    """sha256 of the image records (what the key holds; the records themselves sit beside it)."""
    return hashlib.sha256(json.dumps(list(records), separators=(",", ":")).encode()).hexdigest()


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over a module's class, config and every tensor of its state dict (name, dtype,
    shape, bytes), in name order: equal for equal weights, whatever their device."""
    digest = hashlib.sha256(type(module).__name__.encode())
    config = getattr(module, "config", None)
    if config is not None:
        public = {k: v for k, v in dict(config).items() if not k.startswith("_")}  # "_use_default_values" is a set
        digest.update(json.dumps(public, sort_keys=True, default=str).encode())
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def describe_file_change(saved: Sequence[FileRecord], current: Sequence[FileRecord], hash_files: bool) -> str:
    """The first difference between two image lists, in words (``"image a/b.png changed (size
    1200 -> 1188)"``, ``"3 images added"``)."""
    stamp = "content (sha256)" if hash_files else "modification time"
    for index, (old, new) in enumerate(zip(saved, current, strict=False)):
        if old[0] != new[0]:
            return f"image {index} is now {new[0]} (was {old[0]})"
        if old[1] != new[1]:
            return f"image {new[0]} changed (size {old[1]} -> {new[1]} bytes)"
        if old[2] != new[2]:
            return f"image {new[0]} changed ({stamp})"
    if len(current) != len(saved):
        change = len(current) - len(saved)
        return f"{abs(change)} images {'added' if change > 0 else 'removed'} ({len(saved)} -> {len(current)})"
    return "the image list differs"


def key_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Every leaf where two keys differ, as ``"field: cache <old>, now <new>"`` (image lists are
    compared by digest here; :func:`describe_file_change` says which image)."""
    found = []
    for name in sorted(set(saved) | set(current)):
        where = f"{prefix}{name}"
        old, new = saved.get(name, "<absent>"), current.get(name, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            found.extend(key_differences(old, new, f"{where}."))
        elif old != new:
            if isinstance(old, str) and isinstance(new, str) and len(old) == len(new) == 64:
                found.append(f"{where}: another value (sha256 {old[:12]}... -> {new[:12]}...)")
            else:
                found.append(f"{where}: cache {old!r}, now {new!r}")
    return found


__all__ = [
    "FORMAT_VERSION", "FileRecord", "common_root", "describe_file_change", "fingerprint_files",
    "key_differences", "records_digest", "weights_digest",
]  # fmt: skip
