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
    ],
)
def test_bad_fields_are_named(override, message):
    with pytest.raises(ValueError, match=message):
        load_train_config("synth-smoke", [override])


def test_cli_reports_config_errors(capsys, tmp_path):
    assert main(["train", "--config", "synth-smoke", "--set", "train.learning_rate=1"]) == 2
    assert "train.learning_rate" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "trian": {}}))
    assert main(["train", "--config", str(bad)]) == 2
    assert "trian" in capsys.readouterr().err
    assert main(["train", "--config", "no-such-config"]) == 2


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
