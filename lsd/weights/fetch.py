"""``lsd weights fetch``: download a part through huggingface_hub, trying its sources in order
(docs/weights.md).

A part already in the local Hugging Face cache under one of its sources (e.g. after
``hf download``) is checked and locked without any network. Otherwise, for each source: the part's
config file first, checked against the expected fields (a mirror of
another model is refused before its weights are downloaded), then the other files, then the tensor
names and shapes. The first source that passes is written to the lock with every file's sha256.
A part already locked and intact is not downloaded again (no network at all); one whose files
changed since they were locked is downloaded again, replacing the cached copy. The Hub endpoint is
huggingface_hub's (``HF_ENDPOINT``) unless ``endpoint`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lsd.weights.check import ArchitectureMismatch, check_architecture
from lsd.weights.locate import cached_folder
from lsd.weights.lock import LockedFileChanged, hash_files, read_lock, record_part, stored_folder, verify_locked
from lsd.weights.registry import Part

__all__ = ["FetchFailed", "fetch_part"]


class FetchFailed(OSError):
    """No source of a part could be downloaded and checked; the message has one line per source."""


def _download(part: Part, source: str, endpoint: str | None, force: bool) -> Path:
    """Download ``part``'s files from ``source``; its folder in the local snapshot. The config is
    fetched and checked first. ``force``: download again even when the cache has the files."""
    from huggingface_hub import hf_hub_download

    arch = part.architecture
    config_first = sorted(part.files, key=lambda f: f != arch.config)
    folder = None
    for file in config_first:
        name = f"{part.subfolder}/{file}" if part.subfolder else file
        path = Path(hf_hub_download(source, name, endpoint=endpoint, force_download=force))
        folder = path.parent
        if file == arch.config:
            check_architecture(part, folder, f"source {source}", weights=False)
    assert folder is not None  # a part has at least one file
    check_architecture(part, folder, f"source {source}")
    return folder


def _reason(source: str, err: BaseException) -> str:
    if isinstance(err, ArchitectureMismatch):
        return f"refused: {err}"
    text = " ".join(str(err).split()) or type(err).__name__
    return f"source {source}: {type(err).__name__}: {text[:300]}"


def fetch_part(
    part: Part, extra_sources: tuple[str, ...] = (), endpoint: str | None = None, force: bool = False
) -> dict[str, Any]:
    """Fetch ``part`` (module docstring) and return its lock entry.

    Raises:
        FetchFailed: every source failed; the message gives each source's reason (not found,
            unreachable, or the architecture field that differs).
    """
    if part.package is not None:
        raise ValueError(f"{part.name} comes from the {part.package[0]} package, not the Hub")
    entry = read_lock().get(part.name)
    if entry is not None and not force:
        try:
            folder = verify_locked(part.name, entry)
            check_architecture(part, folder, f"{part.name} ({folder})")
            return entry
        except (LockedFileChanged, ArchitectureMismatch):
            force = True  # the cached copy is damaged: replace it
    for source in () if force else dict.fromkeys((*part.sources, *extra_sources)):
        folder = cached_folder(part, source)  # already in the local cache: lock it, offline
        if folder is not None:
            try:
                check_architecture(part, folder, f"cached source {source}")
            except ArchitectureMismatch:
                continue
            return _lock(part, source, folder)
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise FetchFailed(f"{part.name}: HF_HUB_OFFLINE is set, so huggingface_hub will not download; unset it")
    reasons = []
    for source in dict.fromkeys((*part.sources, *extra_sources)):
        try:
            folder = _download(part, source, endpoint, force)
        except (OSError, ValueError) as err:  # huggingface_hub's errors (404, offline...) and mismatches
            reasons.append(_reason(source, err))
            continue
        return _lock(part, source, folder)
    raise FetchFailed(f"{part.name}: no source could be fetched:\n  " + "\n  ".join(reasons))


def _lock(part: Part, source: str, folder: Path) -> dict[str, Any]:
    """Write ``part``'s lock entry for the checked files in ``folder``; returns it."""
    entry = {"source": source, "revision": _revision(folder, part), "folder": stored_folder(folder),
             "files": hash_files(folder, part.files)}  # fmt: skip
    record_part(part.name, entry)
    return entry


def _revision(folder: Path, part: Part) -> str:
    """The commit of the snapshot ``folder`` lies in (``.../snapshots/<commit>/[subfolder]``)."""
    snapshot = folder.parent if part.subfolder else folder
    return snapshot.name
