"""Training items with cached tensors in place of a frozen network's forward pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from lsd.cache.store import CacheReader


class CachedItems(Dataset):
    """Wraps a training dataset so that ``get(index, epoch)`` adds, for the view that epoch shows
    (mirrored when ``dataset.flips(index, epoch)``):

    - ``"posterior"`` ``(2c, h, w)`` float32: the VAE posterior's mean then log-variance (what
      :func:`lsd.training.objective.training_loss` takes as ``posterior``), from ``posterior``;
    - ``"backbone_features"`` ``(C, h', w')`` float32: a frozen backbone's output, from ``features``.

    With ``needs_pixels=False`` (both frozen parts cached), the images are not read at all; the
    item then holds ``index`` and the cached tensors only.
    """

    def __init__(
        self,
        dataset: Dataset,
        posterior: CacheReader | None = None,
        features: CacheReader | None = None,
        needs_pixels: bool = True,
    ) -> None:
        for reader in (posterior, features):
            if reader is not None and len(reader) != len(dataset):
                raise ValueError(f"cache {reader.folder} holds {len(reader)} items, the dataset {len(dataset)}")
        self.dataset, self.posterior, self.features, self.needs_pixels = dataset, posterior, features, needs_pixels

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def image_paths(self) -> list[Path]:
        return self.dataset.image_paths()

    def get(self, index: int, epoch: int) -> dict[str, Any]:
        mirrored = self.dataset.flips(index, epoch)
        item = dict(self.dataset.view(index, mirrored)) if self.needs_pixels else {"index": index}
        view = int(mirrored)
        if self.posterior is not None:
            cached = self.posterior.get(index, view)
            item["posterior"] = torch.cat([cached["mean"], cached["logvar"]], dim=0)
        if self.features is not None:
            item["backbone_features"] = self.features.get(index, view)["features"]
        return item

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.get(index, getattr(self.dataset, "epoch", 0))


__all__ = ["CachedItems"]
