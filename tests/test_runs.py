"""lsd.runs and lsd._atomic on their own: the lock, write failures in one line, where a run is."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsd._atomic import WriteError, atomic_dir, write_text_atomic
from lsd.runs import RunFolderBusyError, building, enclosing_run, hold_enclosing_run, hold_run, holds_run

HOLDER = "import sys; from lsd.runs import hold_run\nwith hold_run(sys.argv[1]):\n    print('held', flush=True); sys.stdin.read()"


@pytest.fixture
def held_elsewhere(tmp_path):
    """A run folder whose lock another (live) process holds; yields (folder, that process)."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "held"
    yield run, child
    child.communicate("")  # closes its stdin: it releases the lock and ends


def test_a_held_run_folder_is_refused_naming_the_holder(held_elsewhere):
    run, child = held_elsewhere
    for hold in (hold_run(run), hold_enclosing_run(run / "evaluation" / "movi-e")):
        with pytest.raises(RunFolderBusyError, match=rf"{run} is in use by process {child.pid} on .* \(started 20"):
            with hold:
                pass


def test_the_lock_is_reentrant_in_one_process_and_gone_after_it(tmp_path):
    run = tmp_path / "run"
    with hold_run(run):
        with hold_run(run):
            assert holds_run(run) and (run / ".lsd.lock").is_file()
        assert holds_run(run)
    assert not holds_run(run) and not (run / ".lsd.lock").exists()


def test_holding_a_run_cleans_what_killed_writes_left(tmp_path):
    run = tmp_path / "run"
    stale = [run / ".train_log.jsonl.tmp-0badf00d", run / "checkpoints" / ".checkpoint-00000002.tmp-0badf00d"]
    stale[1].mkdir(parents=True)
    stale[0].write_text("half")
    with hold_run(run):
        assert not any(p.exists() for p in stale)


def test_enclosing_run_finds_the_run_folder_above_a_path(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    assert enclosing_run(tmp_path / "run" / "evaluation" / "x") == tmp_path / "run"
    assert enclosing_run(tmp_path / "elsewhere") is None


@pytest.mark.parametrize(
    ("code", "reason"),
    [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied")],
)
def test_a_failed_write_is_one_line_naming_the_path_and_keeps_the_old_file(tmp_path, code, reason):
    path = tmp_path / "results.json"
    path.write_text("old")

    def failing(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError(code, os.strerror(code))

    from lsd._atomic import atomic_write

    with pytest.raises(WriteError, match=rf"^cannot write {path}: {reason}$"):
        atomic_write(path, failing)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_safetensors_error_for_a_full_disk_is_one_line_naming_the_folder(tmp_path):
    from safetensors import SafetensorError  # not an OSError: the errno is in its message

    target = tmp_path / "checkpoint-00000002"
    with pytest.raises(WriteError, match=rf"^cannot write {target}: the disk is full$"):
        with atomic_dir(target) as tmp:
            (tmp / "model").mkdir()
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert list(tmp_path.iterdir()) == []


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(TypeError):  # a bug, not a write failure
        write_text_atomic(tmp_path / "x", 3)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_the_run_folder_module_sits_below_training_evaluation_and_pipelines():
    """lsd.runs imports only ground-floor helpers; evaluation and the pipeline find checkpoints
    through it, never through the trainer (that was the cycle pipelines -> evaluation.loading ->
    training.trainer -> training.visuals -> pipelines)."""
    from .test_package import _imported_lsd_modules

    root = Path(__file__).resolve().parents[1] / "lsd"
    imported = _imported_lsd_modules(root)
    assert imported["lsd/runs.py"] <= {"lsd._atomic", "lsd._integrity"}
    for path in ("lsd/evaluation/loading.py", "lsd/pipelines/lsd_pipeline.py"):
        assert not {m for m in imported[path] if m.startswith(("lsd.training", "lsd.evaluation"))}, path


def test_a_cache_entry_being_built_is_waited_for_not_built_twice(tmp_path, capfd):
    import threading

    entry = tmp_path / "cache" / "autoencoder-0123"
    order = []

    def second() -> None:
        with building(entry):
            order.append("second")

    with building(entry):
        waiter = threading.Thread(target=second)
        waiter.start()
        waiter.join(timeout=2)
        assert waiter.is_alive()  # it waits while the entry is being built
        order.append("first")
    waiter.join(timeout=30)
    assert order == ["first", "second"]
    assert f"waiting for another process building {entry}" in capfd.readouterr().err
