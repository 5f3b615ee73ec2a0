"""The run folder: its layout, its lock, its checkpoints, its log and how a run stops.

A run folder (``output_dir`` of ``lsd train``, see ``docs/checkpoints.md``) holds::

    .lsd.lock                      while a process writes: the lock, JSON naming the holder
    train_log.jsonl                one JSON record per logged step
    checkpoints/checkpoint-<8-digit step>/   see lsd.training.trainer
    abandoned/<time>/checkpoint-N/ later checkpoints set aside when an earlier one was resumed
    validation/, lsd/ (TensorBoard)

This module sits below training, evaluation and pipelines (it imports only ground-floor helpers):
they all ask it where a run's checkpoints are. Writes go through :mod:`lsd._atomic`, whose
failures (disk full, file too large, permission, read-only) become one :class:`~lsd._atomic.WriteError`
naming the path.

- **Lock** (:func:`hold_run`): an exclusive ``fcntl.flock`` on ``.lsd.lock`` for the whole run. A
  second writer is refused with :class:`RunFolderBusyError` naming the holder's PID and start time.
  The holder deletes the file when it ends; the kernel drops the flock when its process dies, so
  a lock file a killed holder left is taken over (with a warning naming it). Temporaries a killed process left are cleaned
  once the lock is held.
- **Checkpoints**: :func:`list_checkpoints`, :func:`verify_checkpoint`, :func:`resolve_resume`,
  :func:`prune_checkpoints` (never removes the checkpoint just written, the newest of the current
  history), :func:`set_aside_later` (resuming an earlier checkpoint moves the later ones, another
  history, to ``abandoned/``).
- **Log**: :func:`append_log` (a failed append is cut back, so the file keeps whole lines),
  :func:`read_log` (a cut-off last line is dropped with a warning naming the file; any other
  unreadable line is an error naming file and line), :func:`trim_log`.
- **Interrupts**: :func:`stop_on_signals` turns SIGINT / SIGTERM into a flag the training loop
  checks at its safe point (after a step and its checkpoint); a second SIGINT stops at once.
  :class:`Interrupted` carries the checkpoint to resume and the exit code (128 + signal: 130 / 143).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from lsd._atomic import WriteError, check_output_dir, remove_dir, remove_stale, write_text_atomic, writing
from lsd._integrity import CorruptCheckpointError, check_links, verify_manifest

CHECKPOINTS = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
LOG_NAME = "train_log.jsonl"
LOCK_NAME = ".lsd.lock"
ABANDONED = "abandoned"
#: What a run writes in its output_dir (``lsd`` holds the TensorBoard events); ``--overwrite`` removes these.
RUN_ENTRIES = (LOG_NAME, CHECKPOINTS, "validation", "lsd", ABANDONED, LOCK_NAME)
#: Files of a training checkpoint's state (see :mod:`lsd.training.state`).
STATE_JSON = "training_state.json"
STATE_TENSORS = "training_state.safetensors"
OLD_STATE = "training_state.pt"
TRAINER_STATE = "trainer_state.json"
#: The config file of an lsd model folder (``lsd.models.lsd.LSD_CONFIG_NAME``; a test keeps them equal).
MODEL_CONFIG = "lsd_config.json"

CheckpointKind = Literal["lsd-model", "lsd-training-checkpoint", "release"]


class OldCheckpointFormatError(ValueError):
    """A checkpoint holds the old pickled ``training_state.pt``."""


class RunFolderBusyError(OSError):
    """Another live process holds the run folder's lock (the message names its PID and start time)."""


class Interrupted(Exception):
    """SIGINT / SIGTERM stopped a run at a safe point; ``checkpoint`` is where to resume (or None)."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None) -> None:
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        name = signal.Signals(signum).name
        where = (
            f"resume from {checkpoint} with --resume latest"
            if checkpoint is not None
            else "no checkpoint was saved yet, so a resume starts from step 0"
        )
        super().__init__(f"{name} at step {step}: stopped; {where}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process a signal ended: 130 / 143."""
        return 128 + self.signum


