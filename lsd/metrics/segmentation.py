"""Object-discovery scores: FG-ARI, mBO and Hungarian mIoU, per batch and over a dataset.

Conventions (docs/metrics.md; the LSD release's evaluation unless stated):

- ``true`` ``(B, H, W)``: GT ids, 0 = background, objects ``1..K``. ``pred`` ``(B, H, W)``: slot ids
  in ``[0, num_slots)`` (argmax of the bilinearly resized attention maps).
- ``visible`` ``(B, K+1)`` over GT ids (column 0, the background, is ignored): the objects that
  are scored. Default: the ids present in ``true``. Pass the dataset's visibility (e.g. MOVi
  ``visibility > 0`` with a leading background column) to reproduce the release; its width
  ``K + 1 = max_num_obj + 1`` also fixes the release's matrix size (see ``ties``).
- FG-ARI: every pixel with ``true != 0`` counts, visible or not (the release's ``ari``).
- Best overlap of a GT object: its largest IoU with any slot's argmax mask.
- Matching (``"cosine"`` default, or ``"iou"``) and the unmatched-objects rule: see
  :mod:`lsd.metrics.matching`.

The five numbers (each a float in [0, 1], FG-ARI in [-1, 1]):

=============  ==========================================================================
``fg_ari``     mean over images of the per-image FG-ARI.
``ari``        mean over images of the per-image ARI over every pixel, background included
               (OCLF's ``foreground=False`` ARI; no LSD paper number uses it).
``mbo``        paper (object-averaged): mean best overlap over all MATCHED scored objects
               of the dataset (the release scores only objects the matching assigns).
``miou``       paper (object-averaged): mean IoU of the matched (object, slot) pairs.
``mbo_image``  DINOSAUR-style (image-averaged): per image, mean best overlap over EVERY
               scored object (matched or not); then mean over images.
``miou_image`` image-averaged: per image, mean IoU of its matched pairs (the release's
               over-images mIoU); then mean over images.
=============  ==========================================================================

Degenerate cases: an image with no scored object (no matched object, for ``miou_image``) is left
out of the image averages; a dataset with nothing to average gives NaN. An object flagged visible
but with no pixel has IoU 0 with every slot (the release can produce 0/0 = NaN for it, which
then turns its whole mean into NaN). FG-ARI
of an image without foreground follows ``empty_foreground`` (see :func:`lsd.metrics.fg_ari`):
1.0 by default like sklearn and the release, or NaN to leave the image out of the mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lsd.metrics.ari import EmptyForeground, ari_from_contingency
from lsd.metrics.contingency import as_tensor, check_label_maps, contingency_tables, id_range
from lsd.metrics.matching import Matching, Ties, assign_slots, iou_from_contingency

__all__ = [
    "SegmentationEvaluation",
    "evaluate_segmentation",
    "match_slots",
    "segmentation_scores",
    "SegmentationAccumulator",
]

SCORE_KEYS = ("fg_ari", "ari", "mbo", "miou", "mbo_image", "miou_image")


@dataclass
class SegmentationEvaluation:
    """Per-image and per-object results of one batch (all on the input device).

    Attributes:
        fg_ari: ``(B,)`` float64 per-image FG-ARI.
        scored: ``(B, K+1)`` bool, the GT ids that are scored (visible foreground; column 0 False).
        best_iou: ``(B, K+1)`` float64, best IoU of each GT id over all slots (mBO's term).
        matched_slot: ``(B, K+1)`` int64, slot matched to each GT id, ``-1`` where unmatched.
        matched_iou: ``(B, K+1)`` float64, IoU with the matched slot, 0 where unmatched.
        ari: ``(B,)`` float64 per-image ARI over every pixel, background included (None when
            not computed).
    """

    fg_ari: torch.Tensor
    scored: torch.Tensor
    best_iou: torch.Tensor
    matched_slot: torch.Tensor
    matched_iou: torch.Tensor
    ari: torch.Tensor | None = None

    @property
    def matched(self) -> torch.Tensor:
        """``(B, K+1)`` bool: GT ids with a matched slot (always a subset of ``scored``)."""
        return self.matched_slot >= 0

    def pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per image, ``(gt_ids, slot_ids)``: int64 ``(M_b,)`` each, the matched pairs by GT id.

        ``gt_ids`` are segment ids (``1..K``); for MOVi, instance ``j`` of the labels is
        segment ``j + 1``.
        """
        image, gt = torch.nonzero(self.matched, as_tuple=True)
        slots = self.matched_slot[image, gt]
        sizes = self.matched.sum(dim=1).tolist()
        return list(zip(torch.split(gt, sizes), torch.split(slots, sizes), strict=True))


def _check_options(num_slots: object, matching: object, ties: object, empty_foreground: object) -> None:
    if isinstance(num_slots, bool) or not isinstance(num_slots, int) or num_slots < 1:
        raise ValueError(f"`num_slots` must be a positive int, got {num_slots!r}")
    if matching not in ("cosine", "iou"):
        raise ValueError(f"`matching` must be 'cosine' or 'iou', got {matching!r}")
    if ties not in ("canonical", "release"):
        raise ValueError(f"`ties` must be 'canonical' or 'release', got {ties!r}")
    if empty_foreground not in ("one", "nan"):
        raise ValueError(f"`empty_foreground` must be 'one' or 'nan', got {empty_foreground!r}")


def _resolve_visible(
    visible: object, batch: int, true_max: int, max_num_obj: int | None
) -> tuple[torch.Tensor | None, int]:
    """Check ``visible`` / ``max_num_obj``; return ``visible`` as bool (or None) and ``K``."""
    if max_num_obj is not None and (not isinstance(max_num_obj, int) or max_num_obj < 0):
        raise ValueError(f"`max_num_obj` must be a non-negative int, got {max_num_obj!r}")
    if visible is None:
        num_obj = true_max if max_num_obj is None else max_num_obj
        if true_max > num_obj:
            raise ValueError(f"`true` contains id {true_max} but `max_num_obj` is {max_num_obj}")
        return None, num_obj
    vis = as_tensor(visible, "visible")
    if vis.dim() != 2 or vis.shape[0] != batch:
        raise ValueError(f"`visible` must have shape (B, K+1) = ({batch}, K+1), got {tuple(vis.shape)}")
    num_obj = vis.shape[1] - 1
    if max_num_obj is not None and num_obj != max_num_obj:
        raise ValueError(f"`visible` has {vis.shape[1]} columns but `max_num_obj` + 1 = {max_num_obj + 1}")
    if true_max > num_obj:
        raise ValueError(f"`true` contains id {true_max} but `visible` only covers ids 0..{num_obj}")
    return (vis if vis.dtype == torch.bool else vis > 0), num_obj


def evaluate_segmentation(
    true: torch.Tensor,
    pred: torch.Tensor,
    *,
    num_slots: int,
    visible: torch.Tensor | None = None,
    matching: Matching = "cosine",
    ties: Ties = "canonical",
    max_num_obj: int | None = None,
    empty_foreground: EmptyForeground = "one",
) -> SegmentationEvaluation:
    """Score one batch, keeping per-image / per-object detail (see the module docstring).

    Args:
        true: ``(B, H, W)`` integer GT ids, 0 = background.
        pred: ``(B, H, W)`` integer slot ids in ``[0, num_slots)``.
        num_slots: number of slots ``S`` (columns of the matching; empty slots still count).
        visible: ``(B, K+1)`` bool (or counts, ``> 0`` = visible) over GT ids; default: ids present.
        matching: ``"cosine"`` (paper) or ``"iou"``.
        ties: ``"canonical"`` (default) or ``"release"``; see :mod:`lsd.metrics.matching`.
        max_num_obj: ``K`` when ``visible`` is not given (the release's ``max_num_obj``; only
            changes anything with ``ties="release"``); default: the largest id in ``true``.
        empty_foreground: FG-ARI of an image without foreground, ``"one"`` or ``"nan"``.

    Returns:
        A :class:`SegmentationEvaluation` (``K + 1`` = ``visible.shape[1]``, else
        ``max_num_obj + 1``, else the largest id in ``true`` plus one).
    """
    true, pred, true_max = check_label_maps(true, pred)
    _check_options(num_slots, matching, ties, empty_foreground)
    batch = true.shape[0]
    if pred.numel():
        low, high = id_range(pred)
        if low < 0 or high >= num_slots:
            raise ValueError(f"`pred` slot ids must lie in [0, num_slots={num_slots}), got [{low}, {high}]")
    vis, num_obj = _resolve_visible(visible, batch, true_max, max_num_obj)

    table = contingency_tables(true, pred, num_obj + 1, num_slots)  # (B, K+1, S)
    scored = (table.sum(dim=2) > 0) if vis is None else vis.to(device=table.device).clone()
    scored[:, 0] = False
    ari = ari_from_contingency(table[:, 1:, :])
    if empty_foreground == "nan":
        empty = table[:, 1:, :].sum(dim=(1, 2)) == 0
        ari = torch.where(empty, torch.full_like(ari, float("nan")), ari)

    iou = iou_from_contingency(table)  # (B, K+1, S)
    matched_slot = assign_slots(table, scored, matching=matching, ties=ties, iou=iou)
    matched = matched_slot >= 0
    matched_iou = iou.gather(2, matched_slot.clamp_min(0)[:, :, None])[:, :, 0]
    return SegmentationEvaluation(
        fg_ari=ari,
        scored=scored,
        best_iou=iou.amax(dim=2),
        matched_slot=matched_slot,
        matched_iou=torch.where(matched, matched_iou, torch.zeros_like(matched_iou)),
        ari=ari_from_contingency(table),
    )


def match_slots(
    true: torch.Tensor,
    pred: torch.Tensor,
    num_slots: int,
    visible: torch.Tensor | None = None,
    matching: Matching = "cosine",
    *,
    ties: Ties = "canonical",
    max_num_obj: int | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The Hungarian assignment the scores use: per image, ``(gt_ids, slot_ids)`` int64 tensors.

    Only scored (visible foreground) objects that the matching assigns appear, sorted by GT id.
    This is what property probes pair with slot vectors (see :func:`lsd.metrics.collect_matched`).
    """
    evaluation = evaluate_segmentation(
        true, pred, num_slots=num_slots, visible=visible, matching=matching, ties=ties, max_num_obj=max_num_obj
    )
    return evaluation.pairs()


def _fsum_mean(values: torch.Tensor) -> float:
    """Exactly rounded mean (``math.fsum``): independent of order and batching; NaN if empty."""
    return math.fsum(values.tolist()) / values.numel() if values.numel() else float("nan")


class SegmentationAccumulator:
    """Dataset-level FG-ARI / mBO / mIoU: ``update`` per batch, then ``compute``.

    Gives exactly the numbers :func:`segmentation_scores` gives on the whole dataset as one
    batch: it keeps per-image sums and per-object values (a few floats per image), not means
    of means, and reduces them with ``math.fsum``. With ``ties="canonical"`` (default) every
    image is matched independently of its batch; with ``ties="release"`` pass ``visible`` of a
    fixed width or ``max_num_obj`` (as the release does) for the same guarantee.

    Args: as :func:`evaluate_segmentation` (fixed for the whole dataset).
    """

    def __init__(
        self,
        num_slots: int,
        *,
        matching: Matching = "cosine",
        ties: Ties = "canonical",
        max_num_obj: int | None = None,
        empty_foreground: EmptyForeground = "one",
    ) -> None:
        _check_options(num_slots, matching, ties, empty_foreground)
        self.num_slots = num_slots
        self.matching: Matching = matching
        self.ties: Ties = ties
        self.max_num_obj = max_num_obj
        self.empty_foreground: EmptyForeground = empty_foreground
        self.reset()

    def reset(self) -> None:
        """Forget everything accumulated."""
        self._parts: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("ari", "ari_all", "obj_bo", "obj_iou", "img_bo_sum", "img_bo_n", "img_iou_sum", "img_iou_n")
        }

    @property
    def num_images(self) -> int:
        """Images accumulated so far."""
        return sum(x.numel() for x in self._parts["ari"])

    @property
    def num_matched_objects(self) -> int:
        """Objects counted by the object-averaged ``mbo`` / ``miou`` so far."""
        return sum(x.numel() for x in self._parts["obj_iou"])

    def update(
        self, true: torch.Tensor, pred: torch.Tensor, visible: torch.Tensor | None = None
    ) -> SegmentationEvaluation:
        """Add a batch (``true``, ``pred`` ``(B, H, W)``, ``visible`` ``(B, K+1)``); returns its detail."""
        ev = evaluate_segmentation(
            true,
            pred,
            num_slots=self.num_slots,
            visible=visible,
            matching=self.matching,
            ties=self.ties,
            max_num_obj=self.max_num_obj,
            empty_foreground=self.empty_foreground,
        )
        matched, scored = ev.matched, ev.scored
        zero = torch.zeros_like(ev.best_iou)
        # Per-image sums via cumsum: a sequential left-to-right sum, so a row's value does not
        # depend on the table width (K + 1 varies between batches when `visible` is not given).
        parts = {
            "ari": ev.fg_ari,
            "ari_all": ev.ari,
            "obj_bo": ev.best_iou[matched],
            "obj_iou": ev.matched_iou[matched],
            "img_bo_sum": torch.where(scored, ev.best_iou, zero).cumsum(dim=1)[:, -1],
            "img_bo_n": scored.sum(dim=1),
            "img_iou_sum": torch.where(matched, ev.matched_iou, zero).cumsum(dim=1)[:, -1],
            "img_iou_n": matched.sum(dim=1),
        }
        for key, value in parts.items():
            self._parts[key].append(value.detach().cpu())
        return ev

    def compute(self) -> dict[str, float]:
        """``{"fg_ari", "ari", "mbo", "miou", "mbo_image", "miou_image"}`` over everything accumulated."""
        cat = {k: torch.cat(v) if v else torch.zeros(0) for k, v in self._parts.items()}
        ari = cat["ari"].to(torch.float64)
        bo_n, iou_n = cat["img_bo_n"], cat["img_iou_n"]
        return {
            "fg_ari": _fsum_mean(ari[~torch.isnan(ari)]),
            "ari": _fsum_mean(cat["ari_all"].to(torch.float64)),
            "mbo": _fsum_mean(cat["obj_bo"]),
            "miou": _fsum_mean(cat["obj_iou"]),
            "mbo_image": _fsum_mean(cat["img_bo_sum"][bo_n > 0] / bo_n[bo_n > 0]),
            "miou_image": _fsum_mean(cat["img_iou_sum"][iou_n > 0] / iou_n[iou_n > 0]),
        }


def segmentation_scores(
    true: torch.Tensor,
    pred: torch.Tensor,
    *,
    num_slots: int,
    visible: torch.Tensor | None = None,
    matching: Matching = "cosine",
    ties: Ties = "canonical",
    max_num_obj: int | None = None,
    empty_foreground: EmptyForeground = "one",
) -> dict[str, float]:
    """FG-ARI, mBO, mIoU (object-averaged, the paper's) and image-averaged mBO / mIoU of a batch.

    Args: see :func:`evaluate_segmentation`. Returns ``{"fg_ari", "ari", "mbo", "miou", "mbo_image",
    "miou_image"}`` as floats (see the module docstring for what each averages).
    """
    acc = SegmentationAccumulator(
        num_slots, matching=matching, ties=ties, max_num_obj=max_num_obj, empty_foreground=empty_foreground
    )
    acc.update(true, pred, visible)
    return acc.compute()
