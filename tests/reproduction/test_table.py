"""The reproduction table: our columns beside the paper's, with provenance and honest blanks."""

from __future__ import annotations

import math

import pytest

from lsd.reproduction.paper import paper_numbers, paper_table
from lsd.reproduction.table import PROVENANCE_COLUMN, results_table, to_markdown

# The paper's MOVi-E numbers as docs/paper-numbers.md gives them (typed here, not read from the code).
PAPER_MOVI_E_MIOU = {"LSD": 37.64, "SLATE": 28.59, "SLATE+": 20.63}
PAPER_SHAPE_ACCURACY = {"LSD": 80.23, "SLATE": 74.24, "SLATE+": 71.63}


def _record(fg_ari: float, mbo: float, category: float | None = None) -> dict:
    metrics = {"fg_ari": fg_ari, "mbo": mbo, "miou": mbo / 2, "mbo_image": mbo, "miou_image": mbo / 2}
    probes = {} if category is None else {"category": {"kind": "discrete", "measure": "accuracy", "value": category}}
    return {"metrics": metrics, "probes": probes}


def test_paper_file_holds_the_papers_numbers_and_unknowns_as_null():
    movi = paper_table("movi-e")
    seg = movi["segmentation"]["methods"]
    assert {m: seg[m]["miou"] for m in PAPER_MOVI_E_MIOU} == PAPER_MOVI_E_MIOU
    assert all(seg[m]["fg_ari"] is None and seg[m]["mbo"] is None for m in seg)  # not recovered: never invented
    assert "2303.10834" in paper_numbers()["source"]
    with pytest.raises(KeyError, match="no paper numbers"):
        paper_table("imagenet")


def test_table_puts_our_fractions_as_percent_and_the_paper_in_its_own_columns():
    table = results_table({"ours": _record(0.5, 0.25, category=0.8), "baseline": _record(0.1, 0.2)})
    assert list(table.columns) == ["ours", "baseline", "paper: LSD", "paper: SLATE", "paper: SLATE+", PROVENANCE_COLUMN]
    assert table.loc["FG-ARI %", "ours"] == pytest.approx(50.0)
    assert table.loc["mBO % (object-averaged)", "baseline"] == pytest.approx(20.0)
    assert table.loc["shape (category) accuracy %", "ours"] == pytest.approx(80.0)
    assert math.isnan(table.loc["shape (category) accuracy %", "baseline"])  # a baseline has no slots to probe
    for method, value in PAPER_MOVI_E_MIOU.items():
        assert table.loc["mIoU % (object-averaged)", f"paper: {method}"] == pytest.approx(value)
    for method, value in PAPER_SHAPE_ACCURACY.items():
        assert table.loc["shape (category) accuracy %", f"paper: {method}"] == pytest.approx(value)
    assert "does not name the dataset" in table.loc["shape (category) accuracy %", PROVENANCE_COLUMN]
    assert "image position MSE" not in table.index  # no column fills it and the paper has no such row


def test_markdown_tells_not_recovered_from_not_applicable():
    text = to_markdown(results_table({"ours": _record(0.5, 0.25)}))
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in text.splitlines()[2:]}
    assert rows["FG-ARI %"][1:5] == ["50.00", "n/r", "n/r", "n/r"]  # the paper reports it; number not recovered
    assert rows["mBO % (image-averaged)"][1:5] == ["25.00", "—", "—", "—"]  # the paper has no such number
    assert rows["material accuracy %"][1] == "—"  # we do not measure it
