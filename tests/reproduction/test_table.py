"""The reproduction table: our columns beside the paper's, with provenance and honest blanks."""

from __future__ import annotations

import math

import pytest

from lsd.reproduction.paper import paper_numbers, paper_table
from lsd.reproduction.table import (
    PROVENANCE_COLUMN,
    SEGMENTATION_ROWS,
    MetricRow,
    anchor_notes,
    results_table,
    to_markdown,
)
from lsd.reproduction.tables import SEGMENTATION_TABLES

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
    assert list(table.columns) == [
        "ours", "baseline", "paper: LSD", "paper: SLATE", "paper: SLATE+", "anchor: CODA", "anchor: DINOSAUR",
        PROVENANCE_COLUMN,
    ]  # fmt: skip
    assert table.loc["FG-ARI %", "ours"] == pytest.approx(50.0)
    assert table.loc["mBO % (object-averaged)", "baseline"] == pytest.approx(20.0)
    assert table.loc["category accuracy %", "ours"] == pytest.approx(80.0)
    assert math.isnan(table.loc["category accuracy %", "baseline"])  # a baseline has no slots to probe
    for method, value in PAPER_MOVI_E_MIOU.items():
        assert table.loc["mIoU % (object-averaged)", f"paper: {method}"] == pytest.approx(value)
    # the paper's property numbers are not MOVi-E's (its release labels only the category)
    assert all(math.isnan(table.loc["category accuracy %", f"paper: {m}"]) for m in PAPER_SHAPE_ACCURACY)
    assert "image position MSE" not in table.index  # no column fills it and the paper has no such row


def test_anchors_sit_in_their_own_columns_on_the_row_of_their_protocol():
    table = results_table({"ours": _record(0.5, 0.25)}, "movi-e")
    # CODA's mBO is image-averaged: it sits on that row, never on the paper's object-averaged row
    assert table.loc["mBO % (image-averaged)", "anchor: CODA"] == pytest.approx(43.45)
    assert math.isnan(table.loc["mBO % (object-averaged)", "anchor: CODA"])
    assert table.loc["FG-ARI %", "anchor: DINOSAUR"] == pytest.approx(65.1)
    notes = anchor_notes(table)
    assert len(notes) == 2
    assert any(n.startswith("anchor: CODA: sony/coda README") and "image-averaged" in n for n in notes)
    text = to_markdown(table)
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in text.splitlines()[2:]}
    assert rows["mBO % (object-averaged)"][5] == "—"  # the anchor has no number with this protocol


def test_an_anchor_without_a_number_on_these_rows_gets_no_column():
    rows = (SEGMENTATION_ROWS[0], MetricRow("FID", None, ("generation_fid", "fid"), False, "FID"))
    table = results_table({"ours": _record(0.5, 0.25)}, "movi-e", rows[1:])
    assert not [c for c in table.columns if c.startswith("anchor:")] and table.attrs["anchors"] == {}
    assert list(results_table({"ours": _record(0.5, 0.25)}, "movi-e", rows).attrs["anchors"]) == ["CODA", "DINOSAUR"]


def test_coco_table_has_class_mask_rows_beside_the_anchors():
    spec = SEGMENTATION_TABLES["coco"]
    metrics = {"fg_ari": 0.4, "mbo": 0.3, "miou": 0.3, "mbo_image": 0.3, "miou_image": 0.3, "ari": 0.2,
               "mbo_class": 0.35, "miou_class": 0.3, "mbo_class_image": 0.36, "miou_class_image": 0.31}  # fmt: skip
    table = results_table({"ours": {"metrics": metrics}}, spec.paper_dataset, spec.rows)
    row = "mBO^c % (class masks, image-averaged)"
    assert table.loc[row, "ours"] == pytest.approx(36.0)
    assert table.loc[row, "anchor: SPOT"] == pytest.approx(44.8)
    assert table.loc[row, "anchor: CODA"] == pytest.approx(41.43)
    assert table.loc["mBO % (image-averaged)", "anchor: SPOT"] == pytest.approx(34.9)
    assert table.loc["ARI % (background included)", "ours"] == pytest.approx(20.0)


def test_clevr_tables_show_the_unnamed_property_numbers_labelled_so():
    for name in ("clevr", "clevrtex"):
        spec = SEGMENTATION_TABLES[name]
        probes = {"shape": {"value": 0.9}, "material": {"value": 0.7}}
        table = results_table({"ours": {"metrics": {"fg_ari": 0.5}, "probes": probes}}, spec.paper_dataset, spec.rows)
        row = "shape accuracy % (paper: dataset not named, CLEVR or CLEVRTex)"
        assert table.loc[row, "ours"] == pytest.approx(90.0)
        for method, value in PAPER_SHAPE_ACCURACY.items():
            assert table.loc[row, f"paper: {method}"] == pytest.approx(value)
        assert "does not name the dataset" in table.loc[row, PROVENANCE_COLUMN]


def test_markdown_tells_not_recovered_from_not_applicable():
    text = to_markdown(results_table({"ours": _record(0.5, 0.25)}))
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in text.splitlines()[2:]}
    assert rows["FG-ARI %"][1:5] == ["50.00", "n/r", "n/r", "n/r"]  # the paper reports it; number not recovered
    assert rows["mBO % (image-averaged)"][1:5] == ["25.00", "—", "—", "—"]  # the paper has no such number
    assert "ARI % (background included)" not in rows  # neither this record nor any column fills it