# -- layout ------------------------------------------------------------------------------------
def checkpoint_path(output_dir: str | os.PathLike, step: int) -> Path:
    """``<output_dir>/checkpoints/checkpoint-<step, 8 digits>``."""
    return Path(output_dir) / CHECKPOINTS / f"{CHECKPOINT_PREFIX}{step:08d}"


def step_of(path: Path) -> int:
    """The step of ``checkpoint-N`` (also of its aside name ``.checkpoint-N.old``)."""
    return int(path.name.removeprefix(".").removesuffix(".old").removeprefix(CHECKPOINT_PREFIX))


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Checkpoints of a run that hold a ``trainer_state.json``, oldest first (not yet verified:
    see :func:`resolve_resume`). A checkpoint a kill left renamed aside mid-replacement
    (``.checkpoint-N.old`` without ``checkpoint-N``) is listed under that aside name."""
    folder = Path(output_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = {}
    for p in folder.iterdir():
        name = p.name.removeprefix(".").removesuffix(".old") if p.name.endswith(".old") else p.name
        if not name.startswith(CHECKPOINT_PREFIX) or not name.removeprefix(CHECKPOINT_PREFIX).isdigit():
            continue
        if p.name.endswith(".old") and (folder / name).exists():
            continue
        if (p / TRAINER_STATE).is_file():
            found[step_of(p)] = p
    return [found[step] for step in sorted(found)]


# -- checkpoints -------------------------------------------------------------------------------
def refuse_old_format(folder: str | os.PathLike) -> None:
    """Raise :class:`OldCheckpointFormatError` (naming the converter) for a checkpoint that holds
    only the old pickled state. Reads nothing but the folder listing."""
    folder = Path(folder)
    if (folder / OLD_STATE).is_file() and not (folder / STATE_JSON).is_file():
        raise OldCheckpointFormatError(
            f"{folder / OLD_STATE} is a pickle (the old checkpoint format), which lsd no longer loads because "
            f"unpickling can run code; if you trust the file, convert it with `lsd convert-checkpoint {folder}`"
        )


def verify_checkpoint(path: str | os.PathLike) -> Path:
    """Raise unless ``path`` is a complete checkpoint of the current format matching its manifest,
    with no link leaving it or dangling."""
    path = Path(path)
    if not (path / TRAINER_STATE).is_file():
        raise FileNotFoundError(f"{path} is not a complete lsd training checkpoint (no {TRAINER_STATE})")
    check_links(path, "checkpoint")
    refuse_old_format(path)
    verify_manifest(path)
    if not (path / STATE_JSON).is_file():  # e.g. the shipped model + recipe folder
        raise FileNotFoundError(
            f"{path} holds no training state ({STATE_JSON}), so it cannot be resumed; start a new run from its "
            f"weights with --set init_from={path}"
        )
    return path


def resolve_resume(resume: str | os.PathLike | None, output_dir: str | os.PathLike) -> Path | None:
    """``None``, ``"latest"`` (the newest intact checkpoint, or a fresh start when there is none)
    or a path (which must be intact). ``"latest"`` skips damaged checkpoints with a warning naming
    the bad file; when checkpoints exist but none is intact it raises."""
    if resume is None:
        return None
    if str(resume) != "latest":
        return verify_checkpoint(resume)
    found = list_checkpoints(output_dir)
    problems = []
    for candidate in reversed(found):
        try:
            return verify_checkpoint(candidate)
        except CorruptCheckpointError as err:
            warnings.warn(f"skipping a damaged checkpoint: {err}", stacklevel=2)
            problems.append(str(err))
    if problems:
        raise CorruptCheckpointError(f"no intact checkpoint in {Path(output_dir) / CHECKPOINTS}: {problems[0]}")
    return None


def newest_model(output_dir: str | os.PathLike) -> Path:
    """The ``model/`` folder of the newest checkpoint whose model matches its manifest (damaged ones
    are skipped with a warning naming the file), as ``--resume latest`` would pick."""
    root = Path(output_dir)
    for candidate in reversed(list_checkpoints(root)):
        model = candidate / "model"
        if not (model / MODEL_CONFIG).is_file():
            continue
        try:
            check_links(model, "model folder")
            verify_manifest(model, required=False)
        except CorruptCheckpointError as err:
            warnings.warn(f"skipping a damaged checkpoint: {err}", stacklevel=2)
            continue
        return model
    raise FileNotFoundError(f"{root / CHECKPOINTS} holds no complete training checkpoint")


def resolve_checkpoint(path: str | os.PathLike) -> tuple[CheckpointKind, Path]:
    """Which layout ``path`` holds, and the folder to load from. Checks files only; loads nothing.

    - ``"lsd-model"``: a ``LatentSlotDiffusion.save_pretrained`` folder (``lsd_config.json``);
    - ``"lsd-training-checkpoint"``: ``<run>/checkpoints/checkpoint-N/`` (its ``model/`` subfolder
      is the model), or the run folder ``<run>/`` itself (:func:`newest_model`);
    - ``"release"``: a checkpoint of the LSD release (``multiheadstevesa/`` and siblings).

    A link in the folder that leaves it or dangles is refused (:func:`lsd._integrity.check_links`).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"checkpoint folder {root} does not exist")
    if (root / MODEL_CONFIG).is_file():
        check_links(root, "model folder")
        return "lsd-model", root
    if (root / "model" / MODEL_CONFIG).is_file():
        check_links(root / "model", "model folder")
        return "lsd-training-checkpoint", root / "model"
    if (root / "multiheadstevesa").is_dir():
        check_links(root, "release checkpoint")
        return "release", root
    if (root / CHECKPOINTS).is_dir():
        check_links(root, "run folder", deep=False)
        return "lsd-training-checkpoint", newest_model(root)
    raise FileNotFoundError(
        f"{root} is not a checkpoint: expected {MODEL_CONFIG} (an lsd model folder), model/{MODEL_CONFIG} "
        "(an lsd training checkpoint), checkpoints/ (an lsd training run) or multiheadstevesa/ (a release checkpoint)"
    )


