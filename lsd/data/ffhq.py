"""FFHQ: aligned faces, first 60k train / last 10k validation."""

from __future__ import annotations

import os

from lsd.data.images import GlobImageDataset

FFHQ_NUM_TRAIN = 60_000


class FFHQDataset(GlobImageDataset):
    """FFHQ images under ``root`` matching ``pattern`` (``images1024x1024/<idx//1000*1000:05d>/<idx:05d>.png``,
    the 128 px thumbnails, or any PNG glob).

    Files are sorted by path (FFHQ's zero-padded names sort by index); the first ``num_train``
    (60,000) are ``train``, the rest (the last 10,000 of 70,000) ``validation`` (``val`` also
    accepted). Items are :class:`~lsd.data.images.GlobImageDataset`'s: ``pixel_values`` float32
    ``(3, R, R)`` in [-1, 1], shortest side resized to ``resolution`` (PIL bilinear, antialiased)
    then centre-cropped; ``index``; optionally ``backbone_pixel_values``. No masks or labels.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        resolution: int = 256,
        pattern: str = "**/*.png",
        num_train: int = FFHQ_NUM_TRAIN,
        flip: bool = False,
        dinov2_resolution: int | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(
            root, resolution, pattern=pattern, portion=None, flip=flip, dinov2_resolution=dinov2_resolution, seed=seed
        )
        if split == "train":
            self.files = self.files[:num_train]
        elif split in ("validation", "val"):
            self.files = self.files[num_train:]
        else:
            raise ValueError(f"unknown FFHQ split {split!r}; expected 'train' or 'validation'")
        if not self.files:
            raise FileNotFoundError(f"the {split!r} split of {root} ({pattern}, {num_train} train files) is empty")
        self.split = split
