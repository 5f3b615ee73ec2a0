"""`lsd evaluate` / `lsd synth` / CLI errors: bad inputs are named in one line (exit 2) before any compute,
and no checkpoint file runs code or passes with NaN weights."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import lsd.evaluation as evaluation
from lsd.cli import main

from ..release_fixture import write_release_checkpoint


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _evaluate(checkpoint, data, output, *extra):
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--dataset", "synth"]
    return main([*argv, "--output", str(output), "--batch-size", "4", "--probe-steps", "0", *extra])


def _one_error_line(capsys, command="evaluate") -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lsd {command}: error: "), err
    return err[0]


def test_evaluate_refuses_nan_weights_naming_the_tensor(model_folder, synth_folder, tmp_path, capsys):
    from lsd._integrity import write_manifest

    folder = tmp_path / "poisoned"
    shutil.copytree(model_folder, folder)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state["conv_in.weight"][0, 0, 0, 0] = float("inf")
    save_file(state, weights)
    write_manifest(folder)
    assert _evaluate(folder, synth_folder, tmp_path / "out") == 2
    line = _one_error_line(capsys)
    assert "unet/diffusion_pytorch_model.safetensors" in line and "conv_in.weight" in line and "NaN or inf" in line
    assert not (tmp_path / "out").exists()


def test_evaluate_names_a_tampered_file_through_the_manifest(model_folder, synth_folder, tmp_path, capsys):
    folder = tmp_path / "tampered"
    shutil.copytree(model_folder, folder)
    (folder / "backbone" / "config.json").write_text("{}")
    assert _evaluate(folder, synth_folder, tmp_path / "out") == 2
    assert "backbone/config.json is" in _one_error_line(capsys)


def test_a_planted_pickle_never_runs_on_evaluate(model_folder, synth_folder, tmp_path, capsys):
    marker = tmp_path / "pwned"
    folder = tmp_path / "planted"
    shutil.copytree(model_folder, folder)
    (folder / "manifest.json").unlink()
    (folder / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    torch.save({"x": Payload(marker)}, folder / "unet" / "diffusion_pytorch_model.bin")
    assert _evaluate(folder, synth_folder, tmp_path / "out") == 2
    assert "unet/diffusion_pytorch_model.safetensors is missing" in _one_error_line(capsys)
    release = write_release_checkpoint(tmp_path / "checkpoint-500", fmt="bin")
    torch.save({"x": Payload(marker)}, release / "unetencoder" / "diffusion_pytorch_model.bin")
    assert _evaluate(release, synth_folder, tmp_path / "out") == 2  # tensors-only unpickler refuses it
    assert "could not read weights" in _one_error_line(capsys)
    assert not marker.exists()


def test_evaluate_checks_its_output_before_any_compute(model_folder, synth_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(evaluation, "load_model", None)  # calling it would be compute: it must not happen
    (tmp_path / "a-file").write_text("x")
    for output in (tmp_path / "a-file", tmp_path / "a-file" / "below"):
        assert _evaluate(model_folder, synth_folder, output) == 2
        assert "--output" in (line := _one_error_line(capsys)) and "is not a folder" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_named(model_folder, synth_folder, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    assert _evaluate(model_folder, synth_folder, locked / "out") == 2
    assert "permission denied" in _one_error_line(capsys)


def test_debug_shows_the_traceback_instead(synth_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _evaluate(tmp_path / "nowhere", synth_folder, tmp_path / "out", "--debug")


@pytest.mark.parametrize(
    "args, named",
    [
        (["--resolution", "0"], "argument --resolution: 0 is not allowed (must be >= 8)"),
        (["--num-train", "-1"], "argument --num-train: -1 is not allowed (must be >= 0)"),
        (["--num-validation", "x"], "argument --num-validation: 'x' is not an integer"),
    ],
)
def test_synth_arguments_are_checked(tmp_path, capsys, args, named):
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", "--output", str(tmp_path), *args])
    assert exit_info.value.code == 2 and named in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_synth_spec_and_output_are_checked(tmp_path, capsys):
    from lsd.data.synthetic import SynthSpec

    with pytest.raises(ValueError, match=r"num_train \+ num_validation \+ num_test must be >= 1"):
        SynthSpec(num_train=0, num_validation=0)
    with pytest.raises(ValueError, match="resolution=4: must be an integer >= 8"):
        SynthSpec(resolution=4)
    (tmp_path / "file").write_text("x")
    assert main(["synth", "--output", str(tmp_path / "file"), "--num-train", "1"]) == 2
    assert "--output" in _one_error_line(capsys, "synth")


def test_a_run_folder_evaluates_its_newest_intact_checkpoint(model_folder, tmp_path):
    import json

    from lsd.evaluation import resolve_checkpoint

    run = tmp_path / "run"
    for step in (2, 4):
        ckpt = run / "checkpoints" / f"checkpoint-{step:08d}"
        shutil.copytree(model_folder, ckpt / "model")
        (ckpt / "trainer_state.json").write_text(json.dumps({"step": step}))
    (run / "checkpoints" / "checkpoint-00000004" / "model" / "unet" / "config.json").write_text("{}")
    with pytest.warns(UserWarning, match=r"checkpoint-00000004/model/unet/config\.json is 2 bytes"):
        kind, folder = resolve_checkpoint(run)
    assert (kind, folder) == ("lsd-training-checkpoint", run / "checkpoints" / "checkpoint-00000002" / "model")


def test_a_release_checkpoint_with_nan_weights_is_refused_naming_the_tensor(tmp_path):
    from lsd import load_official_checkpoint
    from lsd._integrity import NonFiniteWeightsError

    release = write_release_checkpoint(tmp_path / "checkpoint-500")
    weights = release / "multiheadstevesa" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    name = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[name].view(-1)[0] = float("nan")
    save_file(state, weights)
    with pytest.raises(NonFiniteWeightsError, match=rf"multiheadstevesa: tensor {name} holds NaN"):
        load_official_checkpoint(release)