def check_run_folder(output_dir: str | os.PathLike, resume: str | os.PathLike | None, overwrite: bool) -> list[Path]:
    """A run folder belongs to one run: a fresh run (``resume`` None) into a folder that holds
    files is refused unless ``overwrite``, and then only when everything in it was written by a
    run (:data:`RUN_ENTRIES`). Returns what ``overwrite`` will remove. Reads only; the lock file
    and temporaries of killed writes do not count."""
    folder = check_output_dir(output_dir, "output_dir")
    if not folder.is_dir():
        return []
    check_links(folder, "output_dir", deep=False)
    if resume is not None:
        return []
    present = sorted(p for p in folder.iterdir() if p.name != LOCK_NAME and not _is_temporary(p.name))
    if not present:
        return []
    names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in present[:6])
    if not overwrite:
        raise FileExistsError(
            f"output_dir {folder} already holds files ({names}): pass --resume latest to continue that run, "
            "--overwrite to replace it, or another --output-dir"
        )
    foreign = [p.name for p in present if p.name not in RUN_ENTRIES]
    if foreign:
        raise FileExistsError(
            f"output_dir {folder} holds files no lsd run wrote ({', '.join(foreign[:6])}); --overwrite removes only "
            "a run's files: pick another --output-dir"
        )
    return present


def _is_temporary(name: str) -> bool:
    from lsd._atomic import DELETING_MARK, TMP_MARK

    return name.startswith(".") and (TMP_MARK in name or DELETING_MARK in name)


def prune_checkpoints(output_dir: str | os.PathLike, limit: int | None, keep: Path) -> list[Path]:
    """Remove the oldest checkpoints beyond ``limit``; never ``keep`` (the checkpoint just
    written, the newest of the current history). Returns what was removed."""
    if limit is None:
        return []
    keep = Path(keep)
    found = [p for p in list_checkpoints(output_dir) if p.name != keep.name]
    doomed = found[: max(len(found) - (limit - 1), 0)]
    for old in doomed:
        remove_dir(old)
    return doomed


