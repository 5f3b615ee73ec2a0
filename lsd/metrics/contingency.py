"""Input checks and batched contingency tables: the one pass over pixels every metric shares.

A contingency table ``table[b, t, s]`` counts the pixels of image ``b`` with ground-truth id ``t``
and predicted id ``s``. FG-ARI, IoU, the matching costs and mBO are all functions of it, so a
whole batch is scored from a single bincount over ``B * H * W`` keys (numpy's on CPU, where it
is several times faster than torch's; torch's on other devices), with no Python loop over pixels
or images.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["as_tensor", "id_range", "check_label_maps", "contingency_tables"]

_NATIVE_INT = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def as_tensor(value: object, name: str) -> torch.Tensor:
    """A tensor or numpy array as a tensor (no copy); anything else is a TypeError naming ``name``."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    raise TypeError(f"`{name}` must be a torch.Tensor or numpy array, got {type(value).__name__}")


def id_range(x: torch.Tensor) -> tuple[int, int]:
    """``(min, max)`` of a non-empty integer tensor (numpy on CPU: single pass, no thread sync)."""
    if x.device.type == "cpu":
        values = x.numpy()
        return int(values.min()), int(values.max())
    low, high = torch.aminmax(x)
    return int(low), int(high)


def check_label_maps(true: object, pred: object) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Validate two ``(B, H, W)`` integer label maps; return them as tensors and ``true``'s largest id.

    Raises:
        TypeError: an argument is not a tensor/array or has a floating-point / complex dtype.
        ValueError: an argument is not 3-D, the shapes differ, or ``true`` has negative ids.
    """
    true_t, pred_t = as_tensor(true, "true"), as_tensor(pred, "pred")
    for name, value in (("true", true_t), ("pred", pred_t)):
        if value.dtype.is_floating_point or value.dtype.is_complex:
            raise TypeError(f"`{name}` must be an integer label map, got dtype {value.dtype}")
        if value.dim() != 3:
            raise ValueError(f"`{name}` must have shape (B, H, W), got {tuple(value.shape)}")
    # ops such as aminmax / bincount support only the common integer dtypes
    true_t, pred_t = (x if x.dtype in _NATIVE_INT else x.to(torch.int64) for x in (true_t, pred_t))
    if true_t.shape != pred_t.shape:
        raise ValueError(
            f"`true` and `pred` must have the same shape, got {tuple(true_t.shape)} and {tuple(pred_t.shape)}"
        )
    if true_t.device != pred_t.device:
        raise ValueError(f"`true` is on {true_t.device} but `pred` is on {pred_t.device}")
    if true_t.numel() == 0:
        return true_t, pred_t, 0
    low, high = id_range(true_t)
    if low < 0:
        raise ValueError(f"`true` ids must be >= 0 (0 = background), got {low}")
    return true_t, pred_t, high


def contingency_tables(true: torch.Tensor, pred: torch.Tensor, num_true: int, num_pred: int) -> torch.Tensor:
    """Per-image contingency tables.

    Args:
        true: ``(B, H, W)`` integer ids in ``[0, num_true)``.
        pred: ``(B, H, W)`` integer ids in ``[0, num_pred)``.
        num_true: number of ground-truth ids (rows).
        num_pred: number of predicted ids (columns).

    Returns:
        ``(B, num_true, num_pred)`` int64: ``table[b, t, s] = #{pixels: true == t and pred == s}``.
        Ids are not range-checked here; callers validate them.
    """
    if true.device.type == "cpu":  # numpy's bincount is several times faster than torch's on CPU
        return _contingency_numpy(true, pred, num_true, num_pred)
    return _contingency_torch(true, pred, num_true, num_pred)


def _contingency_numpy(true: torch.Tensor, pred: torch.Tensor, num_true: int, num_pred: int) -> torch.Tensor:
    batch, cells = true.shape[0], num_true * num_pred
    key = true.flatten(1).numpy().astype(np.int64)  # (B, H*W)
    key *= num_pred
    np.add(key, pred.flatten(1).numpy(), out=key, casting="unsafe")
    key += (np.arange(batch, dtype=np.int64) * cells)[:, None]
    counts = np.bincount(key.reshape(-1), minlength=batch * cells)
    return torch.from_numpy(counts).view(batch, num_true, num_pred)


def _contingency_torch(true: torch.Tensor, pred: torch.Tensor, num_true: int, num_pred: int) -> torch.Tensor:
    batch, cells = true.shape[0], num_true * num_pred
    key = true.flatten(1).to(torch.int64) * num_pred  # (B, H*W)
    key += pred.flatten(1)
    key += torch.arange(batch, device=key.device, dtype=torch.int64).mul_(cells)[:, None]
    return torch.bincount(key.reshape(-1), minlength=batch * cells).view(batch, num_true, num_pred)
