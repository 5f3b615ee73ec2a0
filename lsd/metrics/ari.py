"""Adjusted Rand Index: foreground (FG-ARI) and over every pixel (ARI), batched, sklearn's semantics.

For one image, with ``n_ij`` the contingency table of the foreground pixels (rows: ground truth,
columns: prediction), ``a_i`` / ``b_j`` its row / column sums and ``n`` its total, sklearn's
``adjusted_rand_score`` counts ordered pixel pairs

    tp = sum n_ij^2 - n          (same object, same cluster)
    fp = sum b_j^2 - sum n_ij^2  (different objects, same cluster)
    fn = sum a_i^2 - sum n_ij^2  (same object, different clusters)
    tn = n^2 - tp - fp - fn - n
    ARI = 2 (tp tn - fn fp) / ((tp + fn)(fn + tn) + (tp + fp)(fp + tn)),   and ARI = 1 if fn = fp = 0.

``fn = fp = 0`` covers every degenerate case: identical partitions (including both labelings a
single cluster, or both all singletons), ``n = 1`` and ``n = 0`` (empty foreground). The counts
are exact int64; the final ratio is float64 (the products reach ~1e19 at 256x256, beyond int64
and float32), so values agree with sklearn to ~1e-12 and the ``== 1`` special cases exactly.
"""

from __future__ import annotations

from typing import Literal

import torch

from lsd.metrics.contingency import check_label_maps, contingency_tables, id_range

__all__ = ["ari", "fg_ari", "ari_from_contingency"]

EmptyForeground = Literal["one", "nan"]

# Largest dense table (B * ids_true * ids_pred cells, int64) built with bincount; beyond it the
# pair counts come from torch.unique over (image, true, pred) keys instead. 2**22 cells = 32 MiB.
_DENSE_CELLS = 2**22


def _ari_from_pair_sums(
    n: torch.Tensor, cells_sq: torch.Tensor, rows_sq: torch.Tensor, cols_sq: torch.Tensor
) -> torch.Tensor:
    """ARI from per-image int64 sums: ``n``, ``sum n_ij^2``, ``sum a_i^2``, ``sum b_j^2`` (all ``(B,)``)."""
    tp = cells_sq - n
    fp = cols_sq - cells_sq
    fn = rows_sq - cells_sq
    tn = n * n - fp - fn - cells_sq
    agree = (fn == 0) & (fp == 0)
    tp, fp, fn, tn = (x.to(torch.float64) for x in (tp, fp, fn, tn))
    numer = 2.0 * (tp * tn - fn * fp)
    denom = (tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)
    return torch.where(agree, torch.ones_like(numer), numer / torch.where(agree, torch.ones_like(denom), denom))


def ari_from_contingency(table: torch.Tensor) -> torch.Tensor:
    """ARI of each image from its contingency table.

    Args:
        table: ``(B, R, C)`` integer counts over the pixels to score (for FG-ARI: background row
            already removed).

    Returns:
        ``(B,)`` float64; 1.0 for an image with no pixels (sklearn's convention).
    """
    t = table.to(torch.int64)
    n = t.sum(dim=(1, 2))
    cells_sq = t.square().sum(dim=(1, 2))
    rows_sq = t.sum(dim=2).square().sum(dim=1)
    cols_sq = t.sum(dim=1).square().sum(dim=1)
    return _ari_from_pair_sums(n, cells_sq, rows_sq, cols_sq)


def _squared_group_sizes(keys: torch.Tensor, divisor: int, batch: int) -> torch.Tensor:
    """``sum over distinct keys k in image b of count(k)^2``, with ``image = key // divisor``."""
    uniq, counts = torch.unique(keys, return_counts=True)
    out = torch.zeros(batch, dtype=torch.int64, device=keys.device)
    return out.scatter_add_(0, torch.div(uniq, divisor, rounding_mode="floor"), counts.square())


