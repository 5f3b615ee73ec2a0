"""On real layouts (the fixtures of lsd.data.fixtures, written in each dataset's format), every
table's script trains on that dataset's training split and evaluates its validation split, and
nothing is labelled stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsd.data.fixtures import write_clevr, write_clevrtex, write_coco, write_ffhq, write_movi
from lsd.reproduction.cli import build_parser, run_from_args

REPO = Path(__file__).resolve().parents[2]
FAST = ["--set", "train.max_steps=2", "--set", "checkpoint.every=2", "--set", "validation.every=0",
        "--set", "train.batch_size=2"]  # fmt: skip


def _movi_c(data: Path) -> int:
    write_movi(data, name="movi-c", split="train", num_videos=3, num_frames=2, size=64, seed=1)
    return len(write_movi(data, name="movi-c", split="validation", num_videos=1, num_frames=2, size=64, seed=2))


def _clevr(data: Path) -> int:
    write_clevr(data, split="train", num_images=4, seed=1)
    return len(write_clevr(data, split="validation", num_images=2, seed=2))


def _clevrtex(data: Path) -> int:
    write_clevrtex(data, num_images=20, seed=1)  # official fractions: validation = indices 2, 3
    return 2


def _coco(data: Path) -> int:
    write_coco(data, split="train", seed=1)
    return len(write_coco(data, split="val", seed=2))


def _ffhq(data: Path) -> int:
    write_ffhq(data, indices=(0, 1, 2, 3, 4, 5), width=64, height=64)  # 6 files: --set data.ffhq_num_train=4
    return 2


WRITERS = {"movi-c": _movi_c, "clevr": _clevr, "clevrtex": _clevrtex, "coco": _coco, "ffhq": _ffhq}
#: what each table's training reads on real data (data.kind, and the reader or folder)
TRAIN_DATA = {"movi-c": ("glob", "movi-c/movi-c-train-with-label/images"), "clevr": ("dataset", "clevr"),
              "clevrtex": ("dataset", "clevrtex"), "coco": ("glob", "train2017"), "ffhq": ("dataset", "ffhq")}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("table", list(WRITERS))
def test_real_layout_trains_on_the_train_split_and_evaluates_validation(table, tmp_path, capsys):
    data = tmp_path / "data"
    held_out = WRITERS[table](data)
    extra = ["--set", "data.ffhq_num_train=4"] if table == "ffhq" else []  # real FFHQ: 60,000 of 70,000
    args = build_parser(table).parse_args(
        ["--data", str(data), "--budget", "smoke", "--output", str(tmp_path / "out"), "--no-progress", *FAST, *extra]
    )
    record = run_from_args(table, args, REPO / "reproductions")
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["data_label"] == "real" and record["data"]["split"] == "validation"
    kind, source = TRAIN_DATA[table]
    train = record["train_config"]["data"]
    assert train["kind"] == kind
    if kind == "glob":
        assert train["root"] == str(data / source)
    else:
        assert (train["dataset"], train["root"], train.get("split") or "train") == (source, str(data), "train")
    trained = record["methods"]["LSD trained now"]  # real data: no "(stand-in)" anywhere
    assert trained["steps"] == 2 and trained["num_images"] == held_out
    assert "stand-in" not in (tmp_path / "out" / "table.md").read_text().split("\n- ")[0]
    assert (tmp_path / "out" / "table.csv").read_text().startswith("# data: real")
    if table == "ffhq":  # real FFHQ has no part labels: figures only, and the table says so
        assert trained["metrics"] == {} and any("no labels" in note for note in record["notes"])
