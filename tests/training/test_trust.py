"""Trust: no code runs from a checkpoint, no earlier run is lost, no damaged or non-finite state is used."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import lsd.training.trainer as trainer_module
from lsd._integrity import CorruptCheckpointError, NonFiniteWeightsError, write_manifest
from lsd.training.state import OldCheckpointFormatError, load_training_state
from lsd.training.trainer import NonFiniteLossError, Trainer, list_checkpoints, resolve_resume, train

from .conftest import tiny_train_config


class Payload:
    """Unpickling this creates ``marker``: the planted code a checkpoint must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def plant(path: Path, marker: Path) -> None:
    torch.save({"state": Payload(marker)}, path)
    assert not marker.exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 4-step tiny run (checkpoints at steps 2 and 4) and its uninterrupted final weights."""
    root = tmp_path_factory.mktemp("finished")
    trainer = Trainer(tiny_train_config(root))
    trainer.train()
    return root, {k: v.clone() for k, v in trainer.unwrapped.state_dict().items()}


@pytest.fixture
def run(finished_run, tmp_path):
    """A copy of the finished run, and a function giving a config for it (overrides as sections)."""
    source, _ = finished_run
    shutil.copytree(source / "run", tmp_path / "run")
    shutil.copytree(source / "data", tmp_path / "data")
    return tmp_path / "run", lambda **sections: tiny_train_config(tmp_path, **sections)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def checkpoint(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"checkpoint-{step:08d}"


# -- no pickle --------------------------------------------------------------------------------
def test_an_old_pickled_training_state_is_refused_with_the_converter_and_its_payload_never_runs(run, tmp_path):
    run_dir, config = run
    marker = tmp_path / "pwned"
    ckpt = checkpoint(run_dir, 4)
    for name in ("training_state.json", "training_state.safetensors", "manifest.json"):
        (ckpt / name).unlink()
    plant(ckpt / "training_state.pt", marker)
    with pytest.raises(
        OldCheckpointFormatError, match=r"training_state\.pt.*lsd convert-checkpoint .*checkpoint-00000004"
    ):
        Trainer(config()).train(resume="latest")
    with pytest.raises(OldCheckpointFormatError):
        Trainer(config()).train(resume=ckpt)
    assert not marker.exists()


def test_a_pickle_planted_beside_a_checkpoint_is_named_and_skipped_never_read(run, tmp_path):
    run_dir, _ = run
    marker = tmp_path / "pwned"
    plant(checkpoint(run_dir, 4) / "training_state.pt", marker)
    with pytest.warns(UserWarning, match=r"training_state\.pt is not in the manifest"):
        assert resolve_resume("latest", run_dir) == checkpoint(run_dir, 2)
    assert not marker.exists()


def test_a_planted_bin_in_a_model_folder_is_never_read_by_init_from_or_from_pretrained(run, tmp_path):
    from lsd.models.lsd import LatentSlotDiffusion
    from lsd.training.trainer import load_initial_weights

    run_dir, config = run
    marker = tmp_path / "pwned"
    unet = checkpoint(run_dir, 4) / "model" / "unet"
    (unet / "diffusion_pytorch_model.safetensors").unlink()
    plant(unet / "diffusion_pytorch_model.bin", marker)
    model = Trainer(config(output_dir=str(tmp_path / "other"))).unwrapped
    with pytest.raises(CorruptCheckpointError, match=r"unet/diffusion_pytorch_model\.safetensors is missing"):
        load_initial_weights(model, checkpoint(run_dir, 4))
    (unet.parent / "manifest.json").unlink()  # without the manifest: the loader itself refuses
    with pytest.raises(FileNotFoundError, match=r"unet/diffusion_pytorch_model\.safetensors is missing"):
        LatentSlotDiffusion.from_pretrained(unet.parent)
    assert not marker.exists()


def test_converted_old_checkpoint_resumes_bitwise(finished_run, run):
    """`lsd convert-checkpoint` (trusted files only) turns the old format into the new one; the
    resumed run ends where the uninterrupted one did."""
    from lsd.cli import main

    _, expected = finished_run
    run_dir, config = run
    ckpt = checkpoint(run_dir, 2)
    torch.save(load_training_state(ckpt), ckpt / "training_state.pt")  # what older versions wrote
    for name in ("training_state.json", "training_state.safetensors", "manifest.json"):
        (ckpt / name).unlink()
    shutil.rmtree(checkpoint(run_dir, 4))
    assert main(["convert-checkpoint", str(ckpt)]) == 0
    assert not (ckpt / "training_state.pt").exists()
    resumed = Trainer(config())
    resumed.train(resume="latest")
    assert all(torch.equal(v, expected[k]) for k, v in resumed.unwrapped.state_dict().items())


# -- a run folder belongs to one run ----------------------------------------------------------
def test_a_fresh_run_cannot_touch_an_earlier_runs_files(run, monkeypatch):
    run_dir, config = run
    before = snapshot(run_dir)
    monkeypatch.setattr(trainer_module, "Trainer", None)  # refused before any stage is built
    with pytest.raises(FileExistsError, match=r"already holds files .*--resume latest.*--overwrite"):
        train(config())
    monkeypatch.undo()
    with pytest.raises(FileExistsError, match="already holds files"):
        Trainer(config()).train()
    assert snapshot(run_dir) == before


def test_overwrite_replaces_a_run_but_never_foreign_files(run):
    run_dir, config = run
    result = Trainer(config(train={"max_steps": 1})).train(overwrite=True)
    assert result.step == 1 and [p.name for p in list_checkpoints(run_dir)] == ["checkpoint-00000001"]
    assert [json.loads(line)["step"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()] == [1]
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"files no lsd run wrote \(notes\.txt\)"):
        Trainer(config()).train(overwrite=True)
    assert (run_dir / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "sections, named",
    [
        ({"train": {"seed": 4}}, "train.seed 3 -> 4"),
        ({"optim": {"lr": 5e-4}}, "optim.lr 0.001 -> 0.0005"),
        ({"train": {"batch_size": 2}}, "train.batch_size 4 -> 2"),
        ({"train": {"grad_accum": 2}}, "train.grad_accum 1 -> 2"),
    ],
)
def test_resume_names_each_recipe_difference(run, sections, named):
    run_dir, config = run
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        Trainer(config(**sections)).train(resume="latest")


def test_resume_may_change_the_length_and_logging(run):
    run_dir, config = run
    result = Trainer(config(train={"max_steps": 5, "log_every": 5})).train(resume="latest")
    assert result.step == 5


# -- damaged checkpoints ----------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncate", "delete", "extra", "flip"])
def test_a_damaged_checkpoint_is_named_and_latest_falls_back_to_the_newest_intact_one(run, damage):
    run_dir, config = run
    ckpt = checkpoint(run_dir, 4)
    weights = ckpt / "model" / "unet" / "diffusion_pytorch_model.safetensors"
    if damage == "truncate":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
        named = r"diffusion_pytorch_model\.safetensors is \d+ bytes, the manifest says \d+"
    elif damage == "delete":
        (ckpt / "training_state.safetensors").unlink()
        named = r"training_state\.safetensors is missing"
    elif damage == "extra":
        (ckpt / "model" / "stray.txt").write_text("?")
        named = r"model/stray\.txt is not in the manifest"
    else:
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
        named = r"diffusion_pytorch_model\.safetensors does not match its sha256"
    with pytest.raises(CorruptCheckpointError, match=named):
        resolve_resume(ckpt, run_dir)
    with pytest.warns(UserWarning, match=named):
        trainer = Trainer(config(train={"max_steps": 4}))
        trainer.train(resume="latest")
    assert trainer.step == 4  # resumed at step 2 and trained on, instead of using the damaged one


def test_latest_with_no_intact_checkpoint_stops_instead_of_starting_over(run):
    run_dir, _ = run
    for ckpt in list_checkpoints(run_dir):
        (ckpt / "trainer_state.json").write_text("{}")
    with pytest.warns(UserWarning), pytest.raises(CorruptCheckpointError, match="no intact checkpoint"):
        resolve_resume("latest", run_dir)


def test_a_truncated_safetensors_or_corrupt_config_without_manifest_is_named(run):
    from lsd.models.lsd import LatentSlotDiffusion

    model_dir = checkpoint(run_dir := run[0], 4) / "model"
    (model_dir / "manifest.json").unlink()
    weights = model_dir / "slot_attention" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"cannot load .*slot_attention/diffusion_pytorch_model\.safetensors"):
        LatentSlotDiffusion.from_pretrained(model_dir)
    (model_dir / "lsd_config.json").write_text('{"components": ')
    with pytest.raises(ValueError, match=r"lsd_config\.json: not an lsd model config"):
        LatentSlotDiffusion.from_pretrained(model_dir)
    assert run_dir.is_dir()


# -- kills during a checkpoint write -----------------------------------------------------------
def _count_replaces(trainer, monkeypatch) -> int:
    calls = []
    original = os.replace
    monkeypatch.setattr(os, "replace", lambda *a: (calls.append(a), original(*a))[1])
    trainer.save_checkpoint()
    monkeypatch.setattr(os, "replace", original)
    return len(calls)


@pytest.mark.parametrize("hard", [False, True], ids=["exception", "hard-kill"])
def test_a_kill_at_any_rename_of_a_checkpoint_write_leaves_a_loadable_checkpoint(run, monkeypatch, hard):
    """Replace checkpoint-4 by a new write, dying at the k-th rename for every k; a hard kill also
    skips all clean-up (no rmtree runs). The newest intact checkpoint always loads."""
    run_dir, config = run
    trainer = Trainer(config())
    trainer.load_checkpoint(checkpoint(run_dir, 4))
    renames = _count_replaces(trainer, monkeypatch)
    assert renames >= 3  # the model folder, the aside rename, the new folder in
    original_replace, original_rmtree = os.replace, shutil.rmtree
    for k in range(1, renames + 1):
        calls = {"n": 0}

        def dying(*args, k=k, calls=calls):
            calls["n"] += 1
            if calls["n"] == k:
                raise KeyboardInterrupt("killed")
            return original_replace(*args)

        monkeypatch.setattr(os, "replace", dying)
        if hard:
            monkeypatch.setattr(shutil, "rmtree", lambda *a, **kw: None)
        with pytest.raises(KeyboardInterrupt):
            trainer.save_checkpoint()
        monkeypatch.setattr(os, "replace", original_replace)
        monkeypatch.setattr(shutil, "rmtree", original_rmtree)
        latest = resolve_resume("latest", run_dir)
        assert latest is not None and json.loads((latest / "trainer_state.json").read_text())["step"] == 4, k
        Trainer(config()).load_checkpoint(latest)
    trainer.save_checkpoint()  # the next write settles what the kills left
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["checkpoint-00000002", "checkpoint-00000004"]


def test_the_log_trim_is_atomic(run, monkeypatch):
    run_dir, config = run
    log = run_dir / "train_log.jsonl"
    before = log.read_bytes()
    trainer = Trainer(config())
    trainer.step = 2

    def dying(*args):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(os, "replace", dying)
    with pytest.raises(KeyboardInterrupt):
        trainer._trim_log()
    monkeypatch.undo()
    assert log.read_bytes() == before and not [p for p in run_dir.iterdir() if p.name.startswith(".")]


# -- non-finite weights -----------------------------------------------------------------------
def _poison(ckpt: Path, component: str = "slot_attention") -> str:
    weights = ckpt / "model" / component / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    name = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    save_file(state, weights)
    write_manifest(ckpt / "model")
    write_manifest(ckpt)
    return name


def test_resume_and_init_from_refuse_nan_weights_naming_the_tensor(run, tmp_path):
    run_dir, config = run
    name = _poison(checkpoint(run_dir, 4))
    with pytest.raises(NonFiniteWeightsError, match=rf"slot_attention/diffusion_pytorch_model\.safetensors.*{name}"):
        Trainer(config()).train(resume="latest")
    fresh = config(init_from=str(checkpoint(run_dir, 4)), output_dir=str(tmp_path / "tuned"))
    with pytest.raises(NonFiniteWeightsError, match=name):
        Trainer(fresh).train()


def test_a_nan_stop_with_poisoned_weights_saves_nothing_and_names_the_last_finite_checkpoint(run, monkeypatch):
    run_dir, config = run
    trainer = Trainer(config(train={"max_steps": 6}))
    trainer.load_checkpoint(checkpoint(run_dir, 4))
    trainer.step = 5  # step 5 made the weights NaN; its loss at step 6 is NaN; no checkpoint of step 5
    before = snapshot(run_dir / "checkpoints")
    with torch.no_grad():
        next(trainer.unwrapped.slot_attention.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"weights hold NaN/inf .*checkpoint-00000004"):
        trainer._stop_if_not_finite(torch.tensor(float("nan")), "loss (nan)", "micro-batch 1/1")
    assert snapshot(run_dir / "checkpoints") == before


# -- modes ------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_checkpoints_and_atomic_files_honour_the_umask(run, umask, file_mode, dir_mode):
    from lsd._atomic import write_text_atomic

    run_dir, config = run
    trainer = Trainer(config())
    trainer.step = 7
    old = os.umask(umask)
    try:
        folder = trainer.save_checkpoint()
        write_text_atomic(run_dir / "note.txt", "x")
    finally:
        os.umask(old)
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.rglob("*")]}
    assert {p: m for p, m in modes.items() if p.is_file() and m != file_mode} == {}
    assert {p: m for p, m in modes.items() if p.is_dir() and m != dir_mode} == {}
    assert stat.S_IMODE((run_dir / "note.txt").stat().st_mode) == file_mode


# -- TensorBoard ------------------------------------------------------------------------------
def test_a_resumed_run_purges_tensorboard_events_past_its_checkpoint(run):
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    run_dir, config = run
    shutil.rmtree(checkpoint(run_dir, 4))
    Trainer(config()).train(resume="latest")
    starts = []
    for events in sorted((run_dir / "lsd").rglob("events.out.tfevents.*")):
        for event in EventFileLoader(str(events)).Load():
            if event.HasField("session_log") and event.session_log.status == event.session_log.START:
                starts.append(event.step)
    assert starts == [3]  # the resumed writer purges steps >= 3 (the first step after checkpoint-2)
