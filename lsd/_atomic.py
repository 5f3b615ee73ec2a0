"""The one place for atomic writes: write-then-rename for files and folders.

A reader never sees a half-written file or folder, a failed write leaves nothing behind, and a
replaced folder is never missing: the old one is renamed aside (``.<name>.old``), the new one
renamed in, then the old one deleted (:func:`replace_dir`). A kill between the two renames leaves
the old folder aside; :func:`settle_aside` (run by the next :func:`atomic_dir` on that target)
puts it back, and readers may look for it with :func:`aside_path`.

Everything these helpers put in place gets the modes an ordinary ``open`` / ``mkdir`` gives
(``0o666`` / ``0o777`` masked by the umask: ``0644`` / ``0755`` under umask 022), not the
owner-only modes of :func:`tempfile.mkstemp` / :func:`tempfile.mkdtemp` or of writers that create
their files ``0600`` (safetensors does), so teammates can read a shared run.

A write that fails for want of room or rights (disk full, a file-size limit, permission denied, a
read-only file system, including safetensors' own ``SafetensorError`` for these) raises one
:class:`WriteError` naming the path (:func:`writing`); the temporary is removed and the target
keeps its last good state.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: Name parts of the temporary entries these helpers create (both start with ".").
TMP_MARK = ".tmp-"
DELETING_MARK = ".deleting-"


#: Reasons a write fails that are the machine's state, not a bug: one line naming the path.
WRITE_FAILURES = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "file too large (a file-size limit was reached)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
}


class WriteError(OSError):
    """Writing ``path`` failed for want of room or rights; the message names it and the reason."""

    def __init__(self, path: str | os.PathLike, code: int, detail: str | None = None) -> None:
        reason = WRITE_FAILURES.get(code, os.strerror(code))
        where = f" ({detail})" if detail and str(detail) != str(path) else ""
        super().__init__(f"cannot write {path}{where}: {reason}")
        self.errno = code
        self.path = Path(path)


def _write_errno(err: BaseException) -> int | None:
    """The errno of a failed write: an ``OSError``'s, or the ``(os error N)`` a safetensors
    ``SafetensorError`` (not an ``OSError``) carries in its message (safetensors 0.4-0.7:
    ``Error while serializing: I/O error: File too large (os error 27)``)."""
    if isinstance(err, WriteError):
        return None
    if isinstance(err, OSError):
        return err.errno if err.errno in WRITE_FAILURES else None
    if type(err).__name__ == "SafetensorError":
        found = re.search(r"os error (\d+)", str(err))
        return int(found.group(1)) if found and int(found.group(1)) in WRITE_FAILURES else None
    return None


@contextmanager
def writing(path: str | os.PathLike, tmp: Path | None = None) -> Iterator[None]:
    """Within the block, a write failing for want of room or rights (:data:`WRITE_FAILURES`)
    becomes a :class:`WriteError` naming ``path`` (and the file that failed, relative to ``tmp``
    when it was written into that temporary folder)."""
    try:
        yield
    except Exception as err:
        failed = err.path if isinstance(err, WriteError) else getattr(err, "filename", None)
        code = err.errno if isinstance(err, WriteError) and tmp is not None else _write_errno(err)
        if code is None:
            raise
        if tmp is not None and failed is not None and Path(failed).is_relative_to(tmp):
            failed = Path(failed).relative_to(tmp)
        raise WriteError(path, code, failed) from err


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{secrets.token_hex(4)}")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike) -> None:
    """Give ``path`` and everything under it the modes the umask gives new files and folders
    (``0o666 & ~umask``, ``0o777 & ~umask``)."""
    path, mask = Path(path), _umask()
    for entry in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if not entry.is_symlink():
            entry.chmod((0o777 if entry.is_dir() else 0o666) & ~mask)


def aside_path(target: str | os.PathLike) -> Path:
    """Where :func:`replace_dir` keeps the old ``target`` while the new one is renamed in."""
    target = Path(target)
    return target.with_name(f".{target.name}.old")


def settle_aside(target: str | os.PathLike) -> None:
    """Finish a replacement a kill interrupted: put ``.<name>.old`` back when ``target`` is
    missing, delete it when ``target`` exists."""
    target, aside = Path(target), aside_path(target)
    if not aside.exists():
        return
    if target.exists():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(aside, target)


def replace_dir(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move the complete folder ``src`` to ``dst``; an existing ``dst`` is renamed aside first and
    deleted only after ``src`` is in place (at every moment the old or the new folder exists)."""
    src, dst = Path(src), Path(dst)
    aside = aside_path(dst)
    if dst.exists():
        if aside.exists():
            shutil.rmtree(aside)
        os.replace(dst, aside)
    os.replace(src, dst)
    shutil.rmtree(aside, ignore_errors=True)


def remove_dir(path: str | os.PathLike) -> None:
    """Delete a folder so that it vanishes at once (renamed to a hidden name, then deleted)."""
    path = Path(path)
    if not path.exists():
        return
    doomed = path.with_name(f".{path.name}{DELETING_MARK}{secrets.token_hex(4)}")
    os.replace(path, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def remove_stale(folder: str | os.PathLike) -> None:
    """Delete what killed writes left in ``folder``: temporary and half-deleted entries, and
    aside copies (restored when their target is missing)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        name = entry.name
        if not name.startswith("."):
            continue
        if TMP_MARK in name or DELETING_MARK in name:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        elif name.endswith(".old"):
            settle_aside(entry.with_name(name[1 : -len(".old")]))


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_dir(target) as tmp:`` fill ``tmp``; on success it replaces ``target``
    (:func:`replace_dir`), on an exception it is deleted and ``target`` is untouched."""
    target = Path(target)
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        settle_aside(target)
        tmp = _tmp_name(target)
        tmp.mkdir()  # 0o777 & ~umask
    try:
        with writing(target, tmp):
            yield tmp
            apply_umask(tmp)
            replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """``write(tmp_path)`` into a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    tmp = _tmp_name(path)
    with writing(path):
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0o666 & ~umask
    try:
        with writing(path):
            write(str(tmp))
            apply_umask(tmp)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def save_figure_atomic(fig, path: str | os.PathLike, dpi: int = 100) -> None:
    """Save a matplotlib figure as PNG at ``path`` atomically."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def check_output_dir(path: str | os.PathLike, what: str) -> Path:
    """Fail before any compute when ``path`` cannot become a writable folder: it (or a parent) is
    a file, or the nearest existing folder is not writable. Creates nothing. Returns ``path``."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "" if probe == path else f" ({probe} is a file)"
        raise NotADirectoryError(f"{what} {path} is not a folder{where}")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: cannot write in {probe} (permission denied)")
    return path


__all__ = [
    "WRITE_FAILURES",
    "WriteError",
    "apply_umask",
    "aside_path",
    "atomic_dir",
    "atomic_write",
    "check_output_dir",
    "remove_dir",
    "remove_stale",
    "replace_dir",
    "save_figure_atomic",
    "settle_aside",
    "write_text_atomic",
    "writing",
]
