"""``--seeds``: one run per seed, then mean ± std and each seed in table.md, table.csv, results.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lsd.reproduction.cli import build_parser, main, run_from_args
from lsd.reproduction.seeds import aggregate_seeds, parse_seeds, seed_frames
from lsd.reproduction.table import SEGMENTATION_ROWS, TERMINAL_WIDTH

REPO = Path(__file__).resolve().parents[2]
FAST = ["--set", "train.max_steps=3", "--set", "checkpoint.every=3", "--set", "validation.every=0"]


def _record(fg_ari: float, mbo: float, miou_image: float | None = 0.3) -> dict:
    metrics = {"fg_ari": fg_ari, "mbo": mbo, "miou": mbo / 2, "mbo_image": mbo, "miou_image": miou_image, "ari": 0.1}
    return {"methods": {"ours": {"metrics": metrics}, "grid 3x3": {"metrics": dict(metrics, fg_ari=0.0)}}}


def test_parse_seeds():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds(" 7 , 3") == [7, 3]
    for bad, match in (("0,x", "not an integer"), ("1,1", "repeated"), ("-1", "outside"), ("", "not an integer")):
        with pytest.raises(ValueError, match=match):
            parse_seeds(bad)


def test_mean_std_and_each_seed_are_the_seeds_values():
    records = {0: _record(0.50, 0.20), 1: _record(0.60, 0.30, miou_image=None), 2: _record(0.70, 0.25)}
    agg = aggregate_seeds(seed_frames(records, "movi-c", SEGMENTATION_ROWS))
    fg = [50.0, 60.0, 70.0]  # percent, typed from the records above
    row = agg["values"]["ours"]["FG-ARI %"]
    assert row["mean"] == pytest.approx(np.mean(fg)) == 60.0
    assert row["std"] == pytest.approx(np.std(fg, ddof=1)) == 10.0  # the sample std
    assert row["per_seed"] == {"0": pytest.approx(50.0), "1": pytest.approx(60.0), "2": pytest.approx(70.0)}
    assert agg["summary"].loc["FG-ARI %", "ours"] == "60.00 ± 10.00"
    assert agg["per_seed"].loc["FG-ARI %", "ours"] == "50.00 / 60.00 / 70.00"
    assert list(agg["per_seed"].columns) == ["ours", "grid 3x3"]  # our columns only
    mbo = [20.0, 30.0, 25.0]
    assert agg["csv"].loc["mBO % (object-averaged)", "ours mean"] == pytest.approx(np.mean(mbo))
    assert agg["csv"].loc["mBO % (object-averaged)", "ours std"] == pytest.approx(np.std(mbo, ddof=1))
    assert agg["csv"].loc["mBO % (object-averaged)", "ours seed 2"] == pytest.approx(25.0)
    # a value missing in one seed gives no mean, not a mean of the rest
    assert agg["values"]["ours"]["mIoU % (image-averaged)"]["mean"] is None
    assert agg["summary"].loc["mIoU % (image-averaged)", "ours"] == "—"
    # the paper's and the anchors' columns are carried over untouched, as numbers
    assert agg["summary"].loc["mIoU % (object-averaged)", "paper: LSD"] == pytest.approx(44.19)
    assert agg["summary"].loc["FG-ARI %", "anchor: CODA"] == pytest.approx(59.19)


def test_one_seed_has_no_std():
    agg = aggregate_seeds(seed_frames({5: _record(0.5, 0.2)}, "movi-c", SEGMENTATION_ROWS))
    assert agg["values"]["ours"]["FG-ARI %"]["std"] is None
    assert agg["summary"].loc["FG-ARI %", "ours"] == "50.00 ± —"


def test_seeds_that_evaluated_different_methods_are_refused():
    records = {0: _record(0.5, 0.2), 1: {"methods": {"ours": _record(0.5, 0.2)["methods"]["ours"]}}}
    with pytest.raises(ValueError, match="different methods"):
        seed_frames(records, "movi-c", SEGMENTATION_ROWS)


def test_bad_seeds_flag_is_one_line_before_any_compute(tmp_path, capsys):
    assert main("coco", ["--seeds", "0,0", "--output", str(tmp_path / "o"), "--budget", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed 0 is repeated" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_three_seeds_of_the_coco_standin_at_the_smoke_budget(tmp_path, capsys):
    output = tmp_path / "out"
    argv = ["--budget", "smoke", "--seeds", "0,1,2", "--output", str(output), "--cache", str(tmp_path / "data")]
    args = build_parser("coco").parse_args([*argv, "--no-progress", *FAST])
    record = run_from_args("coco", args, REPO / "reproductions")
    printed = capsys.readouterr().out

    assert record["seeds"] == [0, 1, 2] and record["data_label"] == "stand-in"
    assert record["mask_resolution"] == "native"
    for seed in (0, 1, 2):  # every seed trained and evaluated with its own seed
        run = json.loads((output / f"seed-{seed}" / "results.json").read_text())
        assert run["seed"] == seed and run["train_config"]["train"]["seed"] == seed
    saved = json.loads((output / "results.json").read_text())
    method = next(label for label in saved["methods"] if label.startswith("LSD trained now"))
    for row, entry in saved["methods"][method].items():
        per_seed = [json.loads((output / f"seed-{s}" / "results.json").read_text()) for s in (0, 1, 2)]
        if row == "FG-ARI % (overlaps ignored)":
            expected = [100 * r["methods"][method]["metrics"]["fg_ari"] for r in per_seed]
            assert entry["per_seed"] == {str(s): pytest.approx(v) for s, v in zip((0, 1, 2), expected, strict=True)}
            assert entry["mean"] == pytest.approx(np.mean(expected))
            assert entry["std"] == pytest.approx(np.std(expected, ddof=1))
    assert "mBO^c % (class masks, image-averaged)" in saved["methods"][method]  # COCO's class masks
    assert set(saved["anchors"]) >= {"CODA", "SPOT"}

    table = (output / "table.md").read_text()
    assert "seeds 0, 1, 2" in table.splitlines()[2] and " ± " in table and "anchor: CODA" in table
    csv = (output / "table.csv").read_text()
    assert csv.startswith("# data: stand-in\n# seeds: 0, 1, 2")
    assert f"{method} seed 2" in csv and f"{method} std" in csv
    lines = [line for line in printed.splitlines() if not line.startswith(str(tmp_path)) and "tmp" not in line]
    assert max(map(len, lines)) <= TERMINAL_WIDTH
    assert "±" in printed.split("mean ± std over seeds")[-1]
    assert not math.isnan(saved["methods"][method]["FG-ARI % (overlaps ignored)"]["mean"])
