"""Every paper table end to end on tiny settings (the smoke budget cut to 3 optimizer steps): each
writes its outputs labelled stand-in, prints a terminal table within 100 columns, and two runs with
the same seed give identical metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsd.reproduction.cli import build_parser, run_from_args
from lsd.reproduction.table import TERMINAL_WIDTH

REPO = Path(__file__).resolve().parents[2]
FAST = ["--set", "train.max_steps=3", "--set", "checkpoint.every=3", "--set", "validation.every=0"]
OUTPUTS = ("results.json", "table.md", "table.csv")
FIGURES = {  # what each table must draw (beside segmentations.png / training_curve.png)
    "movi-c": ["segmentations.png", "training_curve.png"],
    "movi-e": ["segmentations.png", "training_curve.png", "reconstructions.png"],
    "clevr": ["segmentations.png", "training_curve.png"],
    "clevrtex": ["segmentations.png", "training_curve.png"],
    "ffhq": ["segmentations.png", "part_swaps.png"],
    "coco": ["segmentations.png"],
    "generation": ["generation.png"],
}


def _run(table: str, output: Path, cache: Path, capsys) -> tuple[dict, str]:
    args = build_parser(table).parse_args(
        ["--budget", "smoke", "--output", str(output), "--cache", str(cache), "--no-progress", *FAST]
    )
    record = run_from_args(table, args, REPO / "reproductions")
    return record, capsys.readouterr().out


def _without_seconds(value):
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k != "seconds"}
    return value


def _metrics(record: dict) -> dict:
    """Every number a method was scored with (wall times left out)."""
    return {label: _without_seconds({k: v for k, v in m.items() if k in ("metrics", "probes", "part_swap", "generation")})
            for label, m in record["methods"].items()}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("table", list(FIGURES))
def test_table_runs_on_its_standin_labelled_and_deterministic(table, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LSD_HOME", str(tmp_path / "home"))  # the FID network's cache (generation)
    cache = tmp_path / "data"
    first, printed = _run(table, tmp_path / "a", cache, capsys)
    second, _ = _run(table, tmp_path / "b", cache, capsys)
    out = tmp_path / "a"
    for name in (*OUTPUTS, *FIGURES[table]):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*"))  # nothing half-written left behind
    saved = json.loads((out / "results.json").read_text())
    assert saved["task"] == table and saved["data_label"] == "stand-in" and saved["seed"] == 42
    assert (out / "table.csv").read_text().startswith("# data: stand-in")
    assert "stand-in" in (out / "table.md").read_text().splitlines()[0]
    assert all("stand-in" in label or label.startswith(("k-means", "grid")) for label in saved["methods"])
    lines = [line for line in printed.splitlines() if not line.startswith(str(tmp_path))]  # the output path
    assert max(map(len, lines)) <= TERMINAL_WIDTH, max(lines, key=len)
    assert _metrics(first) == _metrics(second)  # same seed, same numbers
    if table == "generation" and saved["fid"]:  # the [fid] extra is installed: real FID beside the paper's
        fids = [m["generation"]["movi-e"]["fid_composed"] for m in saved["methods"].values()]
        assert fids and all(v > 0 for v in fids)
        assert "FID / KID: the standard Inception-v3, 8 stand-in images" in (out / "table.md").read_text()
    if table != "generation":
        baselines = {label for label in saved["methods"] if label.startswith(("k-means", "grid"))}
        assert {"grid 3x3", "k-means RGB, k=7", "k-means RGB+xy, k=7"} <= baselines or table == "ffhq"
