import json

import pytest

from lsd.cli import main
from lsd.training.config import available_train_configs, load_train_config


def test_shipped_training_configs_load():
    names = available_train_configs()
    assert {"movi-e-paper", "coco-paper", "synth-cpu", "synth-smoke"} <= set(names)
    for name in names:
        load_train_config(name)
    paper = load_train_config("movi-e-paper")  # the release's recipe
    assert (paper.optim.lr, paper.train.batch_size, paper.train.max_steps, paper.data.portion) == (
        1e-4,
        32,
        200000,
        [0.0, 0.9],
    )
    assert (paper.checkpoint.every, paper.checkpoint.total_limit, paper.train.mixed_precision) == (25000, 2, "fp16")


def test_overrides_parse_json_values():
    config = load_train_config(
        "synth-smoke", ["train.max_steps=7", "optim.betas=[0.8, 0.9]", "data.synth_level=hard", "train.seed=1"]
    )
    assert config.train.max_steps == 7 and config.optim.betas == [0.8, 0.9] and config.data.synth_level == "hard"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.max_stepz=3", r"unknown config field.*train\.max_stepz"),
        ("optimizer.lr=1", r"unknown config field.*optimizer"),
        ("train.mixed_precision=fp8", "train.mixed_precision"),
        ("train.batch_size=0", "train.batch_size"),
        ("no_equals_sign", "section.field=value"),
        ("train.batch_size=abc", r"train\.batch_size='abc': Input should be a valid integer"),
        ("train.batch_size=true", r"train\.batch_size=True: Input should be a valid integer"),
        ("train.batch_size=8.5", r"train\.batch_size=8\.5: Input should be a valid integer"),
        ("train.log_every=0", r"train\.log_every=0: Input should be greater than or equal to 1"),
        ("train.seed=-1", r"train\.seed=-1: Input should be greater than or equal to 0"),
        ("optim.lr=NaN", r"optim\.lr=nan: Input should be a finite number"),
        ("optim.lr=0", r"optim\.lr=0: Input should be greater than 0"),
        ("optim.betas=[0.9, 1.5]", r"optim\.betas\.1=1\.5: Input should be less than 1"),
        ("optim.lr_scheduler=cosine_warm", r"optim\.lr_scheduler='cosine_warm': Input should be 'constant'"),
        ("data.portion=[0.5, 0.2]", r"data\.portion=\[0\.5, 0\.2\]: needs lo < hi"),
        ("data.resolution=0", r"data\.resolution=0: Input should be greater than or equal to 8"),
        ("data.synth_level=impossible", r"data\.synth_level='impossible'"),
        ("checkpoint.every=0", r"checkpoint\.every=0"),
        ("validation.sample_steps=0", r"validation\.sample_steps=0"),
        ("autoencoder.kind=pretrained", r"autoencoder\.path is required"),
        ("model=5", r"model=5: Input should be a valid string"),
    ],
)
def test_bad_fields_are_named(override, message):
    with pytest.raises(ValueError, match=message):
        load_train_config("synth-smoke", [override])


def test_values_in_a_file_are_not_coerced(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": {"kind": "synth"}, "train": {"batch_size": "8"}}))
    with pytest.raises(ValueError, match=r"bad\.json: train\.batch_size='8': Input should be a valid integer"):
        load_train_config(str(bad))


def test_the_allowed_choices_are_the_libraries_own():
    from diffusers.optimization import SchedulerType

    from lsd.data.synthetic import LEVELS
    from lsd.training.config import LR_SCHEDULERS, SYNTH_LEVELS

    assert set(LR_SCHEDULERS) <= {s.value for s in SchedulerType}
    assert set(SYNTH_LEVELS) == set(LEVELS)


def test_cli_reports_config_errors(capsys, tmp_path):
    assert main(["train", "--config", "synth-smoke", "--set", "train.learning_rate=1"]) == 2
    assert "train.learning_rate" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "trian": {}}))
    assert main(["train", "--config", str(bad)]) == 2
    assert "trian" in capsys.readouterr().err
    assert main(["train", "--config", "no-such-config"]) == 2
    capsys.readouterr()
    assert main(["train", "--config", "synth-smoke", "--set", "train.batch_size=abc"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "train.batch_size='abc'" in err[0]


def test_cli_refuses_a_fresh_run_into_another_runs_folder_in_one_line(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_log.jsonl").write_text('{"step": 1}\n')
    argv = ["train", "--config", "synth-smoke", "--output-dir", str(run), "--set", f"data.root={tmp_path / 'd'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "already holds files (train_log.jsonl)" in err[0] and "--overwrite" in err[0]
    assert (run / "train_log.jsonl").read_text() == '{"step": 1}\n' and not (tmp_path / "d").exists()
    assert main([*argv, "--set", "model.slot_attention.num_slots=0", "--overwrite"]) == 2  # named before data
    assert "slot_attention.num_slots=0" in capsys.readouterr().err and not (tmp_path / "d").exists()


def test_model_overrides_resolve_a_named_model_config_and_change_only_that_field():
    from lsd.configs import load_config

    config = load_train_config("synth-smoke", ["model.slot_attention.num_slots=11", "model.objective.min_timestep=100"])
    base = load_config(load_train_config("synth-smoke").model)
    assert isinstance(config.model, dict)
    assert config.model["slot_attention"]["num_slots"] == 11 and config.model["objective"]["min_timestep"] == 100
    for section in ("backbone", "unet", "scheduler", "vae"):
        assert config.model[section] == base[section]
    rest = {k: v for k, v in config.model["slot_attention"].items() if k != "num_slots"}
    assert rest == {k: v for k, v in base["slot_attention"].items() if k != "num_slots"}


def test_model_override_of_an_unknown_model_config_is_named():
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        load_train_config("synth-smoke", ["model=no-such-model", "model.slot_attention.num_slots=3"])
