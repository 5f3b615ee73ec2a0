"""The stand-in checkpoint shipped in reproductions/: loadable, resumable, trained by the shipped recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lsd.models.lsd import LatentSlotDiffusion
from lsd.training.config import load_train_config
from lsd.training.trainer import same_model_config

SHIPPED = Path(__file__).resolve().parents[2] / "reproductions" / "checkpoints" / "movi-e-standin"
#: Fields a longer run may change without changing what is trained at each step.
RUN_ONLY_FIELDS = {("train", "max_steps"), ("checkpoint", "every"), ("checkpoint", "total_limit"), ("data", "root")}
#: The learning-rate schedule may change (a final decay), documented in the shipped README.
SCHEDULE_FIELDS = {("optim", "lr_scheduler")}


def test_shipped_checkpoint_is_the_standin_model_in_safetensors_under_20_mb():
    model = LatentSlotDiffusion.from_pretrained(SHIPPED / "model")
    config = json.loads((SHIPPED / "train_config.json").read_text())
    assert same_model_config(config["model"], "standin")
    assert model.slot_attention.config.num_slots == 7
    weights = list((SHIPPED / "model").rglob("*.safetensors"))
    assert {w.parent.name for w in weights} == {"backbone", "slot_attention", "unet"}
    assert not list((SHIPPED / "model").rglob("*.bin"))
    assert sum(w.stat().st_size for w in weights) < 20e6


def test_shipped_checkpoint_was_trained_with_the_cpu_budgets_recipe():
    saved = json.loads((SHIPPED / "train_config.json").read_text())
    recipe = load_train_config("synth-cpu").to_dict()
    for section in ("data", "autoencoder", "optim", "train", "checkpoint"):
        for key, value in recipe[section].items():
            if (section, key) not in RUN_ONLY_FIELDS | SCHEDULE_FIELDS:
                assert saved[section][key] == value, f"{section}.{key}"
    readme = (SHIPPED / "README.md").read_text()
    if saved["optim"]["lr_scheduler"] != recipe["optim"]["lr_scheduler"]:
        assert f"optim.lr_scheduler={saved['optim']['lr_scheduler']}" in readme


def test_shipped_log_never_exceeds_the_recipes_learning_rate_and_reaches_it():
    recipe_lr = load_train_config("synth-cpu").optim.lr
    rates = [
        json.loads(line)["lr"] for line in (SHIPPED / "train_log.jsonl").read_text().splitlines() if '"lr"' in line
    ]
    assert max(rates) == pytest.approx(recipe_lr, rel=1e-6)


def test_shipped_log_ends_at_the_checkpoint_and_carries_the_slot_diagnostic():
    state = torch.load(SHIPPED / "training_state.pt", map_location="cpu", weights_only=False)
    records = [json.loads(line) for line in (SHIPPED / "train_log.jsonl").read_text().splitlines() if line]
    assert records[-1]["step"] == state["step"] == json.loads((SHIPPED / "trainer_state.json").read_text())["step"]
    diagnostic = [r for r in records if "loss_right_slots" in r]
    assert len(diagnostic) >= 4
    last = diagnostic[-4:]  # the decoder uses its slots: shuffling them across images raises the loss
    assert sum(r["loss_shuffled_slots"] for r in last) > 1.1 * sum(r["loss_right_slots"] for r in last)


def _ship_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ship_standin", SHIPPED.parents[1] / "ship_standin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ship_script_accepts_a_schedule_change_and_refuses_any_other_recipe_change():
    ship = _ship_script()
    saved = load_train_config("synth-cpu", ["optim.lr_scheduler=linear", "train.max_steps=24000"]).to_dict()
    assert set(ship.recipe_differences(saved)) == {"optim.lr_scheduler", "train.max_steps"}
    saved["optim"]["lr"] = 1e-3
    saved["train"]["batch_size"] = 16
    with pytest.raises(ValueError, match=r"optim\.lr, train\.batch_size differ"):
        ship.recipe_differences(saved)
    saved = load_train_config("synth-cpu").to_dict()
    saved["model"] = "cpu"
    with pytest.raises(ValueError, match="standin"):
        ship.recipe_differences(saved)
