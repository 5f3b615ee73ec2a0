"""Class (category) masks from instance masks: the ground truth of mBO^c and mIoU^c.

COCO and VOC papers after DINOSAUR score slots twice: against instance masks (mBO^i, mIoU^i)
and against class masks, where every instance of a category merges into one segment (mBO^c,
mIoU^c; SPOT, SlotAdapt, CODA). SPOT (``datasets.py``, ``COCO2017._gen_seg_n_insta_masks``) and
CODA (``experiment/dataset/coco.py``, ``load_sem_masks``) both paint each instance's category
over its pixels and score with the same ignore mask as the instances (pixels covered by more than
one instance are left out), so on every scored pixel the class id is the category of the one
instance that covers it. That is what :func:`class_label_maps` computes from our instance maps:
``class[b, y, x] = categories[b, true[b, y, x] - 1]`` (background stays 0). Which instance wins an
overlap (SPOT: the first, CODA: the last) never matters, because overlaps are not scored.

docs/metrics.md ("Class masks") names the protocol of each paper.
"""

from __future__ import annotations

import torch

from lsd.metrics.contingency import as_tensor, check_label_maps

__all__ = ["class_label_maps"]


def class_label_maps(true: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
    """Instance ids -> category ids, per pixel.

    Args:
        true: ``(B, H, W)`` integer instance ids, 0 = background, ``j`` = instance ``j``.
        categories: ``(B, K)`` integer category of instance ``j`` in column ``j - 1`` (COCO's
            ``category_id``, 1..90); ``-1`` pads columns without an instance. ``K`` must cover
            every id in ``true``.

    Returns:
        ``(B, H, W)`` int64: 0 where ``true`` is 0, else the instance's category id (``>= 1``).

    Raises:
        ValueError: shapes disagree, or an instance present in ``true`` has no category (``< 1``).
    """
    true, _, true_max = check_label_maps(true, true)
    cats = as_tensor(categories, "categories")
    if cats.dtype.is_floating_point or cats.dtype.is_complex:
        cats = cats.round()
    cats = cats.to(torch.int64)
    if cats.dim() != 2 or cats.shape[0] != true.shape[0]:
        raise ValueError(f"`categories` must have shape (B, K) = ({true.shape[0]}, K), got {tuple(cats.shape)}")
    if true_max > cats.shape[1]:
        raise ValueError(f"`true` contains instance id {true_max} but `categories` has only {cats.shape[1]} columns")
    table = torch.cat([cats.new_zeros((cats.shape[0], 1)), cats], dim=1).to(true.device)  # (B, K + 1), id -> class
    flat = true.flatten(1).to(torch.int64)
    classes = table.gather(1, flat).view_as(true)
    if bool(((classes < 1) & (true != 0)).any()):
        raise ValueError("`categories`: an instance present in `true` has no category (id < 1)")
    return classes
