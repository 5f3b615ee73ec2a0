"""The paper's reported numbers, kept in ``paper_numbers.json`` beside this module with provenance.

Layout: ``tables[dataset][section] = {"provenance": str, "methods": {method: {metric: value}}}``
(datasets ``movi-e``, ``movi-c``, ``clevrtex``, ``clevr``, ``ffhq``, ``coco``, and
``clevr-or-clevrtex`` for the property-prediction table whose dataset the source does not name).

Anchors (:func:`anchors`): ``anchors[dataset][method] = {"source", "averaging", "metrics"}``, the
published numbers of later methods on the same dataset, keyed by the metric of ours whose protocol
is closest (``fg_ari``, ``mbo_image``, ``mbo_class_image``, ...); tables show them in their own
``anchor: <method>`` columns, never mixed with ours or the paper's. Every number was
recovered from one secondary summary of arXiv 2303.10834 v5, not from the paper itself
(docs/paper-numbers.md). A number not recovered is ``null`` in the file and ``None`` here; tables
print it as ``n/r`` (not recovered), never as a guess.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

#: Methods of the paper's MOVi-E tables, in the paper's column order (other tables: :func:`paper_methods`).
PAPER_METHODS = ("LSD", "SLATE", "SLATE+")


@cache
def paper_numbers() -> dict[str, Any]:
    """The whole ``paper_numbers.json`` (source, averaging note, tables by dataset)."""
    text = resources.files("lsd.reproduction").joinpath("paper_numbers.json").read_text()
    return json.loads(text)


def paper_table(dataset: str) -> dict[str, Any]:
    """The paper's tables for ``dataset`` (e.g. ``"movi-e"``): section -> provenance and methods."""
    tables = paper_numbers()["tables"]
    if dataset not in tables:
        raise KeyError(f"no paper numbers for {dataset!r}; known: {sorted(tables)}")
    return tables[dataset]


def paper_methods(dataset: str, section: str) -> tuple[str, ...]:
    """The methods of one of the paper's tables (e.g. ``("movi-c", "segmentation")``), in file order."""
    table = paper_table(dataset)
    if section not in table:
        raise KeyError(f"no section {section!r} in the paper numbers for {dataset!r}; known: {list(table)}")
    return tuple(table[section]["methods"])


def anchors(dataset: str) -> dict[str, dict[str, Any]]:
    """Later methods' published numbers on ``dataset``: method -> ``{"source", "averaging",
    "metrics": {our metric key: percent}}`` (empty when none is filed)."""
    return dict(paper_numbers().get("anchors", {}).get(dataset, {}))
