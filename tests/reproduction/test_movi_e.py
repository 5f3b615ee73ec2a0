"""The MOVi-E reproduction pipeline on the stand-in: outputs, determinism, diagnostics, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lsd.reproduction.movi_e import ReproduceOptions, learning_rate_phases, reproduce_movi_e, slot_diagnostic

REPO = Path(__file__).resolve().parents[2]
# the smoke budget, cut to a few optimizer steps: what matters here is the pipeline, not learning
FAST = ["train.max_steps=3", "checkpoint.every=3", "validation.every=0", "data.synth_num_train=24"]


def _run(tmp_path: Path, name: str, **kwargs) -> dict:
    options = ReproduceOptions(
        output=tmp_path / name, budget="smoke", cache=tmp_path / "data", overrides=FAST, progress=False, **kwargs
    )
    return reproduce_movi_e(options)


@pytest.mark.slow
def test_smoke_run_writes_every_output_and_same_seed_gives_identical_metrics(tmp_path):
    first = _run(tmp_path, "a")
    second = _run(tmp_path, "b")
    out = tmp_path / "a"
    for name in (
        "results.json",
        "table.md",
        "table.csv",
        "segmentations.png",
        "reconstructions.png",
        "training_curve.png",
    ):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*"))  # nothing half-written (hidden temporary files) left behind
    saved = json.loads((out / "results.json").read_text())
    assert saved["seed"] == 42 and saved["budget"]["name"] == "smoke"
    assert saved["data_label"] == "stand-in" and saved["data"]["kind"].startswith("stand-in")
    assert (out / "table.csv").read_text().startswith("# data: stand-in")
    assert saved["versions"]["torch"] and saved["wall_seconds"] > 0
    labels = list(saved["methods"])
    assert labels[0] == "LSD trained now (stand-in)"
    assert {"k-means RGB, k=7", "k-means RGB+xy, k=7", "grid 3x3"} <= set(labels)
    assert saved["methods"][labels[0]]["steps"] == 3
    assert saved["methods"][labels[0]]["diagnostic"] is None  # 3 steps: no diagnostic record yet
    # determinism: every metric of every method is identical across the two runs
    for label in labels:
        assert first["methods"][label]["metrics"] == second["methods"][label]["metrics"], label
        assert first["methods"][label]["probes"] == second["methods"][label]["probes"], label
    table = (out / "table.md").read_text()
    assert "stand-in: not MOVi-E" in table and "| paper: LSD |" in table.splitlines()[4]


@pytest.mark.slow
def test_kmeans_baselines_run_at_the_slot_count_of_every_evaluated_model(tmp_path):
    from lsd.configs import build_model, load_config

    config = load_config("standin")
    config["slot_attention"]["num_slots"] = 5
    shipped = tmp_path / "shipped-5-slots"
    build_model(config).save_pretrained(shipped)
    record = _run(tmp_path, "mixed", shipped=shipped)
    methods = record["methods"]
    assert methods["LSD shipped checkpoint (stand-in)"]["num_slots"] == 5
    assert methods["LSD trained now (stand-in)"]["num_slots"] == 7
    kmeans = sorted(label for label in methods if label.startswith("k-means"))
    assert kmeans == ["k-means RGB+xy, k=5", "k-means RGB+xy, k=7", "k-means RGB, k=5", "k-means RGB, k=7"]
    for label in kmeans:  # each baseline really made k segments, not the first model's count
        assert methods[label]["num_slots"] == int(label.rsplit("=", 1)[1]), label
    assert methods["k-means RGB, k=5"]["metrics"] != methods["k-means RGB, k=7"]["metrics"]


def test_slot_diagnostic_averages_the_last_quarter_of_diagnostic_records():
    log = [{"step": s, "loss": 1.0} for s in (1, 2)]
    log += [
        {"step": 10 * k, "loss": 1.0, "loss_right_slots": 0.1 * k, "loss_shuffled_slots": 0.3 * k} for k in range(1, 9)
    ]
    diag = slot_diagnostic(log)
    assert diag["steps_averaged"] == [70, 80]
    assert diag["loss_right_slots"] == pytest.approx(0.75)
    assert diag["loss_shuffled_slots"] == pytest.approx(2.25)
    assert diag["shuffled_over_right"] == pytest.approx(3.0)
    assert len(diag["curve"]) == 8
    assert slot_diagnostic([{"step": 1, "loss": 0.5}]) is None


def test_slot_diagnostic_averages_the_last_stage_only():
    """A later stage (another decoder, another loss scale) is not averaged with the one before."""
    first = [{"step": 10 * k, "loss_right_slots": 0.1, "loss_shuffled_slots": 0.2, "stage": 1} for k in range(1, 9)]
    second = [{"step": 10 * k, "loss_right_slots": 0.9, "loss_shuffled_slots": 1.2, "stage": 2} for k in range(1, 5)]
    diag = slot_diagnostic(first + second)
    assert diag["steps_averaged"] == [40] and diag["loss_right_slots"] == pytest.approx(0.9)
    assert diag["shuffled_over_right"] == pytest.approx(1.2 / 0.9) and len(diag["curve"]) == 12
    restarted = [{k: v for k, v in r.items() if k != "stage"} for r in first + second]  # no stage field
    assert slot_diagnostic(restarted)["loss_right_slots"] == pytest.approx(0.9)


def test_learning_rate_phases_split_warmup_plateau_and_decay():
    # warmup to 3e-4 by step 100, constant to 12,000, then linear decay to 0 at 24,000
    def lr(step: int) -> float:
        if step <= 100:
            return 3e-4 * step / 100
        return 3e-4 if step <= 12000 else 3e-4 * (24000 - step) / 12000

    log = [{"step": s, "lr": lr(s), "loss": 0.1} for s in range(50, 24001, 50)]
    log.insert(10, {"step": 525, "loss_right_slots": 0.1, "loss_shuffled_slots": 0.2})  # no lr: skipped
    phases = learning_rate_phases(log)
    assert [p["kind"] for p in phases] == ["rising", "constant", "falling"]
    assert [(p["first_step"], p["last_step"]) for p in phases] == [(50, 100), (100, 12000), (12000, 24000)]
    assert phases[1]["first_lr"] == phases[1]["last_lr"] == 3e-4
    assert phases[2]["last_lr"] == 0.0
    assert learning_rate_phases([]) == []
    assert learning_rate_phases([{"step": 7, "lr": 1e-4}]) == [
        {"kind": "constant", "first_step": 7, "last_step": 7, "first_lr": 1e-4, "last_lr": 1e-4}
    ]


def test_paper_budget_without_data_names_the_missing_flag(tmp_path):
    with pytest.raises(ValueError, match="--data"):
        reproduce_movi_e(ReproduceOptions(output=tmp_path / "o", budget="paper"))


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        reproduce_movi_e(ReproduceOptions(output=tmp_path / "o", data=tmp_path / "nowhere"))


def test_unknown_budget_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown budget 'huge'"):
        reproduce_movi_e(ReproduceOptions(output=tmp_path / "o", budget="huge"))


def test_shipped_checkpoint_must_be_an_lsd_model_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="lsd_config.json"):
        reproduce_movi_e(ReproduceOptions(output=tmp_path / "o", shipped=tmp_path / "empty"))


def test_script_help_lists_the_budgets():
    out = subprocess.run(
        [sys.executable, str(REPO / "reproductions" / "movi_e.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag in ("--data", "--checkpoint", "--budget", "--seed", "--output", "smoke", "paper"):
        assert flag in out


def test_an_output_folder_trained_with_another_seed_is_not_silently_resumed(tmp_path):
    from lsd.reproduction import movi_e, runner

    checkpoint = tmp_path / "o" / "train" / "checkpoints" / "checkpoint-00000003"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text("{}")
    options = ReproduceOptions(output=tmp_path / "o", budget="smoke", cache=tmp_path / "data", overrides=FAST)
    budget = movi_e.BUDGETS["smoke"]
    plan = runner.data_phase(movi_e.MOVI_E, options, budget)
    this_run = runner.train_config_of(options, budget, plan, tmp_path / "o" / "train")
    saved = this_run.to_dict()
    saved["train"]["seed"] = 7
    (checkpoint / "train_config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"different settings \(train.seed\)"):
        reproduce_movi_e(options)
    saved["train"]["seed"], saved["train"]["max_steps"] = options.seed, 100  # a longer run of the same recipe
    (checkpoint / "train_config.json").write_text(json.dumps(saved))
    runner.check_resumable(this_run)  # accepted


@pytest.mark.slow
def test_real_movi_layout_trains_on_its_frames_and_evaluates_its_validation_split(tmp_path):
    from lsd.data.fixtures import write_movi

    data = tmp_path / "movi"
    write_movi(data, split="train", num_videos=8, num_frames=2, size=64, seed=1)  # 90 %: 14 frames
    write_movi(data, split="validation", num_videos=2, num_frames=2, size=64, seed=2)
    options = ReproduceOptions(
        output=tmp_path / "out", data=data, budget="smoke", overrides=FAST[:3], progress=False, shipped=None
    )
    record = reproduce_movi_e(options)
    assert record["data"] == {"kind": "MOVi-E", "folder": str(data), "split": "validation"}
    assert record["data_label"] == "real"
    trained = record["methods"]["LSD trained now"]  # real data: no "(stand-in)" label anywhere
    assert trained["num_images"] == 4 and trained["steps"] == 3
    assert record["train_config"]["data"]["kind"] == "glob"
    assert record["train_config"]["data"]["root"] == str(data / "movi-e" / "movi-e-train-with-label" / "images")
    assert "stand-in" not in (tmp_path / "out" / "table.md").read_text()
