"""A reproduction's results table: our columns beside the paper's, as a pandas DataFrame, markdown,
CSV and a terminal rendering.

Layout (``table.md`` / ``table.csv``): one row per metric, one column per method we ran (LSD models
and baselines), then the paper's methods in their own columns, the anchors (later methods'
published numbers, ``anchor: <method>``, each with its source and averaging under the table) and a
provenance column. Our numbers, the paper's and the anchors are never mixed in one column: on a
stand-in they are not even on the same data.
The terminal gets the transpose (methods as rows, short metric names as columns), cut into blocks
of columns so that no line is wider than 100 characters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lsd.reproduction.paper import anchors, paper_table

#: Widest line :func:`to_terminal` prints.
TERMINAL_WIDTH = 100


@dataclass(frozen=True)
class MetricRow:
    """One table row: where our value comes from and which paper number sits beside it.

    ``ours``: ``("metrics", key)``, ``("probes", property)``, or ``(section, dotted.key)`` for any
    other nested record entry (e.g. ``("part_swap", "mean.success_rate")``); None: not measured.
    ``paper``: ``(section, key)`` in ``paper_numbers.json`` under ``paper_dataset`` (default: the
    table's dataset); None: the paper gives none. ``percent``: our fraction x 100. ``short``: the
    terminal's column name (at most 10 characters).
    """

    label: str
    ours: tuple[str, str] | None
    paper: tuple[str, str] | None
    percent: bool
    short: str = ""
    paper_dataset: str | None = None


SEGMENTATION_ROWS = (
    MetricRow("FG-ARI %", ("metrics", "fg_ari"), ("segmentation", "fg_ari"), True, "FG-ARI"),
    MetricRow("mBO % (object-averaged)", ("metrics", "mbo"), ("segmentation", "mbo"), True, "mBO"),
    MetricRow("mIoU % (object-averaged)", ("metrics", "miou"), ("segmentation", "miou"), True, "mIoU"),
    MetricRow("mBO % (image-averaged)", ("metrics", "mbo_image"), None, True, "mBO img"),
    MetricRow("mIoU % (image-averaged)", ("metrics", "miou_image"), None, True, "mIoU img"),
    MetricRow("ARI % (background included)", ("metrics", "ari"), None, True, "ARI"),
)

#: Scores against class masks (COCO: instances of a category merged), SPOT / CODA's mBO^c, mIoU^c.
CLASS_ROWS = (
    MetricRow("mBO^c % (class masks, image-averaged)", ("metrics", "mbo_class_image"), None, True, "mBO^c"),
    MetricRow("mIoU^c % (class masks, image-averaged)", ("metrics", "miou_class_image"), None, True, "mIoU^c"),
    MetricRow("mBO^c % (class masks, object-averaged)", ("metrics", "mbo_class"), None, True, "mBO^c obj"),
    MetricRow("mIoU^c % (class masks, object-averaged)", ("metrics", "miou_class"), None, True, "mIoU^c obj"),
)

#: The paper's property-prediction table: its source does not name the dataset (CLEVR or CLEVRTex).
UNNAMED_PROPERTIES = "clevr-or-clevrtex"

#: The MOVi-E table's rows (segmentation, then the property probes beside the paper's).
ROWS = (
    *SEGMENTATION_ROWS,
    MetricRow("category accuracy %", ("probes", "category"), None, True, "category"),
    MetricRow("image position MSE", ("probes", "image_positions"), None, False, "img pos"),
    MetricRow("3-D box MSE", ("probes", "bboxes_3d"), None, False, "box MSE"),
    MetricRow("scale MSE", ("probes", "scale"), None, False, "scale MSE"),
)

PROVENANCE_COLUMN = "paper: provenance"
ANCHOR_PREFIX = "anchor: "


def probe_rows(properties: dict[str, str], short: dict[str, str] | None = None) -> tuple[MetricRow, ...]:
    """Rows for property probes: ``name -> "discrete" | "continuous"`` (accuracy % or test MSE)."""
    short = short or {}
    rows = []
    for name, kind in properties.items():
        label = f"{name} accuracy %" if kind == "discrete" else f"{name} MSE"
        rows.append(MetricRow(label, ("probes", name), None, kind == "discrete", short.get(name, name[:10])))
    return tuple(rows)


def _lookup(record: dict[str, Any], section: str, key: str) -> Any:
    if section == "probes":
        return (record.get("probes", {}).get(key) or {}).get("value")
    node: Any = record.get(section)
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _ours(record: dict[str, Any], row: MetricRow) -> float:
    if row.ours is None:
        return math.nan
    value = _lookup(record, *row.ours)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return 100 * value if row.percent else float(value)


def _paper_section(dataset: str, row: MetricRow) -> dict[str, Any] | None:
    if row.paper is None:
        return None
    return paper_table(row.paper_dataset or dataset).get(row.paper[0])


def paper_methods_of(dataset: str, rows: tuple[MetricRow, ...]) -> list[str]:
    """The paper's methods the rows refer to, without repeats: LSD-like methods (the one we
    reproduce: ``LSD``, ``Stable-LSD``, ``LSD (CLEVR)``, ``LSD-Mix``) first, then file order."""
    methods: list[str] = []
    for row in rows:
        section = _paper_section(dataset, row)
        for method in (section or {}).get("methods", {}):
            if method not in methods:
                methods.append(method)
    return sorted(methods, key=lambda m: "LSD" not in m)


def _anchor_value(method: dict[str, Any], row: MetricRow) -> float:
    """The anchor's number for ``row``: filed under the metric key of ours that the row shows."""
    if row.ours is None or row.ours[0] != "metrics":
        return math.nan
    value = method.get("metrics", {}).get(row.ours[1])
    return math.nan if value is None else float(value)


