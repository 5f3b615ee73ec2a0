"""The MOVi-E table trains and evaluates on what ``lsd data prepare`` wrote from shards
tensorflow-datasets made (tests/fixtures/movi_tfds): the real-layout path, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsd.data.prepare import prepare_movi
from lsd.reproduction.movi_e import BUDGETS, ReproduceOptions, reproduce_movi_e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "movi_tfds"
FAST = ["train.max_steps=3", "checkpoint.every=3", "validation.every=0"]


@pytest.mark.slow
def test_movi_e_table_trains_and_evaluates_on_the_prepared_dump(tmp_path):
    data = tmp_path / "movi"
    train, validation = prepare_movi("movi-e", data, source=str(FIXTURES), resolution=16, progress=False)
    options = ReproduceOptions(
        output=tmp_path / "out", data=data, budget="smoke", overrides=FAST, progress=False, shipped=None
    )
    record = reproduce_movi_e(options)
    assert record["data"] == {"kind": "MOVi-E", "folder": str(data), "split": "validation"}
    assert record["data_label"] == "real"
    trained = record["methods"]["LSD trained now"]
    frames = validation.videos * 5  # 5 frames a video
    assert trained["steps"] == 3 and trained["num_images"] == min(frames, BUDGETS["smoke"].eval_images or frames)
    assert record["train_config"]["data"]["root"] == str(train.folder / "images")
    assert trained["metrics"]
