"""Writing an evaluation: ``results.json``, ``results.md`` (a markdown table) and ``segmentations.png``.

Every file is written to a temporary name in the output folder, then renamed into place.
"""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import torch

from lsd._atomic import write_text_atomic
from lsd.evaluation.evaluate import EvaluationResult
from lsd.figures import plot_segmentations

__all__ = ["RESULT_FILES", "versions", "results_record", "markdown_table", "plot_segmentations", "write_report"]

RESULT_FILES = ("results.json", "results.md", "segmentations.png")

#: Row labels of the markdown table, in the paper's order.
METRIC_LABELS = {
    "fg_ari": "FG-ARI (%)",
    "mbo": "mBO (%, object-averaged, paper)",
    "miou": "mIoU (%, object-averaged, paper)",
    "mbo_image": "mBO (%, image-averaged)",
    "miou_image": "mIoU (%, image-averaged)",
    "ari": "ARI (%, background included)",
    "mbo_class_image": "mBO^c (%, class masks, image-averaged)",
    "miou_class_image": "mIoU^c (%, class masks, image-averaged)",
    "mbo_class": "mBO^c (%, class masks, object-averaged)",
    "miou_class": "mIoU^c (%, class masks, object-averaged)",
}


def versions() -> dict[str, str]:
    """Versions of python, torch, diffusers and lsd."""
    import diffusers

    import lsd

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "lsd": lsd.__version__,
    }


def results_record(result: EvaluationResult, **meta: Any) -> dict[str, Any]:
    """The ``results.json`` content: ``meta`` (dataset, split, checkpoint, seed, ...), versions, then the result."""
    return {**meta, "versions": versions(), **result.to_dict()}


def _percent(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.2f}"


def markdown_table(result: EvaluationResult) -> str:
    """The metrics as a markdown table: segmentation scores and accuracies in percent, MSEs as is."""
    rows = [(label, _percent(result.metrics[key])) for key, label in METRIC_LABELS.items() if key in result.metrics]
    for name, value in result.probes.items():
        if result.probe_kinds[name] == "discrete":
            rows.append((f"{name} accuracy (%)", _percent(value)))
        else:
            rows.append((f"{name} MSE", "n/a" if math.isnan(value) else f"{value:.4f}"))
    width = max(len(label) for label, _ in rows)
    value_width = max(len("Value"), *(len(value) for _, value in rows))
    lines = [f"| {'Metric':<{width}} | {'Value':>{value_width}} |", f"| {'-' * width} | {'-' * (value_width - 1)}: |"]
    lines += [f"| {label:<{width}} | {value:>{value_width}} |" for label, value in rows]
    return "\n".join(lines) + "\n"


def _markdown(result: EvaluationResult, record: dict[str, Any]) -> str:
    dataset = record.get("dataset", {})
    lines = [
        f"# Evaluation of {record.get('checkpoint', {}).get('path', 'a model')}",
        "",
        f"Dataset {dataset.get('name')} ({dataset.get('split')} split), {result.num_images} images, "
        f"{result.num_scored_objects} scored objects, {result.num_matched_objects} matched to slots; "
        f"{result.num_slots} slots. Matching: {result.conventions['matching']} (ties: {result.conventions['ties']}); "
        f"seed {record.get('seed')}; probes: {result.conventions['probes']['steps']} steps.",
        "",
        markdown_table(result),
    ]
    if result.probe_note:
        lines += [f"Probes: {result.probe_note}.", ""]
    return "\n".join(lines)


def write_report(result: EvaluationResult, output: str | os.PathLike, **meta: Any) -> dict[str, Any]:
    """Write :data:`RESULT_FILES` to ``output`` (created); returns the ``results.json`` record.

    ``meta`` goes into ``results.json`` first (e.g. ``dataset``, ``checkpoint``, ``seed``,
    ``wall_time_s``); keys of the result must not be repeated there.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    record = results_record(result, **meta)
    write_text_atomic(output / "results.json", json.dumps(record, indent=2, allow_nan=False) + "\n")
    write_text_atomic(output / "results.md", _markdown(result, record))
    if result.examples:
        plot_segmentations(result.examples, output / "segmentations.png", result.num_slots)
    return record