def results_table(
    methods: dict[str, dict[str, Any]], dataset: str = "movi-e", rows: tuple[MetricRow, ...] = ROWS
) -> pd.DataFrame:
    """The table of ``methods`` (column label -> an evaluation record as in ``results.json``)
    beside the paper's numbers for ``dataset`` (a key of ``paper_numbers.json``) and the anchors.

    Returns a DataFrame indexed by metric label: our columns, then ``paper: <method>`` columns
    (NaN where the paper's number was not recovered or does not exist), ``anchor: <method>``
    columns (later methods' published numbers, :func:`lsd.reproduction.paper.anchors`) and a
    provenance column. Rows that neither we nor the paper fill are dropped.
    ``table.attrs["anchors"]``: method -> ``{"source", "averaging"}`` of every anchor column; an
    anchor with no number on any of the rows gets no column.
    """
    paper_methods = paper_methods_of(dataset, rows)
    anchor_methods = anchors(dataset)
    data: dict[str, list[Any]] = {label: [] for label in methods}
    for method in paper_methods:
        data[f"paper: {method}"] = []
    for method in anchor_methods:
        data[f"{ANCHOR_PREFIX}{method}"] = []
    data[PROVENANCE_COLUMN] = []
    index = []
    for row in rows:
        ours = {label: _ours(record, row) for label, record in methods.items()}
        section = _paper_section(dataset, row)
        theirs = {}
        for method in paper_methods:
            value = None
            if section is not None:
                value = section.get("methods", {}).get(method, {}).get(row.paper[1])
            theirs[method] = math.nan if value is None else float(value)
        if all(math.isnan(v) for v in ours.values()) and section is None:
            continue
        index.append(row.label)
        for label, value in ours.items():
            data[label].append(value)
        for method, value in theirs.items():
            data[f"paper: {method}"].append(value)
        for method, record in anchor_methods.items():
            data[f"{ANCHOR_PREFIX}{method}"].append(_anchor_value(record, row))
        data[PROVENANCE_COLUMN].append(section["provenance"] if section else "")
    table = pd.DataFrame(data, index=pd.Index(index, name="metric"))
    empty = [m for m in anchor_methods if table[f"{ANCHOR_PREFIX}{m}"].isna().all()]  # no row of this table
    table = table.drop(columns=[f"{ANCHOR_PREFIX}{m}" for m in empty])
    table.attrs["short"] = {row.label: row.short or row.label[:10] for row in rows}
    table.attrs["anchors"] = {
        m: {"source": a["source"], "averaging": a["averaging"]} for m, a in anchor_methods.items() if m not in empty
    }
    return table


def anchor_notes(table: pd.DataFrame) -> list[str]:
    """One line per anchor column: its source and averaging convention (under ``table.md``)."""
    return [
        f"{ANCHOR_PREFIX}{method}: {info['source']}; {info['averaging']}. Published number, not our run."
        for method, info in table.attrs.get("anchors", {}).items()
    ]


def _cell(value: Any, paper_column: bool) -> str:
    """``—``: nothing to report (we do not measure it, or the paper or anchor has no such number);
    ``n/r``: the paper reports it but the number was not recovered. Strings (e.g. ``mean ± std``
    over seeds) are shown as they are."""
    if isinstance(value, str):
        return value
    if value is None or math.isnan(value):
        return "n/r" if paper_column else "—"
    return f"{value:.2f}"


def _paper_reports(table: pd.DataFrame, label: str) -> bool:
    return bool(table.loc[label, PROVENANCE_COLUMN])


def _text_cells(table: pd.DataFrame) -> pd.DataFrame:
    """Every cell as printed (two decimals, ``—`` or ``n/r``), provenance left out."""
    shown = table.drop(columns=[PROVENANCE_COLUMN])
    text = shown.map(lambda v: _cell(v, False))
    for label in shown.index:
        if _paper_reports(table, label):
            for col in shown.columns:
                if str(col).startswith("paper:"):
                    text.loc[label, col] = _cell(shown.loc[label, col], True)
    return text


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


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def to_terminal(table: pd.DataFrame, width: int = TERMINAL_WIDTH) -> str:
    """Methods as rows, short metric names as columns (provenance left out; it is in table.md).

    Columns that do not fit beside the method names go to a further block below, so no line is
    wider than ``width``; method names longer than a third of ``width`` are shortened with ``…``.
    """
    text = _text_cells(table).T  # methods x metrics
    short = table.attrs.get("short", {})
    names = [_fit(str(m), width // 3) for m in text.index]
    name_width = max([len("method"), *map(len, names)])
    columns = [(short.get(label, str(label)[:10]), list(text[label])) for label in text.columns]
    blocks, current, used = [], [], name_width
    for name, cells in columns:
        col_width = max(len(name), *map(len, cells)) + 2
        if current and used + col_width > width:
            blocks.append(current)
            current, used = [], name_width
        current.append((name, cells, col_width))
        used += col_width
    if current:
        blocks.append(current)
    lines: list[str] = []
    for number, block in enumerate(blocks):
        if number:
            lines.append("")
        lines.append("method".ljust(name_width) + "".join(n.rjust(w) for n, _, w in block))
        for i, method in enumerate(names):
            lines.append(method.ljust(name_width) + "".join(c[i].rjust(w) for _, c, w in block))
    return "\n".join(lines)


__all__ = [
    "ANCHOR_PREFIX", "CLASS_ROWS", "MetricRow", "PROVENANCE_COLUMN", "ROWS", "SEGMENTATION_ROWS", "TERMINAL_WIDTH",
    "UNNAMED_PROPERTIES", "anchor_notes", "paper_methods_of", "probe_rows", "results_table", "to_markdown",
    "to_terminal",
]  # fmt: skip