def _fg_pair_sums_sparse(true: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Foreground pair sums without a dense table (any id range): sort-based via torch.unique."""
    batch = true.shape[0]
    flat_true, flat_pred = true.flatten(1), pred.flatten(1)
    fg = flat_true != 0
    image = torch.arange(batch, device=true.device)[:, None].expand_as(flat_true)[fg]  # (F,)
    _, t_ids = torch.unique(flat_true[fg], return_inverse=True)  # compact ids, (F,)
    _, p_ids = torch.unique(flat_pred[fg].to(torch.int64), return_inverse=True)
    num_t = int(t_ids.max()) + 1 if t_ids.numel() else 1
    num_p = int(p_ids.max()) + 1 if p_ids.numel() else 1
    if batch * num_t * num_p >= 2**62:
        raise ValueError("too many distinct ids in `true` x `pred` to index their pairs in int64")
    n = torch.bincount(image, minlength=batch)
    cells_sq = _squared_group_sizes((image * num_t + t_ids) * num_p + p_ids, num_t * num_p, batch)
    rows_sq = _squared_group_sizes(image * num_t + t_ids, num_t, batch)
    cols_sq = _squared_group_sizes(image * num_p + p_ids, num_p, batch)
    return n, cells_sq, rows_sq, cols_sq


def fg_ari(true: torch.Tensor, pred: torch.Tensor, *, empty_foreground: EmptyForeground = "one") -> torch.Tensor:
    """Per-image foreground ARI: sklearn ``adjusted_rand_score(true[true != 0], pred[true != 0])``.

    Args:
        true: ``(B, H, W)`` integer ground-truth ids, ``0`` = background (ignored), ids ``>= 0``.
        pred: ``(B, H, W)`` integer predicted ids (any integers; only equality matters).
        empty_foreground: value for an image with no foreground pixel. ``"one"`` (default):
            1.0, sklearn's value for empty input and hence what the LSD release (which calls
            sklearn per image) averages in; ``"nan"``: NaN, so that :func:`segmentation_scores`
            and :class:`SegmentationAccumulator` leave the image out of the FG-ARI mean.

    Returns:
        ``(B,)`` float64 on ``true``'s device, in ``[-1, 1]``. Degenerate images follow sklearn:
        one foreground pixel, or ground truth and prediction inducing the same partition (e.g. a
        single object predicted as a single cluster) give 1.0; a single object split over several
        clusters, or several objects merged into one cluster, give 0.0.
    """
    true, pred, true_max = check_label_maps(true, pred)
    if empty_foreground not in ("one", "nan"):
        raise ValueError(f"`empty_foreground` must be 'one' or 'nan', got {empty_foreground!r}")
    batch = true.shape[0]
    flat_pred = pred.flatten(1).to(torch.int64)
    num_true, num_pred = true_max + 1, 1
    if flat_pred.numel():
        low, high = id_range(flat_pred)
        flat_pred, num_pred = flat_pred - low, high - low + 1
    if batch * num_true * num_pred <= _DENSE_CELLS:
        table = contingency_tables(true, flat_pred.view_as(pred), num_true, num_pred)
        ari = ari_from_contingency(table[:, 1:, :])
        n = table[:, 1:, :].sum(dim=(1, 2))
    else:
        sums = _fg_pair_sums_sparse(true, flat_pred.view_as(pred))
        ari, n = _ari_from_pair_sums(*sums), sums[0]
    if empty_foreground == "nan":
        ari = torch.where(n == 0, torch.full_like(ari, float("nan")), ari)
    return ari


def ari(true: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Per-image ARI over EVERY pixel, background included: sklearn
    ``adjusted_rand_score(true.ravel(), pred.ravel())`` per image (docs/metrics.md, "ARI").

    The background (GT id 0) is one more cluster, so a model that leaves the background whole and
    segments the objects scores high. OCLF, DINOSAUR's evaluation framework, computes it
    (``ARIMetric(foreground=False)``); CODA's code defines it (``ARI_metric``).

    Args:
        true: ``(B, H, W)`` integer ground-truth ids, ``>= 0`` (0 = background, scored as a cluster).
        pred: ``(B, H, W)`` integer predicted ids.

    Returns:
        ``(B,)`` float64 in ``[-1, 1]``; 1.0 for an image without pixels (sklearn's convention).
    """
    true, pred, _ = check_label_maps(true, pred)
    # every pixel becomes foreground: shift the ids by one so that FG-ARI counts the background too
    return fg_ari(true.to(torch.int64) + 1, pred)
