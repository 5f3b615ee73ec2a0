"""Oracles for the reader tests (imported as ``from .conftest import ...``): independent numpy
versions of the conversion, crop and NEAREST-resize rules the readers document."""

from __future__ import annotations

import numpy as np
import torch


def model_range(image: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> float32 ``(3, H, W)`` in [-1, 1] (``x / 255 * 2 - 1``)."""
    return torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1) * 2.0 - 1.0


def nearest_indices(source: int, target: int, offset: int = 0, count: int | None = None) -> np.ndarray:
    """Source pixel sampled by each of ``count`` target pixels from ``offset`` when resizing
    ``source`` -> ``target`` with NEAREST (pixel centres: ``floor((t + 0.5) * source / target)``)."""
    count = target if count is None else count
    return np.floor((np.arange(offset, offset + count) + 0.5) * source / target).astype(np.int64)


def crop_then_nearest(ids: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], size: int) -> np.ndarray:
    """Crop ``ids[r0:r1, c0:c1]``, then resize to ``size x size`` with NEAREST."""
    crop = ids[rows[0] : rows[1], cols[0] : cols[1]]
    return crop[np.ix_(nearest_indices(crop.shape[0], size), nearest_indices(crop.shape[1], size))]


def short_side_nearest_then_centre(ids: np.ndarray, size: int) -> np.ndarray:
    """NEAREST resize with the shorter side to ``size`` (longer side truncated), then the centre
    ``size x size`` with top-left ``round((h - size) / 2), round((w - size) / 2)``."""
    height, width = ids.shape
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    top, left = round((new_h - size) / 2), round((new_w - size) / 2)
    return ids[np.ix_(nearest_indices(height, new_h, top, size), nearest_indices(width, new_w, left, size))]
