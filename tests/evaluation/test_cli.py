import json
import shutil

import pytest
import torch
from PIL import Image

from lsd.cli import main
from lsd.evaluation import evaluate, load_model, resolve_checkpoint
from lsd.metrics import segmentation_scores

from ..release_fixture import TINY_SLOT_ATTN, write_release_checkpoint
from .conftest import NUM_IMAGES

SEGMENTATION_KEYS = {"fg_ari", "ari", "mbo", "miou", "mbo_image", "miou_image"}


def _evaluate_cli(checkpoint, data, output, *extra):
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--dataset", "synth"]
    return main([*argv, "--output", str(output), "--batch-size", "4", "--probe-steps", "3", "--seed", "2", *extra])


def test_cli_writes_the_three_files_with_the_documented_keys(
    model_folder, synth_folder, model, dataset, tmp_path, capsys
):
    output = tmp_path / "out"
    assert _evaluate_cli(model_folder, synth_folder, output, "--device", "cpu") == 0
    assert sorted(p.name for p in output.iterdir()) == ["results.json", "results.md", "segmentations.png"]

    record = json.loads((output / "results.json").read_text())
    for key in ("checkpoint", "dataset", "split", "seed", "device", "wall_time_s", "versions", "metrics", "probes"):
        assert key in record
    assert record["checkpoint"]["kind"] == "lsd-model"
    assert record["dataset"]["name"] == "synth" and record["split"] == "validation"
    assert record["dataset"]["num_images"] == record["num_images"] == NUM_IMAGES
    assert record["seed"] == 2 and record["wall_time_s"] > 0
    assert set(record["versions"]) >= {"torch", "diffusers", "lsd"}
    assert set(record["metrics"]) == SEGMENTATION_KEYS
    conventions = record["conventions"]
    assert conventions["matching"] == "cosine" and conventions["ties"] == "canonical"
    assert set(conventions["averaging"]) == SEGMENTATION_KEYS
    assert conventions["probes"]["steps"] == 3
    assert record["probes"]["category"]["measure"] == "accuracy"
    assert record["probes"]["scale"]["measure"] == "mse"

    # the command gives what the library gives
    expected = evaluate(model, dataset, batch_size=4, seed=2, probe_steps=3, progress=False)
    assert record["metrics"] == expected.metrics
    assert {k: v["value"] for k, v in record["probes"].items()} == expected.probes

    table = (output / "results.md").read_text()
    printed = capsys.readouterr().out
    assert "| FG-ARI (%) " in table and f"{100 * expected.metrics['fg_ari']:.2f}" in table
    assert "| category accuracy (%)" in table and "| scale MSE" in table
    assert "| mBO (%, object-averaged, paper)" in printed
    with Image.open(output / "segmentations.png") as figure:
        assert figure.format == "PNG" and figure.width > 100


def test_cli_mask_resolution_is_scored_and_recorded(model_folder, synth_folder, model, dataset, tmp_path):
    output = tmp_path / "out"
    assert _evaluate_cli(model_folder, synth_folder, output, "--device", "cpu", "--mask-resolution", "224") == 0
    record = json.loads((output / "results.json").read_text())
    assert record["conventions"]["mask_resolution"] == 224
    expected = evaluate(model, dataset, batch_size=4, seed=2, probe_steps=3, progress=False, mask_resolution=224)
    assert record["metrics"] == expected.metrics
    assert "| ARI (%, background included)" in (output / "results.md").read_text()


def test_training_checkpoints_and_runs_resolve_to_their_model(model_folder, model, tmp_path):
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-00000002"
    shutil.copytree(model_folder, checkpoint / "model")
    (checkpoint / "trainer_state.json").write_text('{"step": 2}')
    assert resolve_checkpoint(checkpoint) == ("lsd-training-checkpoint", checkpoint / "model")
    assert resolve_checkpoint(tmp_path / "run") == ("lsd-training-checkpoint", checkpoint / "model")
    loaded, kind, _ = load_model(checkpoint)
    assert kind == "lsd-training-checkpoint" and loaded.vae is None
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_release_checkpoint_evaluates(synth_folder, dataset, tmp_path):
    release = write_release_checkpoint(tmp_path / "checkpoint-500")
    output = tmp_path / "out"
    assert _evaluate_cli(release, synth_folder, output, "--matching", "iou", "--ties", "release") == 0
    record = json.loads((output / "results.json").read_text())
    assert record["checkpoint"]["kind"] == "release"
    assert record["num_slots"] == TINY_SLOT_ATTN["num_slots"]
    assert record["conventions"]["matching"] == "iou" and record["conventions"]["ties"] == "release"

    from lsd import load_official_checkpoint
    from lsd.evaluation import slot_noise

    model = load_official_checkpoint(release)
    items = [dataset[i] for i in range(NUM_IMAGES)]
    pixels = torch.stack([it["pixel_values"] for it in items])
    noise = slot_noise(2, range(NUM_IMAGES), TINY_SLOT_ATTN["num_slots"], TINY_SLOT_ATTN["slot_size"])
    with torch.no_grad():
        pred = model.segment(pixels, (32, 32), noise=noise)
    expected = segmentation_scores(
        torch.stack([it["masks"] for it in items]),
        pred,
        num_slots=TINY_SLOT_ATTN["num_slots"],
        visible=torch.stack([it["visible"] for it in items]),
        matching="iou",
        ties="release",
    )
    assert record["metrics"] == expected


def test_missing_checkpoint_folder_is_a_clear_error(synth_folder, tmp_path, capsys):
    assert _evaluate_cli(tmp_path / "nowhere", synth_folder, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "lsd evaluate: error: checkpoint folder" in err and "nowhere" in err and "does not exist" in err
    assert not (tmp_path / "out").exists()


def test_a_folder_that_is_no_checkpoint_names_the_layouts(synth_folder, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _evaluate_cli(tmp_path / "empty", synth_folder, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "is not a checkpoint" in err and "lsd_config.json" in err and "multiheadstevesa/" in err


def test_missing_data_folder_is_the_readers_error(model_folder, tmp_path, capsys):
    assert _evaluate_cli(model_folder, tmp_path / "no-data", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "data folder" in err and "no-data" in err and "does not exist" in err
    assert not (tmp_path / "out").exists()


def test_wrong_dataset_for_the_folder_names_what_was_looked_for(model_folder, synth_folder, tmp_path, capsys):
    argv = ["evaluate", "--checkpoint", str(model_folder), "--data", str(synth_folder), "--dataset", "movi-e"]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "no 'validation' split of movi-e" in err and "movi-e-validation-with-label" in err


def test_unknown_dataset_name_is_rejected(model_folder, synth_folder, capsys):
    argv = ["evaluate", "--checkpoint", str(model_folder), "--data", str(synth_folder), "--dataset", "mnist"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'mnist'" in err and "movi-e" in err and "synth" in err


def test_defaults_evaluate_the_standin_with_the_reproductions_seed(
    model_folder, synth_folder, model, dataset, tmp_path
):
    """No --dataset and no --seed: the stand-in's reader and the reproductions' seed, so the numbers
    are the ones ``reproductions/*.py`` reports for the same model and images."""
    from lsd.reproduction.runner import RunOptions

    argv = ["evaluate", "--checkpoint", str(model_folder), "--data", str(synth_folder), "--probe-steps", "0"]
    assert main([*argv, "--output", str(tmp_path / "out"), "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    expected = evaluate(model, dataset, seed=RunOptions(output=tmp_path).seed, probe_steps=0, progress=False)
    assert record["seed"] == 42 and record["metrics"] == expected.metrics
