"""The typed samples every reader in :mod:`lsd.data` returns, and the batches a ``DataLoader``
makes of them (default collation: each tensor gains a leading batch axis ``B``, ``index`` becomes
an int64 tensor ``(B,)``, ``labels`` stays a dict of batched tensors).

TypedDicts, not dataclasses: they are plain dicts at run time, so torch's default collation and
the release-style string keys keep working, while type checkers see every field. Conventions
(docs/datasets.md): ``pixel_values`` in [-1, 1] (``x / 127.5 - 1``); GT ids 0 = background,
``1..K`` objects; ``labels[name]`` row ``j`` belongs to GT id ``j + 1``.
"""

# No ``from __future__ import annotations``: TypedDict reads NotRequired[...] from evaluated annotations.
import torch
from typing_extensions import NotRequired, TypedDict

__all__ = ["ImageBatch", "ImageSample", "LabelledBatch", "LabelledSample"]


class ImageSample(TypedDict):
    """An unlabelled image (training readers: :class:`lsd.data.images.GlobImageDataset`, FFHQ).

    Keys:
        pixel_values: float32 ``(3, R, R)`` in [-1, 1].
        index: the item's position in its dataset.
        backbone_pixel_values: float32 ``(3, R', R')``, the DINOv2 view
            (:func:`lsd.data.transforms.dinov2_view`), present when the reader was asked for it.
    """

    pixel_values: torch.Tensor
    index: int
    backbone_pixel_values: NotRequired[torch.Tensor]


class LabelledSample(ImageSample):
    """A labelled image (evaluation readers: MOVi, CLEVR, CLEVRTex, COCO).

    Keys (besides :class:`ImageSample`'s):
        masks: int64 ``(H, W)`` GT ids at the protocol's mask size.
        visible: bool ``(K + 1,)``: which GT ids are scored (entry 0 the background).
        labels: property -> int64 ``(K,)`` (discrete, -1 padded) or float32 ``(K, D)``.
        ignore: bool ``(H, W)`` pixels left out of every score (COCO: covered by several
            instances); absent where a dataset has none.
    """

    masks: torch.Tensor
    visible: torch.Tensor
    labels: dict[str, torch.Tensor]
    ignore: NotRequired[torch.Tensor]


class ImageBatch(TypedDict):
    """Collated :class:`ImageSample`: ``pixel_values`` ``(B, 3, R, R)``, ``index`` ``(B,)``."""

    pixel_values: torch.Tensor
    index: torch.Tensor
    backbone_pixel_values: NotRequired[torch.Tensor]


class LabelledBatch(ImageBatch):
    """Collated :class:`LabelledSample`: ``masks`` ``(B, H, W)``, ``visible`` ``(B, K + 1)``,
    ``labels[name]`` ``(B, K[, D])``, ``ignore`` ``(B, H, W)``."""

    masks: torch.Tensor
    visible: torch.Tensor
    labels: dict[str, torch.Tensor]
    ignore: NotRequired[torch.Tensor]
