"""The paper's reported numbers, kept in ``paper_numbers.json`` beside this module with provenance.

A number the recovered sources do not give is ``null`` in the file and ``None`` here; tables
print it as ``n/r`` (not recovered), never as a guess.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

#: Methods of the paper's tables, in the paper's column order.
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
