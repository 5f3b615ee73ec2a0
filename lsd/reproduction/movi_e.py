"""Reproduce the MOVi-E table: object segmentation (FG-ARI, mBO, mIoU) and property prediction.

The table is ``lsd.reproduction.tables.SEGMENTATION_TABLES["movi-e"]``, run by the shared runner
(:mod:`lsd.reproduction.runner`); ``reproductions/movi_e.py`` and ``nox -s reproduce-movi-e`` are
its command line. This module keeps the names earlier code and the shipped checkpoint's scripts use.

- With ``data`` (the release's MOVi dump): train at the chosen budget on MOVi-E's training
  frames (the release's split rule) and evaluate on its validation split, or evaluate
  ``checkpoint`` (ours or the release's) without training.
- Without ``data``: the embedded synthetic stand-in (:mod:`lsd.data.synthetic`, generated once
  into ``cache``) in the MOVi layout, read by the real MOVi reader. The run trains from scratch
  at the budget and evaluates that model, the shipped stand-in checkpoint (trained longer by the
  same pipeline) and the learning-free baselines on the same held-out scenes.

Outputs in ``output``: ``results.json``, ``table.md`` / ``table.csv`` and the figures
``segmentations.png``, ``reconstructions.png`` and ``training_curve.png``.
"""

from __future__ import annotations

from typing import Any

from lsd.reproduction.runner import (
    BUDGET_NAMES,
    Budget,
    learning_rate_phases,
    read_train_log,
    run_table,
    slot_diagnostic,
)
from lsd.reproduction.runner import RunOptions as ReproduceOptions
from lsd.reproduction.tables import SEGMENTATION_TABLES

MOVI_E = SEGMENTATION_TABLES["movi-e"]
BUDGETS: dict[str, Budget] = MOVI_E.budgets


def reproduce_movi_e(opts: ReproduceOptions) -> dict[str, Any]:
    """Run the MOVi-E reproduction described in the module docstring; returns the ``results.json`` record."""
    return run_table(MOVI_E, opts)


__all__ = [
    "BUDGETS",
    "BUDGET_NAMES",
    "Budget",
    "MOVI_E",
    "ReproduceOptions",
    "learning_rate_phases",
    "read_train_log",
    "reproduce_movi_e",
    "slot_diagnostic",
]
