"""Evaluating a trained LSD: segmentation metrics and property prediction on a dataset.

- :func:`evaluate` (:mod:`lsd.evaluation.evaluate`): run a model over a labelled dataset ->
  :class:`EvaluationResult` (FG-ARI, mBO, mIoU, property probes, conventions).
- :mod:`lsd.evaluation.loading`: :func:`load_model` from an lsd model folder, an lsd training
  checkpoint or a release checkpoint; :func:`build_dataset` by name (:data:`DATASETS`).
- :mod:`lsd.evaluation.report`: :func:`write_report` -> ``results.json``, ``results.md``,
  ``segmentations.png``.

The command line is ``lsd evaluate`` (:mod:`lsd.cli`). Names are imported on first use, so that
building the command-line parser imports neither torch nor diffusers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsd._lazy import lazy_exports

_EXPORTS = {
    "EvaluationResult": "lsd.evaluation.evaluate",
    "evaluate": "lsd.evaluation.evaluate",
    "evaluate_segmenter": "lsd.evaluation.evaluate",
    "slot_noise": "lsd.evaluation.evaluate",
    "DATASETS": "lsd.evaluation.loading",
    "build_dataset": "lsd.evaluation.loading",
    "input_resolution": "lsd.evaluation.loading",
    "load_model": "lsd.evaluation.loading",
    "resolve_checkpoint": "lsd.evaluation.loading",
    "RESULT_FILES": "lsd.evaluation.report",
    "markdown_table": "lsd.evaluation.report",
    "write_report": "lsd.evaluation.report",
}

__all__ = [
    "DATASETS",
    "RESULT_FILES",
    "EvaluationResult",
    "build_dataset",
    "evaluate",
    "evaluate_segmenter",
    "input_resolution",
    "load_model",
    "markdown_table",
    "resolve_checkpoint",
    "slot_noise",
    "write_report",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # for type checkers and IDEs
    from lsd.evaluation.evaluate import EvaluationResult, evaluate, evaluate_segmenter, slot_noise
    from lsd.evaluation.loading import DATASETS, build_dataset, input_resolution, load_model, resolve_checkpoint
    from lsd.evaluation.report import RESULT_FILES, markdown_table, write_report
