"""A run folder survives interrupts, full disks and a second process (docs/checkpoints.md).

Interrupts are real signals to a real ``lsd train`` subprocess; a full disk is a file-size limit
(``RLIMIT_FSIZE``) set in the child; the second-process test pauses the first with SIGSTOP, so
none of them depends on timing.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsd.runs import list_checkpoints, read_log
from lsd.training.trainer import Trainer

from .conftest import tiny_train_config

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and resource limits")


def write_config(tmp_path: Path, **sections) -> tuple[Path, Path]:
    """A tiny config as a JSON file; returns ``(config file, run folder)``."""
    config = tiny_train_config(tmp_path, **sections)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    return path, Path(config.output_dir)


def start(config: Path, *args: str, file_limit: int | None = None) -> subprocess.Popen:
    """``lsd train --config config *args`` in a child process (a file-size limit set in it)."""

    def limit() -> None:
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "lsd", "train", "--config", str(config), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=limit)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    """Exit code and the last stderr line (what the user reads)."""
    _, err = process.communicate(timeout=300)
    assert "Traceback" not in err, err[-3000:]
    return process.returncode, err.strip().splitlines()[-1]


def wait_for_step(run_dir: Path, step: int, process: subprocess.Popen) -> None:
    """Until the child has logged ``step`` (polls the log; the child runs thousands of steps)."""
    log = run_dir / "train_log.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        if log.is_file() and any(json.loads(line)["step"] >= step for line in log.read_text().splitlines()[:-1]):
            return
        time.sleep(0.2)
    raise AssertionError(f"the child logged no step {step} in 300 s")


def logged_steps(run_dir: Path) -> list[int]:
    return [record["step"] for record in read_log(run_dir / "train_log.jsonl")]


# -- signals ----------------------------------------------------------------------------------
def test_sigint_stops_after_the_step_saves_it_when_asked_and_names_the_checkpoint(tmp_path):
    config, run_dir = write_config(
        tmp_path, train={"max_steps": 10_000}, checkpoint={"every": 10_000, "on_interrupt": True}
    )
    child = start(config)
    wait_for_step(run_dir, 2, child)
    child.send_signal(signal.SIGINT)
    code, line = finish(child)
    saved = list_checkpoints(run_dir)
    assert code == 130
    assert len(saved) == 1, saved
    step = int(saved[0].name.removeprefix("checkpoint-"))
    assert line == f"lsd train: SIGINT at step {step}: stopped; resume from {saved[0]} with --resume latest"
    assert logged_steps(run_dir) == list(range(1, step + 1))
    assert not (run_dir / ".lsd.lock").exists()
    resumed = Trainer(tiny_train_config(tmp_path, train={"max_steps": step + 1}))
    resumed.train(resume="latest")
    assert resumed.step == step + 1 and logged_steps(run_dir) == list(range(1, step + 2))


def test_sigterm_stops_at_the_next_step_and_names_the_newest_checkpoint(tmp_path):
    config, run_dir = write_config(tmp_path, train={"max_steps": 10_000}, checkpoint={"every": 2})
    child = start(config)
    wait_for_step(run_dir, 3, child)
    child.send_signal(signal.SIGTERM)
    code, line = finish(child)
    newest = list_checkpoints(run_dir)[-1]
    assert code == 143
    assert line.startswith("lsd train: SIGTERM at step ")
    assert line.endswith(f"stopped; resume from {newest} with --resume latest")


# -- a second process -------------------------------------------------------------------------
def test_a_second_process_in_a_running_run_folder_is_refused_naming_the_holder(tmp_path):
    config, run_dir = write_config(tmp_path, train={"max_steps": 10_000}, checkpoint={"every": 2})
    first = start(config)
    wait_for_step(run_dir, 1, first)
    first.send_signal(signal.SIGSTOP)  # the first holds the folder, paused wherever it is
    try:
        for args in (["--resume", "latest"], ["--overwrite"]):
            code, line = finish(start(config, *args))
            assert code == 2
            assert f"is in use by process {first.pid} on " in line and "(started 20" in line, line
            assert str(run_dir) in line
    finally:
        first.send_signal(signal.SIGCONT)
    first.send_signal(signal.SIGTERM)
    code, _ = finish(first)
    assert code == 143
    steps = logged_steps(run_dir)
    assert steps == list(range(1, len(steps) + 1))  # one writer: each step once


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_warning(tmp_path):
    config, run_dir = write_config(tmp_path, train={"max_steps": 10_000}, checkpoint={"every": 2})
    child = start(config)
    wait_for_step(run_dir, 1, child)
    child.kill()
    child.communicate()
    holder = json.loads((run_dir / ".lsd.lock").read_text())
    assert holder["pid"] == child.pid
    with pytest.warns(UserWarning, match=rf"stale lock of process {child.pid} .*which has ended"):
        Trainer(tiny_train_config(tmp_path, train={"max_steps": 3})).train(resume="latest")
    assert not (run_dir / ".lsd.lock").exists()


# -- a full disk ------------------------------------------------------------------------------
def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_last_one(tmp_path):
    config, run_dir = write_config(tmp_path, train={"max_steps": 2})
    Trainer(tiny_train_config(tmp_path, train={"max_steps": 2})).train()
    before = list_checkpoints(run_dir)
    weights = sorted(run_dir.rglob("*.safetensors"), key=lambda p: p.stat().st_size)
    limit = weights[-1].stat().st_size // 2  # the largest weights file cannot be written
    code, line = finish(start(config, "--resume", "latest", "--max-steps", "4", file_limit=limit))
    assert code == 2
    target = run_dir / "checkpoints" / "checkpoint-00000004"
    assert line.startswith(f"lsd train: error: cannot write {target} (")  # and the file in it
    assert line.endswith(".safetensors): file too large (a file-size limit was reached)")
    assert list_checkpoints(run_dir) == before  # no half checkpoint, no temporaries
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [p.name for p in before]
    resumed = Trainer(tiny_train_config(tmp_path, train={"max_steps": 4}))
    resumed.train(resume="latest")
    assert logged_steps(run_dir) == [1, 2, 3, 4]


def test_a_full_disk_while_appending_the_log_is_one_line_and_the_run_resumes(tmp_path):
    # 8 steps first: the log outgrows the TensorBoard events file the resumed child starts anew
    config, run_dir = write_config(tmp_path, train={"max_steps": 8})
    Trainer(tiny_train_config(tmp_path, train={"max_steps": 8})).train()
    log = run_dir / "train_log.jsonl"
    limit = log.stat().st_size + 3 * len(log.read_text().splitlines()[-1]) // 2  # room for 1.5 lines
    args = ["--resume", "latest", "--max-steps", "50", "--set", "checkpoint.every=1000"]
    code, line = finish(start(config, *args, file_limit=limit))
    assert code == 2
    assert line == f"lsd train: error: cannot write {log}: file too large (a file-size limit was reached)"
    assert log.read_text().endswith("\n") and logged_steps(run_dir) == list(range(1, 10))  # cut back
    resumed = Trainer(tiny_train_config(tmp_path, train={"max_steps": 10}))
    resumed.train(resume="latest")
    assert logged_steps(run_dir) == list(range(1, 11))


# -- pruning and an abandoned history ---------------------------------------------------------
def test_resuming_an_earlier_checkpoint_sets_the_later_ones_aside_and_pruning_keeps_the_new_one(tmp_path):
    Trainer(tiny_train_config(tmp_path, checkpoint={"every": 2, "total_limit": 3})).train()  # checkpoints 2, 4
    run_dir = tmp_path / "run"
    earlier = run_dir / "checkpoints" / "checkpoint-00000002"
    config = tiny_train_config(tmp_path, train={"max_steps": 3}, checkpoint={"every": 1, "total_limit": 1})
    with pytest.warns(UserWarning, match=r"resuming from step 2 abandons the later checkpoints checkpoint-00000004"):
        Trainer(config).train(resume=earlier)
    assert [p.name for p in list_checkpoints(run_dir)] == ["checkpoint-00000003"]  # the new history's newest
    assert [p.name for p in (run_dir / "abandoned").glob("*/checkpoint-*")] == ["checkpoint-00000004"]
    assert logged_steps(run_dir) == [1, 2, 3]
    latest = Trainer(tiny_train_config(tmp_path, train={"max_steps": 4}))
    latest.train(resume="latest")  # continues the new history, not the abandoned one
    assert latest.step == 4 and logged_steps(run_dir) == [1, 2, 3, 4]


# -- the log ----------------------------------------------------------------------------------
def test_a_cut_off_last_log_line_is_dropped_with_a_warning_naming_the_file(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "lo')
    with pytest.warns(UserWarning, match=rf"{log}: dropping a cut-off last line \(15 bytes\)"):
        assert read_log(log) == [{"step": 1, "loss": 0.5}]


def test_a_broken_log_line_inside_the_file_is_an_error_naming_file_and_line(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    with pytest.raises(ValueError, match=rf"{log}, line 2: not a JSON record"):
        read_log(log)


def test_resume_latest_survives_a_log_whose_last_line_a_kill_cut_off(tmp_path):
    Trainer(tiny_train_config(tmp_path)).train()
    log = tmp_path / "run" / "train_log.jsonl"
    log.write_text(log.read_text() + '{"step": 5, "loss": 0.')
    config = tiny_train_config(tmp_path, train={"max_steps": 5})
    with pytest.warns(UserWarning, match="dropping a cut-off last line"):
        Trainer(config).train(resume="latest")
    assert logged_steps(tmp_path / "run") == [1, 2, 3, 4, 5]
