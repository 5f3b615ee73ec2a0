"""Every figure the project draws: an evaluation's segmentations, a reproduction's training curves
with the slot diagnostic, segmentations of held-out scenes side by side and reconstructions
decoded from slots, the validation grid and the slot overlays of generation figures (PIL). Each is written atomically (a temporary file renamed into place) with
matplotlib's object API (no pyplot global state); matplotlib is imported on first use.

Conventions: images ``(3, H, W)`` in [-1, 1]; GT ids 0 = background (drawn black), 1..K objects;
slot / segment ids 0..S-1; ids are coloured with tab20, cycled.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image

from lsd._atomic import atomic_write, save_figure_atomic


def slot_colours(num_slots: int) -> np.ndarray:
    """``(S, 3)`` distinct colours in [0, 1] (matplotlib's tab20, cycled)."""
    from matplotlib import colormaps

    table = colormaps["tab20"].colors
    return np.array([table[i % len(table)] for i in range(num_slots)], dtype=np.float32)


def overlay(images: torch.Tensor, masks: torch.Tensor, num_slots: int, alpha: float = 0.5) -> torch.Tensor:
    """Blend slot colours into images. images ``(B, 3, H, W)`` in [-1, 1], masks ``(B, H, W)`` ids."""
    colours = torch.from_numpy(slot_colours(num_slots)).to(images.device) * 2 - 1  # (S, 3)
    painted = colours[masks].permute(0, 3, 1, 2)  # (B, 3, H, W)
    return (1 - alpha) * images + alpha * painted


def grid_png(columns: list[torch.Tensor], path: str | os.PathLike) -> np.ndarray:
    """Write a grid (rows = images, columns = the given ``(B, 3, H, W)`` tensors in [-1, 1]) as PNG,
    written to a temporary name then renamed. Returns the ``(H_total, W_total, 3)`` uint8 array."""
    rows = torch.cat([torch.cat(list(col.float().cpu()), dim=1) for col in columns], dim=2)  # (3, B*H, C*W)
    array = ((rows.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))
    return array


def colour_ids(ids: np.ndarray, num_colours: int, background_black: bool) -> np.ndarray:
    """``(H, W)`` ids -> ``(H, W, 3)`` float colours (tab20, cycled; id 0 black when
    ``background_black``, as for GT masks)."""
    from matplotlib import colormaps

    table = np.array(colormaps["tab20"].colors)
    palette = table[np.arange(num_colours) % len(table)]
    if background_black:
        palette = np.concatenate([np.zeros((1, 3)), palette[:-1]])
    return palette[ids]


def _panel_grid(
    rows: list[list[tuple[str, np.ndarray]]],
    path,
    cell: float,
    fontsize: float | None,
    row_labels: list[str] | None = None,
) -> None:
    """Draw ``rows`` of ``(title, (H, W, 3) picture)`` panels in a grid, titles on the first row
    (and ``row_labels[i]`` left of row ``i`` when given), and save it to ``path``."""
    from matplotlib.figure import Figure

    count, columns = len(rows), max(len(r) for r in rows)
    if row_labels is not None and len(row_labels) != count:
        raise ValueError(f"`row_labels`: {len(row_labels)} labels for {count} rows")
    fig = Figure(figsize=(cell * columns + (1.0 if row_labels else 0.0), cell * count + 0.4))
    axes = fig.subplots(count, columns, squeeze=False)
    for row, panels in enumerate(rows):
        for col, (title, picture) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(picture, interpolation="nearest")
            if row_labels is not None and col == 0:  # keep the axis (for its label), hide ticks and frame
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                ax.set_ylabel(row_labels[row], fontsize=fontsize)
            else:
                ax.set_axis_off()
            if row == 0:
                ax.set_title(title, fontsize=fontsize)
    fig.tight_layout()
    save_figure_atomic(fig, path)


def plot_image_grid(
    images: torch.Tensor,
    path: str | os.PathLike,
    column_titles: list[str],
    row_labels: list[str] | None = None,
    cell: float = 1.6,
) -> None:
    """Draw ``images`` ``(rows, columns, 3, H, W)`` in [-1, 1] as a grid of panels, titled per
    column (on the first row) and labelled per row, and write it to ``path`` (atomically)."""
    if images.ndim != 5 or images.shape[2] != 3:
        raise ValueError(f"`images` must have shape (rows, columns, 3, H, W), got {tuple(images.shape)}")
    if len(column_titles) != images.shape[1]:
        raise ValueError(f"`column_titles`: {len(column_titles)} titles for {images.shape[1]} columns")
    rows = [[(t, _image(images[r, c])) for c, t in enumerate(column_titles)] for r in range(images.shape[0])]
    _panel_grid(rows, path, cell=cell, fontsize=7, row_labels=row_labels)


def _image(pixels: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in [-1, 1] -> ``(H, W, 3)`` in [0, 1]."""
    return ((pixels.float().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()


def _step_of(record: dict[str, Any]) -> int:
    """A log record's step over all training stages (``total_step`` when the log has stages)."""
    return record.get("total_step", record["step"])


def plot_training_curves(logs: dict[str, list[dict[str, Any]]], path: str | os.PathLike) -> None:
    """One panel per run: the training loss and the slot diagnostic (denoising loss with each
    image's own slots vs with slots shuffled across the batch) against the optimizer step.

    ``logs``: run label -> ``train_log.jsonl`` records (``step``, ``loss``, optionally
    ``loss_right_slots`` / ``loss_shuffled_slots``, and ``total_step`` / ``stage`` in a log of
    several training stages, which is then drawn against ``total_step`` with each new stage's
    first step marked).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * max(len(logs), 1), 3.8))
    axes = fig.subplots(1, max(len(logs), 1), squeeze=False)[0]
    for ax, (label, records) in zip(axes, logs.items(), strict=False):
        steps = [_step_of(r) for r in records]
        ax.plot(steps, [r["loss"] for r in records], color="0.6", lw=1, label="training loss")
        diag = [r for r in records if "loss_right_slots" in r]
        if diag:
            ax.plot([_step_of(r) for r in diag], [r["loss_right_slots"] for r in diag], "o-", ms=3, label="own slots")
            ax.plot(
                [_step_of(r) for r in diag],
                [r["loss_shuffled_slots"] for r in diag],
                "s-",
                ms=3,
                label="shuffled slots",
            )
        starts = [_step_of(b) for a, b in zip(records, records[1:], strict=False) if b.get("stage") != a.get("stage")]
        for number, start in enumerate(starts):
            ax.axvline(start, color="tab:red", lw=0.8, ls="--", label="new training stage" if number == 0 else None)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("denoising loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path)


def plot_segmentation_comparison(
    pixel_values: torch.Tensor,
    masks: torch.Tensor | None,
    predictions: dict[str, tuple[torch.Tensor, int]],
    path: str | os.PathLike,
) -> None:
    """Rows: held-out images. Columns: the image, its GT masks, then each method's segments.

    ``pixel_values`` ``(n, 3, R, R)`` in [-1, 1]; ``masks`` ``(n, H, W)`` GT ids (0 = background),
    or None for unlabelled data (no GT column); ``predictions``: column title -> (ids ``(n, H, W)``,
    number of segments).
    """
    num_gt = int(masks.max()) + 1 if masks is not None else 0
    rows = []
    for row in range(pixel_values.shape[0]):
        panels = [("image", _image(pixel_values[row]))]
        if masks is not None:
            panels.append(("ground truth", colour_ids(masks[row].numpy(), num_gt, True)))
        panels += [(title, colour_ids(ids[row].numpy(), n, False)) for title, (ids, n) in predictions.items()]
        rows.append(panels)
    _panel_grid(rows, path, cell=1.9, fontsize=8)


def plot_reconstructions(
    pixel_values: torch.Tensor, reconstructions: dict[str, torch.Tensor], path: str | os.PathLike
) -> None:
    """Rows: held-out images; columns: the input, then each model's image generated from its slots.

    ``pixel_values`` and each reconstruction: ``(n, 3, R, R)`` in [-1, 1].
    """
    rows = []
    for row in range(pixel_values.shape[0]):
        panels = [("input", pixel_values[row])] + [(t, images[row]) for t, images in reconstructions.items()]
        rows.append([(title, _image(picture)) for title, picture in panels])
    _panel_grid(rows, path, cell=2.0, fontsize=8)


def plot_segmentations(examples: dict[str, torch.Tensor], path: str | os.PathLike, num_slots: int) -> None:
    """One row per example image of an evaluation (``EvaluationResult.examples``): the image, its
    GT masks, the predicted slot masks."""
    plot_segmentation_comparison(
        examples["pixel_values"], examples["masks"], {"prediction": (examples["pred"], num_slots)}, path
    )


__all__ = [
    "colour_ids",
    "grid_png",
    "overlay",
    "plot_image_grid",
    "plot_reconstructions",
    "plot_segmentation_comparison",
    "plot_segmentations",
    "plot_training_curves",
]
