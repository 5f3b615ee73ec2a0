"""IoU, the release's cosine matching cost, and Hungarian matching of GT objects to slots.

Everything here works on contingency tables ``table[b, t, s]`` (see
:func:`lsd.metrics.contingency.contingency_tables`): ``t`` runs over ground-truth ids ``0..K``
(``0`` = background), ``s`` over slots ``0..S-1``, and the masks are the one-hot argmax maps, so

    |gt_t| = sum_s table[t, s],   |slot_s| = sum_t table[t, s],   |gt_t & slot_s| = table[t, s].

Matching (one optimisation per image with ``scipy.optimize.linear_sum_assignment``):

- ``"cosine"`` (the paper's, default): cost ``1 - a.b / (|a| |b| + 1e-6)`` between the
  flattened one-hot masks, i.e. ``1 - n_ts / (sqrt(|gt_t|) sqrt(|slot_s|) + 1e-6)``. It is
  evaluated in float32 with the same operations as the release, so the cost matrix is
  bit-identical to the release's (all counts are exact in float32 below 2**24 pixels).
- ``"iou"``: maximise the total IoU of the matched pairs.

Only *scored* GT ids (foreground and visible) take part; the others never match. With ``V``
scored objects and ``S`` slots, ``min(V, S)`` pairs are formed: when ``V > S`` the objects left
out are unmatched and, in the paper's object-averaged mBO/mIoU, not scored at all. This is what
the release's padded ``(max_num_obj + 1) x S`` matrix (background and invisible rows at cost
10000) does, because a 10000 row never displaces a scored object.

Ties. Exact ties between optimal matchings are resolved by scipy from the row/column order, so
in the release they depend on slot numbering (and on ``max_num_obj``, the number of padding
rows); a tie can even change which object is left unmatched, hence mBO.

- ``ties="release"`` keeps the release's order (the padded ``(K+1) x S`` matrix, slots by id):
  the assignment is bit-for-bit the release's for the same ``K`` (``visible.shape[1] - 1`` or
  ``max_num_obj``). For ``"iou"``, which the release lacks, it means scored rows, slots by id.
- ``ties="canonical"`` (default) solves on the scored rows only, with the slots ordered by
  their pixel counts per GT id (:func:`canonical_slot_order`). Whenever the optimum is unique
  this is the same matching as the release's; in a tie the choice depends neither on slot
  numbering nor on ``K``, so scores are invariant to relabelling slots and to batching.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

__all__ = [
    "Matching",
    "Ties",
    "INVISIBLE_COST",
    "iou_from_contingency",
    "release_cosine_cost",
    "canonical_slot_order",
    "assign_slots",
]

Matching = Literal["cosine", "iou"]
Ties = Literal["canonical", "release"]

# The release's cost for background and invisible GT rows: far above any cosine distance (<= 1).
INVISIBLE_COST = 10000.0
# The release's eps in the cosine similarity's denominator.
COSINE_EPS = 1e-6


def iou_from_contingency(table: torch.Tensor) -> torch.Tensor:
    """``(B, K+1, S)`` counts -> ``(B, K+1, S)`` float64 IoU of every (GT id, slot) pair.

    A pair whose union is empty (GT id absent and slot empty) has IoU 0.
    """
    inter = table.to(torch.float64)
    union = inter.sum(dim=2, keepdim=True) + inter.sum(dim=1, keepdim=True) - inter
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.zeros_like(inter))


def _release_cosine_cost_np(counts: np.ndarray) -> np.ndarray:
    dot = counts.astype(np.float32)
    norm_gt = np.sqrt(dot.sum(axis=2))  # (B, K+1), exact sums of integer counts
    norm_slot = np.sqrt(dot.sum(axis=1))  # (B, S)
    return np.float32(1) - dot / (norm_gt[:, :, None] * norm_slot[:, None, :] + np.float32(COSINE_EPS))


def release_cosine_cost(table: torch.Tensor) -> torch.Tensor:
    """``(B, K+1, S)`` counts -> ``(B, K+1, S)`` float32 cosine distance, as the release computes it.

    ``1 - dot / (sqrt(|a|) * sqrt(|b|) + 1e-6)`` in float32, operation for operation (the
    release's matmul of 0/1 float32 masks is exact, so only these IEEE roundings remain; they
    are done in numpy on the small table and agree with torch's float32 result up to one rounding
    step: exact ties in the release's cost can, rarely, resolve differently).
    """
    return torch.from_numpy(_release_cosine_cost_np(table.cpu().numpy())).to(table.device)


def canonical_slot_order(table: torch.Tensor) -> torch.Tensor:
    """``(B, K+1, S)`` counts -> ``(B, S)`` int64 slot order independent of slot numbering.

    Slots are sorted lexicographically by their column of counts (pixels of GT id 0, then 1,
    ...). Two slots with equal columns have equal costs and IoUs against every GT id, so which
    one comes first cannot change a score.
    """
    counts = table.cpu().numpy()
    return torch.from_numpy(np.lexsort(counts.transpose(1, 0, 2)[::-1]).astype(np.int64))


def assign_slots(
    table: torch.Tensor,
    scored: torch.Tensor,
    *,
    matching: Matching = "cosine",
    ties: Ties = "canonical",
    iou: torch.Tensor | None = None,
) -> torch.Tensor:
    """Hungarian matching of scored GT ids to slots, one ``linear_sum_assignment`` per image.

    Args:
        table: ``(B, K+1, S)`` contingency counts (GT id x slot).
        scored: ``(B, K+1)`` bool, the GT ids that take part (foreground, visible); column 0
            (background) must be False.
        matching: ``"cosine"`` (release cost, minimised) or ``"iou"`` (total IoU, maximised).
        ties: ``"canonical"`` or ``"release"`` (see the module docstring).
        iou: ``(B, K+1, S)`` float64 from :func:`iou_from_contingency`, if already computed.

    Returns:
        ``(B, K+1)`` int64: the slot matched to each GT id, ``-1`` where none (not scored, or
        left out because there are more scored objects than slots).
    """
    if matching not in ("cosine", "iou"):
        raise ValueError(f"`matching` must be 'cosine' or 'iou', got {matching!r}")
    if ties not in ("canonical", "release"):
        raise ValueError(f"`ties` must be 'canonical' or 'release', got {ties!r}")
    batch, rows, num_slots = table.shape
    scored_np = scored.cpu().numpy()
    if matching == "cosine":
        cost_np = _release_cosine_cost_np(table.cpu().numpy())
        if ties == "release":  # the release's padded matrix: background / invisible rows cost 10000
            cost_np = np.where(scored_np[:, :, None], cost_np, np.float32(INVISIBLE_COST))
        cost_np = cost_np.astype(np.float64)
    else:
        cost_np = -(iou_from_contingency(table) if iou is None else iou).cpu().numpy()
    if ties == "canonical":
        order_np = canonical_slot_order(table).numpy()
    matched = np.full((batch, rows), -1, dtype=np.int64)
    for b in range(batch):  # the assignment problem itself has no batched solver in scipy
        if ties == "release" and matching == "cosine":
            r, c = linear_sum_assignment(cost_np[b])
            keep = scored_np[b, r]
            matched[b, r[keep]] = c[keep]
            continue
        gt_rows = np.flatnonzero(scored_np[b])
        if gt_rows.size == 0:
            continue
        cols = order_np[b] if ties == "canonical" else np.arange(num_slots)
        r, c = linear_sum_assignment(cost_np[b][np.ix_(gt_rows, cols)])
        matched[b, gt_rows[r]] = cols[c]
    return torch.from_numpy(matched).to(table.device)
