"""The MOVi-E results table: our rows beside the paper's, as a pandas DataFrame, markdown and CSV.

Layout: one row per metric, one column per method we ran (LSD models and baselines), then the
paper's methods in their own columns and a provenance column. Our numbers and the paper's are
never mixed in one column: on the synthetic stand-in they are not even on the same data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lsd.reproduction.paper import PAPER_METHODS, paper_table


@dataclass(frozen=True)
class MetricRow:
    """One table row: where our value comes from and which paper number sits beside it."""

    label: str
    ours: tuple[str, str] | None  # ("metrics", key) or ("probes", property); None: not measured by us
    paper: tuple[str, str] | None  # (section, key) of paper_numbers.json; None: the paper gives none
    percent: bool  # our fraction x 100 (the paper prints percent)


ROWS = (
    MetricRow("FG-ARI %", ("metrics", "fg_ari"), ("segmentation", "fg_ari"), True),
    MetricRow("mBO % (object-averaged)", ("metrics", "mbo"), ("segmentation", "mbo"), True),
    MetricRow("mIoU % (object-averaged)", ("metrics", "miou"), ("segmentation", "miou"), True),
    MetricRow("mBO % (image-averaged)", ("metrics", "mbo_image"), None, True),
    MetricRow("mIoU % (image-averaged)", ("metrics", "miou_image"), None, True),
    MetricRow("shape (category) accuracy %", ("probes", "category"), ("properties", "shape_accuracy"), True),
    MetricRow("material accuracy %", None, ("properties", "material_accuracy"), True),
    MetricRow("position MSE (paper: 3-D)", None, ("properties", "position_mse"), False),
    MetricRow("image position MSE", ("probes", "image_positions"), None, False),
    MetricRow("3-D box MSE", ("probes", "bboxes_3d"), None, False),
    MetricRow("scale MSE", ("probes", "scale"), None, False),
)

PROVENANCE_COLUMN = "paper: provenance"


def _ours(record: dict[str, Any], row: MetricRow) -> float:
    if row.ours is None:
        return math.nan
    section, key = row.ours
    if section == "metrics":
        value = record["metrics"].get(key)
    else:
        value = (record.get("probes", {}).get(key) or {}).get("value")
    if value is None:
        return math.nan
    return 100 * value if row.percent else value


def results_table(methods: dict[str, dict[str, Any]], dataset: str = "movi-e") -> pd.DataFrame:
    """The table of ``methods`` (column label -> an evaluation record with ``metrics`` and
    ``probes`` as in ``results.json``) beside the paper's numbers for ``dataset``.

    Returns a DataFrame indexed by metric label: our columns, then ``paper: <method>`` columns
    (NaN where the paper's number was not recovered or does not exist) and a provenance column.
    Rows no column fills are dropped.
    """
    paper = paper_table(dataset)
    data: dict[str, list[Any]] = {label: [] for label in methods}
    for method in PAPER_METHODS:
        data[f"paper: {method}"] = []
    data[PROVENANCE_COLUMN] = []
    index = []
    for row in ROWS:
        ours = {label: _ours(record, row) for label, record in methods.items()}
        theirs = {}
        for method in PAPER_METHODS:
            value = None
            if row.paper is not None:
                section, key = row.paper
                value = paper.get(section, {}).get("methods", {}).get(method, {}).get(key)
            theirs[method] = math.nan if value is None else float(value)
        if all(math.isnan(v) for v in ours.values()) and row.paper is None:
            continue
        index.append(row.label)
        for label, value in ours.items():
            data[label].append(value)
        for method, value in theirs.items():
            data[f"paper: {method}"].append(value)
        data[PROVENANCE_COLUMN].append(paper[row.paper[0]]["provenance"] if row.paper else "")
    return pd.DataFrame(data, index=pd.Index(index, name="metric"))


def _cell(value: Any, paper_column: bool) -> str:
    """``—``: nothing to report (we do not measure it, or the paper has no such number);
    ``n/r``: the paper reports it but the number was not recovered."""
    if isinstance(value, str):
        return value
    if value is None or math.isnan(value):
        return "n/r" if paper_column else "—"
    return f"{value:.2f}"


def _paper_reports(table: pd.DataFrame, label: str) -> bool:
    return bool(table.loc[label, PROVENANCE_COLUMN])


def to_markdown(table: pd.DataFrame) -> str:
    """GitHub markdown of :func:`results_table`'s frame (no ``tabulate`` dependency): two
    decimals, ``—`` where we measure nothing, ``n/r`` where the paper's number is not recovered."""
    header = ["metric", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for label, values in table.iterrows():
        reported = _paper_reports(table, label)
        cells = [_cell(v, reported and str(col).startswith("paper:")) for col, v in values.items()]
        lines.append("| " + " | ".join([str(label), *cells]) + " |")
    return "\n".join(lines)


def to_terminal(table: pd.DataFrame) -> str:
    """A plain-text rendering for the terminal (provenance left out; it is in table.md)."""
    shown = table.drop(columns=[PROVENANCE_COLUMN])
    text = shown.map(lambda v: _cell(v, False))
    for label in shown.index:
        if _paper_reports(table, label):
            for col in shown.columns:
                if str(col).startswith("paper:"):
                    text.loc[label, col] = _cell(shown.loc[label, col], True)
    return text.to_string()


__all__ = ["MetricRow", "PROVENANCE_COLUMN", "ROWS", "results_table", "to_markdown", "to_terminal"]