def set_aside_later(output_dir: str | os.PathLike, step: int) -> list[Path]:
    """Move checkpoints past ``step`` (the history a resume from an earlier checkpoint abandons) to
    ``abandoned/<UTC time>/``, with a warning naming them; returns their new places."""
    later = [p for p in list_checkpoints(output_dir) if step_of(p) > step]
    if not later:
        return []
    folder = Path(output_dir) / ABANDONED / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    while folder.exists():
        folder = folder.with_name(folder.name + "+")
    moved = []
    with writing(folder):
        folder.mkdir(parents=True)
        for path in later:
            target = folder / path.name.removeprefix(".").removesuffix(".old")
            os.replace(path, target)
            moved.append(target)
    warnings.warn(
        f"resuming from step {step} abandons the later checkpoints {', '.join(p.name for p in moved)}: "
        f"set aside in {folder}",
        stacklevel=2,
    )
    return moved


# -- the log -----------------------------------------------------------------------------------
def append_log(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line. A failed write (disk full, file too large) is cut back
    to the file's previous length and raised as a :class:`WriteError` naming ``path``."""
    path = Path(path)
    data = (json.dumps(record) + "\n").encode()
    with writing(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)


def read_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a JSON-lines log. A cut-off last line (no newline: a write a kill or a full
    disk interrupted) is dropped with a warning naming the file; any other unreadable line raises
    a ``ValueError`` naming the file and line."""
    path = Path(path)
    text = path.read_text()
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except ValueError as err:
            if number == len(lines):  # the last line, without its newline
                warnings.warn(f"{path}: dropping a cut-off last line ({len(line)} bytes)", stacklevel=2)
                break
            raise ValueError(f"{path}, line {number}: not a JSON record ({err})") from err
        records.append(record)
    return records


def trim_log(path: str | os.PathLike, step: int) -> None:
    """Keep the records of steps up to ``step`` (drops what a killed run logged after its
    checkpoint, and a cut-off last line); rewritten atomically."""
    path = Path(path)
    if not path.is_file():
        return
    records = [r for r in read_log(path) if int(r.get("step", 0)) <= step]
    write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records))


# -- the lock ----------------------------------------------------------------------------------
_held: dict[Path, tuple[int, int]] = {}  # resolved folder -> (fd, depth)
_held_guard = threading.Lock()


def _describe(holder: dict[str, Any]) -> str:
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if isinstance(started, (int, float)) else "?"
    return f"process {holder.get('pid', '?')} on {holder.get('host', '?')} (started {when})"


def _read_holder(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        holder = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _acquire(folder: Path) -> int:
    lock = folder / LOCK_NAME
    for _ in range(100):
        with writing(lock):
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunFolderBusyError(
                f"{folder} is in use by {_describe(holder)}, which holds {lock}: wait for it to end or stop it "
                "(a second process would overwrite its checkpoints and log)"
            ) from None
        try:  # the holder deletes the file when it ends: a lock on a deleted file guards nothing
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:
        raise RunFolderBusyError(f"{lock}: could not take the lock (the file keeps being replaced)")
    previous = _read_holder(fd)
    if previous.get("pid") is not None:
        # The lock file names a holder, yet the flock was free: the kernel drops a flock when its
        # process ends, so that holder was killed before it could clear the file.
        alive = previous.get("host") == socket.gethostname() and _pid_alive(previous.get("pid"))
        state = "holds no lock (its PID is in use again)" if alive else "has ended"
        warnings.warn(f"{lock}: taking over a stale lock of {_describe(previous)}, which {state}", stacklevel=3)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": " ".join(sys.argv)}
    data = (json.dumps(me) + "\n").encode()
    try:
        with writing(lock):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, data)
    except WriteError:
        os.close(fd)
        raise
    return fd


@contextmanager
def hold_run(output_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the run folder's lock for the ``with`` block (re-entrant within a process); on
    entry, clean the temporaries killed writers left in the folder and its ``checkpoints/``.
    Raises :class:`RunFolderBusyError` when another live process holds it."""
    folder = check_output_dir(output_dir, "output_dir")
    if folder.exists():
        check_links(folder, "output_dir", deep=False)
    key = folder.resolve()
    with _held_guard:
        fd, depth = _held.get(key, (-1, 0))
        if depth == 0:
            fd = _acquire(folder)
            remove_stale(folder)
            remove_stale(folder / CHECKPOINTS)
        _held[key] = (fd, depth + 1)
    try:
        yield folder
    finally:
        with _held_guard:
            fd, depth = _held[key]
            if depth == 1:
                del _held[key]
                try:  # delete the file while still holding it (a waiter checks it locked the live file)
                    os.unlink(folder / LOCK_NAME)
                except OSError:
                    pass
                os.close(fd)  # releases the flock
            else:
                _held[key] = (fd, depth - 1)


def enclosing_run(path: str | os.PathLike) -> Path | None:
    """The run folder ``path`` lies in (itself or its nearest ancestor holding ``checkpoints/`` or
    ``train_log.jsonl``), or None."""
    for folder in [Path(path), *Path(path).parents]:
        if (folder / CHECKPOINTS).is_dir() or (folder / LOG_NAME).is_file():
            return folder
    return None


@contextmanager
def hold_enclosing_run(path: str | os.PathLike) -> Iterator[Path | None]:
    """Hold the lock of the run folder ``path`` lies in (:func:`enclosing_run`), if any, for the
    block: what writes into a run folder (an evaluation saved inside it) waits for no run, it is
    refused while one trains there."""
    run = enclosing_run(path)
    if run is None:
        yield None
        return
    with hold_run(run):
        yield run


@contextmanager
def building(entry: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of a cache entry (``<entry>.lock`` beside it, an exclusive ``flock``) for the
    block, waiting while another process builds the same entry: a second run then finds it built
    instead of building it again. Cache entries are shared by runs, so unlike :func:`hold_run`
    this waits rather than refuses. The lock file is left in place (deleting it would race)."""
    entry = Path(entry)
    lock = entry.with_name(entry.name + ".lock")
    with writing(lock):
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"lsd: waiting for another process building {entry}", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield entry
    finally:
        os.close(fd)


def holds_run(output_dir: str | os.PathLike) -> bool:
    """Whether this process holds the lock of ``output_dir``."""
    return Path(output_dir).resolve() in _held


# -- interrupts --------------------------------------------------------------------------------
class StopFlag:
    """Set by the first SIGINT / SIGTERM; ``signum`` is the signal (None while not stopped)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


_flag: StopFlag | None = None
_depth = 0


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """Within the block, SIGINT and SIGTERM set the returned flag instead of ending the process
    (the loop stops at its next safe point); a second SIGINT raises ``KeyboardInterrupt`` at once.
    Re-entrant (nested blocks share one flag); off the main thread it installs nothing."""
    global _flag, _depth
    if threading.current_thread() is not threading.main_thread():
        yield _flag or StopFlag()
        return
    if _depth:
        _depth += 1
        try:
            yield _flag
        finally:
            _depth -= 1
        return
    flag = StopFlag()

    def handler(signum: int, frame: Any) -> None:
        if flag.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if flag.signum is None:
            flag.signum = signum
            print(
                f"lsd: {signal.Signals(signum).name} received: stopping after this step "
                "(press Ctrl-C again to stop at once)",
                file=sys.stderr,
                flush=True,
            )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    _flag, _depth = flag, 1
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        _flag, _depth = None, 0


__all__ = [
    "ABANDONED",
    "MODEL_CONFIG",
    "CheckpointKind",
    "resolve_checkpoint",
    "CHECKPOINTS",
    "CHECKPOINT_PREFIX",
    "LOCK_NAME",
    "LOG_NAME",
    "OLD_STATE",
    "RUN_ENTRIES",
    "STATE_JSON",
    "STATE_TENSORS",
    "Interrupted",
    "OldCheckpointFormatError",
    "RunFolderBusyError",
    "StopFlag",
    "WriteError",
    "append_log",
    "check_run_folder",
    "building",
    "checkpoint_path",
    "enclosing_run",
    "hold_enclosing_run",
    "hold_run",
    "holds_run",
    "list_checkpoints",
    "newest_model",
    "prune_checkpoints",
    "read_log",
    "refuse_old_format",
    "resolve_resume",
    "set_aside_later",
    "step_of",
    "stop_on_signals",
    "trim_log",
    "verify_checkpoint",
]
