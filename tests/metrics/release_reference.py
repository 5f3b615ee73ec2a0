"""A slow, literal re-statement of the LSD release's segmentation evaluation, used as an oracle.

Written from the protocol in docs/metrics.md, not from our implementation: dense one-hot masks,
the cosine cost as a float32 matmul, the padded ``(K+1) x S`` matrix with background / invisible
rows at 10000, one ``linear_sum_assignment`` per image, boolean-mask IoUs, sklearn ARI per image.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score


def release_reference(true: torch.Tensor, pred: torch.Tensor, num_slots: int, visible: torch.Tensor) -> dict:
    """``true``/``pred`` ``(B, H, W)``, ``visible`` ``(B, K+1)`` bool -> per-image ARI, pairs, IoUs."""
    batch, rows = true.shape[0], visible.shape[1]
    gt = F.one_hot(true.long(), rows).permute(0, 3, 1, 2).float().flatten(2)  # (B, K+1, HW)
    sl = F.one_hot(pred.long(), num_slots).permute(0, 3, 1, 2).float().flatten(2)  # (B, S, HW)
    dots = gt @ sl.transpose(1, 2)  # (B, K+1, S)
    norm_gt = (gt * gt).sum(2).sqrt()[:, :, None]  # (B, K+1, 1)
    norm_sl = (sl * sl).sum(2).sqrt()[:, None, :]  # (B, 1, S)
    cost = 1 - dots / (norm_gt @ norm_sl + 1e-6)
    selected = visible.float().clone()
    selected[:, 0] = 0
    selected = selected[:, :, None]
    cost = cost * selected + 10000 * (1 - selected)

    out = {"ari": [], "pairs": [], "matched_iou": [], "matched_bo": [], "visible_bo": []}
    for b in range(batch):
        fg = true[b] != 0
        out["ari"].append(adjusted_rand_score(true[b][fg].numpy(), pred[b][fg].numpy()))
        slot_masks = pred[b][None] == torch.arange(num_slots)[:, None, None]  # (S, H, W)

        def best_overlap(gt_id: int, b: int = b, slot_masks: torch.Tensor = slot_masks) -> float:
            gt_map = true[b] == gt_id
            inter = (gt_map[None] & slot_masks).sum((1, 2)).double()
            union = (gt_map[None] | slot_masks).sum((1, 2)).double()
            return float((inter / union).max())

        r, c = linear_sum_assignment(cost[b].numpy())
        pairs, ious, bos = [], [], []
        for gt_id, slot in zip(r.tolist(), c.tolist(), strict=True):
            if selected[b, gt_id, 0] == 0:
                continue
            gt_map, slot_map = true[b] == gt_id, pred[b] == slot
            pairs.append((gt_id, slot))
            ious.append(float((gt_map & slot_map).sum() / (gt_map | slot_map).sum()))
            bos.append(best_overlap(gt_id))
        out["pairs"].append(pairs)
        out["matched_iou"].append(ious)
        out["matched_bo"].append(bos)
        out["visible_bo"].append([best_overlap(k) for k in np.flatnonzero(selected[b, :, 0].numpy())])
    return out


def reference_scores(ref: dict) -> dict[str, float]:
    """The five dataset numbers from :func:`release_reference`'s per-image lists."""

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else float("nan")

    flat = lambda key: [v for image in ref[key] for v in image]  # noqa: E731
    return {
        "fg_ari": mean(ref["ari"]),
        "mbo": mean(flat("matched_bo")),
        "miou": mean(flat("matched_iou")),
        "mbo_image": mean([mean(v) for v in ref["visible_bo"] if v]),
        "miou_image": mean([mean(v) for v in ref["matched_iou"] if v]),
    }
