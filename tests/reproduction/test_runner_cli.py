"""Every table has a script with the same flags, `--list` names them all, bad flags fail in one line,
and the terminal table fits in 100 columns whatever the table."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from lsd.reproduction.table import TERMINAL_WIDTH, results_table, to_terminal
from lsd.reproduction.tables import SEGMENTATION_TABLES, table_names

REPO = Path(__file__).resolve().parents[2]
TABLES = ["movi-c", "movi-e", "clevr", "clevrtex", "ffhq", "coco", "generation"]  # the list


def _script(table: str) -> Path:
    return REPO / "reproductions" / f"{table.replace('-', '_')}.py"


def test_every_paper_table_has_a_script_and_a_nox_session():
    assert table_names() == TABLES
    noxfile = (REPO / "noxfile.py").read_text()
    for table in TABLES:
        assert _script(table).is_file(), table
    assert "TABLES = (" + ", ".join(f'"{t}"' for t in TABLES) + ")" in noxfile


def test_list_names_every_table():
    out = subprocess.run([sys.executable, "-m", "lsd.reproduction", "--list"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    heads = [line.split(":")[0] for line in lines if line and not line.startswith((" ", "run one", "tables:"))]
    assert heads == TABLES
    assert max(map(len, lines)) <= 100


@pytest.mark.parametrize("table", TABLES)
def test_each_script_takes_the_same_flags(table):
    out = subprocess.run([sys.executable, str(_script(table)), "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    for flag in ("--data", "--checkpoint", "--budget", "--seed", "--output", "--list", "--set"):
        assert flag in out.stdout, (table, flag)
    for budget in ("smoke", "cpu", "paper"):
        assert budget in out.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--data", "/no/such/folder"], "--data /no/such/folder: no such folder"),
        (["--budget", "paper"], "--budget paper trains the paper's recipe"),
        (["--checkpoint", "/no/such/ckpt"], "--checkpoint /no/such/ckpt: no such file or folder"),
    ],
)
def test_bad_flags_fail_in_one_line_before_any_work(tmp_path, flags, message):
    out = subprocess.run(
        [sys.executable, str(_script("clevrtex")), "--output", str(tmp_path / "o"), "--cache", str(tmp_path), *flags],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and message in out.stderr, out.stderr
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def _record(value: float) -> dict:
    metrics = {k: value for k in ("fg_ari", "mbo", "miou", "mbo_image", "miou_image")}
    probes = {name: {"value": value} for name in ("category", "color", "shape", "x", "pixel_coords", "rotation")}
    return {"metrics": metrics, "probes": probes, "part_swap": {"mean": {"success_rate": value}}}


@pytest.mark.parametrize("table", sorted(SEGMENTATION_TABLES))
def test_terminal_table_fits_in_100_columns_and_keeps_every_number(table):
    spec = SEGMENTATION_TABLES[table]
    labels = ["LSD trained now (stand-in)", "LSD shipped checkpoint (stand-in)", "k-means RGB+xy, k=15", "grid 3x3",
              "LSD-Mix trained now (stand-in) with a deliberately long label"]  # fmt: skip
    frame = results_table(
        {label: _record(0.25 + i / 100) for i, label in enumerate(labels)}, spec.paper_dataset, spec.rows
    )
    text = to_terminal(frame)
    assert max(map(len, text.splitlines())) <= TERMINAL_WIDTH
    printed = text.split()
    for i in range(len(labels)):  # every value of every method is printed somewhere
        assert f"{100 * (0.25 + i / 100):.2f}" in printed
    for column in frame.columns:
        if column.startswith("paper:") and column != "paper: provenance":
            for value in frame[column]:
                assert (isinstance(value, float) and math.isnan(value)) or f"{value:.2f}" in printed
