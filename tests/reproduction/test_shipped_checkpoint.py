"""The stand-in checkpoint shipped in reproductions/: loadable, intact, a model + recipe trained by the shipped recipe."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from lsd.configs import load_config
from lsd.models.lsd import LatentSlotDiffusion
from lsd.training.config import load_train_config

SHIPPED = Path(__file__).resolve().parents[2] / "reproductions" / "checkpoints" / "movi-e-standin"


def _ship_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ship_standin", SHIPPED.parents[1] / "ship_standin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_shipped_checkpoint_is_the_standin_model_in_safetensors_under_20_mb():
    model = LatentSlotDiffusion.from_pretrained(SHIPPED / "model")
    saved = json.loads((SHIPPED / "train_config.json").read_text())
    _ship_script().recipe_differences(saved)  # the standin model, changed only where a stage may
    assert model.slot_attention.config.num_slots == load_config(saved["model"])["slot_attention"]["num_slots"]
    weights = list((SHIPPED / "model").rglob("*.safetensors"))
    # the decoder stage (stage 4) added a trained KL autoencoder: its weights ship too
    assert {w.parent.name for w in weights} == {"backbone", "slot_attention", "unet", "vae"}
    assert type(model.vae).__name__ == "AutoencoderKL" and model.unet.config.in_channels == 4
    assert not list((SHIPPED / "model").rglob("*.bin"))
    assert sum(w.stat().st_size for w in weights) < 20e6


def test_shipped_stages_record_what_each_changed_and_the_readme_states_it():
    ship = _ship_script()
    saved = json.loads((SHIPPED / "train_config.json").read_text())
    stages = json.loads((SHIPPED / "stages.json").read_text())
    assert {k: list(v) for k, v in ship.recipe_differences(saved).items()} == stages[-1]["differences"]
    readme = (SHIPPED / "README.md").read_text()
    quiet = {f"{s}.{k}" for s, k in ship.RUN_ONLY_FIELDS if s != "train"}
    for stage in stages:
        assert f"**Stage {stage['stage']}**" in readme
        for name, (old, new) in stage["differences"].items():
            if name not in quiet:
                assert f"`{name}` {old!r} -> {new!r}" in readme, name
        for command in stage["commands"]:
            assert command in readme


def test_shipped_log_never_exceeds_the_recipes_learning_rate_and_reaches_it():
    recipe_lr = load_train_config("synth-cpu").optim.lr
    rates = [r["lr"] for r in _records(SHIPPED / "train_log.jsonl") if "lr" in r]
    assert max(rates) == pytest.approx(recipe_lr, rel=1e-6)


def test_shipped_folder_matches_its_manifest_and_holds_no_optimizer_state_or_pickle():
    from lsd._integrity import verify_manifest

    assert verify_manifest(SHIPPED) and verify_manifest(SHIPPED / "model")
    assert not list(SHIPPED.glob("training_state*")) and not list(SHIPPED.rglob("*.pt"))


def test_shipped_folder_is_refused_by_resume_and_starts_a_new_stage_with_init_from(tmp_path):
    from lsd.training.trainer import load_initial_weights, verify_checkpoint

    with pytest.raises(FileNotFoundError, match="holds no training state.*init_from"):
        verify_checkpoint(SHIPPED)  # what `lsd train --resume reproductions/checkpoints/movi-e-standin` runs
    model = LatentSlotDiffusion.from_pretrained(SHIPPED / "model")
    fresh = LatentSlotDiffusion.from_pretrained(SHIPPED / "model")
    for p in fresh.parameters():
        torch.nn.init.zeros_(p)
    assert load_initial_weights(fresh, SHIPPED) == SHIPPED / "model"
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True))


def test_shipped_log_covers_every_stage_and_ends_at_the_checkpoint():
    records = _records(SHIPPED / "train_log.jsonl")
    stages = json.loads((SHIPPED / "stages.json").read_text())
    assert records[-1]["step"] == json.loads((SHIPPED / "trainer_state.json").read_text())["step"]
    assert records[-1]["total_step"] == stages[-1]["last_step"] and stages[0]["first_step"] == 1
    for before, after in itertools.pairwise(stages):
        assert after["first_step"] == before["last_step"] + 1
    for stage in stages:
        assert stage["last_step"] - stage["first_step"] + 1 == stage["steps"]
        inside = [r for r in records if r["stage"] == stage["stage"]]
        assert inside and all(stage["first_step"] <= r["total_step"] <= stage["last_step"] for r in inside)
        assert all(r["total_step"] == stage["first_step"] - 1 + r["step"] for r in inside)
    totals = [r["total_step"] for r in records]
    assert totals == sorted(set(totals))  # each step once, in order


def test_shipped_log_carries_the_slot_diagnostic_and_the_decoder_uses_its_slots():
    diagnostic = [r for r in _records(SHIPPED / "train_log.jsonl") if "loss_right_slots" in r]
    assert len(diagnostic) >= 4
    last = diagnostic[-4:]  # shuffling the slots across images raises the loss
    assert sum(r["loss_shuffled_slots"] for r in last) > 1.1 * sum(r["loss_right_slots"] for r in last)


def test_ship_script_accepts_schedule_and_weight_free_model_changes_and_refuses_the_rest():
    ship = _ship_script()
    saved = load_train_config(
        "synth-cpu",
        ["optim.lr_scheduler=linear", "optim.lr=1e-4", "train.max_steps=24000", "model.slot_attention.num_slots=11"],
    ).to_dict()
    assert set(ship.recipe_differences(saved)) == {
        "optim.lr_scheduler", "optim.lr", "train.max_steps", "model.slot_attention.num_slots"
    }  # fmt: skip
    saved["optim"]["encoder_lr_scale"] = 1.0
    saved["train"]["batch_size"] = 16
    with pytest.raises(ValueError, match=r"optim\.encoder_lr_scale, train\.batch_size differ"):
        ship.recipe_differences(saved)
    saved = load_train_config("synth-cpu", ["model.unet.block_out_channels=[32, 64, 128]"]).to_dict()
    with pytest.raises(ValueError, match=r"model\.unet\.block_out_channels differ"):
        ship.recipe_differences(saved)
    saved = load_train_config("synth-cpu", ["model=cpu"]).to_dict()
    with pytest.raises(ValueError, match="not the synth-cpu recipe"):
        ship.recipe_differences(saved)


def _log(steps, lr=1e-4):
    return [{"step": s, "loss": 0.2, "lr": lr} for s in steps]


def test_merge_stages_offsets_a_new_stage_and_continues_the_last_one():
    ship = _ship_script()
    first = load_train_config("synth-cpu", ["train.max_steps=200"]).to_dict()
    stages, records = ship.merge_stages([], [], _log(range(50, 201, 50)), first, 200, ["cmd 1"], False)
    assert stages[0] | {"differences": None} == {
        "stage": 1, "first_step": 1, "last_step": 200, "steps": 200, "start": "random initialisation",
        "commands": ["cmd 1"], "differences": None,
    }  # fmt: skip
    second = load_train_config(
        "synth-cpu", ["train.max_steps=100", "init_from=reproductions/checkpoints/movi-e-standin"]
    ).to_dict()
    stages, records = ship.merge_stages(stages, records, _log(range(50, 101, 50)), second, 100, ["cmd 2"], True)
    assert [(s["first_step"], s["last_step"]) for s in stages] == [(1, 200), (201, 300)]
    assert [(r["stage"], r["step"], r["total_step"]) for r in records[-2:]] == [(2, 50, 250), (2, 100, 300)]
    # resumed from that shipped checkpoint: stage 2 goes on; its log continues at step 150
    resumed = load_train_config("synth-cpu", ["train.max_steps=200"]).to_dict()
    stages, records = ship.merge_stages(stages, records, _log(range(150, 201, 50)), resumed, 200, ["cmd 3"], False)
    assert [(s["first_step"], s["last_step"]) for s in stages] == [(1, 200), (201, 400)]
    assert stages[1]["commands"] == ["cmd 2", "cmd 3"]
    assert [r["total_step"] for r in records] == [50, 100, 150, 200, 250, 300, 350, 400]


def test_merge_stages_refuses_a_stage_not_started_from_the_shipped_checkpoint_or_a_gap():
    ship = _ship_script()
    base = load_train_config("synth-cpu", ["train.max_steps=100"]).to_dict()
    stages, records = ship.merge_stages([], [], _log([50, 100]), base, 100, [], False)
    other = load_train_config("synth-cpu", ["init_from=somewhere/else"]).to_dict()
    with pytest.raises(ValueError, match="not the shipped checkpoint"):
        ship.merge_stages(stages, records, _log([50, 100]), other, 100, [], False)
    with pytest.raises(ValueError, match="does not reach step 200"):  # resumed at 250, shipped log ends at 100
        ship.merge_stages(stages, records, _log([250, 300]), base, 300, [], False)
    with pytest.raises(ValueError, match="no shipped stage"):
        ship.merge_stages([], [], _log([250, 300]), base, 300, [], False)


def test_a_decoder_stage_may_change_the_decoder_side_only():
    ship = _ship_script()
    saved = load_train_config("synth-cpu-decoder").to_dict()
    differences = ship.recipe_differences(saved)
    assert {"model.unet.in_channels", "model.vae", "model.frozen", "autoencoder.kind", "optim.encoder_lr_scale"} <= set(
        differences
    )
    assert differences["init_from_components"] == (None, ["backbone", "slot_attention"])
    # the same changes without the encoder-only init are refused, and so is any encoder change
    whole = {**saved, "init_from_components": None}
    with pytest.raises(ValueError, match=r"not the synth-cpu recipe: autoencoder\.kind, .*model\.unet\.in_channels"):
        ship.recipe_differences(whole)
    wider = load_train_config("synth-cpu-decoder", ["model.slot_attention.slot_size=32"]).to_dict()
    with pytest.raises(ValueError, match=r"\(decoder stage\): model\.slot_attention\.slot_size differ"):
        ship.recipe_differences(wider)
    stages, _ = ship.merge_stages([], [], _log([50, 100]), load_train_config("synth-cpu").to_dict(), 100, [], False)
    stages, _ = ship.merge_stages(stages, [], _log([50, 100]), saved, 100, ["cmd"], True)
    assert "decoder stage" in stages[-1]["start"] and stages[-1]["first_step"] == 101


def test_a_decoder_stage_is_refused_unless_the_encoder_weights_are_bitwise_the_shipped_ones(tmp_path):
    from lsd.configs import build_model

    ship = _ship_script()
    torch.manual_seed(0)
    shipped = build_model("tiny")
    shipped.save_pretrained(tmp_path / "shipped")
    config = load_config("tiny")
    config["unet"]["block_out_channels"] = [8, 16]
    config["slot_attention"]["num_slots"] = 6  # no per-slot weights: allowed
    candidate = build_model(config)
    candidate.backbone.load_state_dict(shipped.backbone.state_dict())
    candidate.slot_attention.load_state_dict(shipped.slot_attention.state_dict())
    candidate.save_pretrained(tmp_path / "candidate")
    ship.check_encoder_unchanged(tmp_path / "candidate", tmp_path / "shipped")  # a new decoder only: accepted
    with torch.no_grad():
        next(candidate.slot_attention.parameters()).add_(1e-6)
    candidate.save_pretrained(tmp_path / "candidate")
    with pytest.raises(ValueError, match=r"decoder stage: slot_attention\..* differs from the shipped weights"):
        ship.check_encoder_unchanged(tmp_path / "candidate", tmp_path / "shipped")


def test_shipped_diagnostic_is_the_decoder_stage_alone():
    """The README's numbers: the last quarter of the decoder stage (stage 4), not an average over
    the stages (the encoder stages' losses are on another scale)."""
    from lsd.reproduction.runner import slot_diagnostic

    records = _records(SHIPPED / "train_log.jsonl")
    decoder = [r for r in records if r.get("stage") == 4 and "loss_right_slots" in r]
    last = decoder[-(len(decoder) // 4) :]
    diag = slot_diagnostic(records)
    assert diag["steps_averaged"] == [r["step"] for r in last]
    assert diag["loss_right_slots"] == pytest.approx(sum(r["loss_right_slots"] for r in last) / len(last))
    assert diag["loss_shuffled_slots"] == pytest.approx(sum(r["loss_shuffled_slots"] for r in last) / len(last))
    assert diag["shuffled_over_right"] > 1.2
