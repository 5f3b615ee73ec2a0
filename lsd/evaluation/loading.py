"""What ``lsd evaluate`` reads: a model from any of the three checkpoint layouts (found by
:func:`lsd.runs.resolve_checkpoint`), and a dataset by name."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from lsd.data.readers import LABELLED_DATASETS
from lsd.runs import CheckpointKind, resolve_checkpoint

if TYPE_CHECKING:
    from torch.utils.data import Dataset

__all__ = ["DATASETS", "CheckpointKind", "resolve_checkpoint", "load_model", "input_resolution", "build_dataset"]

#: Dataset names ``lsd evaluate --dataset`` accepts.
DATASETS = LABELLED_DATASETS


def load_model(path: str | os.PathLike):
    """``(model, kind, folder)``: the :class:`~lsd.LatentSlotDiffusion` at ``path`` (any layout of
    :func:`lsd.runs.resolve_checkpoint`), in eval mode on the CPU, without its autoencoder
    (segmentation and slots do not use it)."""
    from lsd.models.lsd import LatentSlotDiffusion
    from lsd.official import load_official_checkpoint

    kind, folder = resolve_checkpoint(path)
    if kind == "release":
        model = load_official_checkpoint(folder, vae=None)
    else:
        model = LatentSlotDiffusion.from_pretrained(folder, vae=None)
    return model.eval(), kind, folder


def input_resolution(model) -> int:
    """Side of the images the model's backbone takes (``CNNBackbone`` and ``DINOv2Backbone`` both
    keep it in ``config.input_resolution``)."""
    try:
        return int(model.backbone.config.input_resolution)
    except AttributeError as err:
        raise ValueError(
            f"cannot tell the input resolution of a {type(model.backbone).__name__} backbone: "
            "it has no config.input_resolution"
        ) from err


def build_dataset(
    name: str,
    root: str | os.PathLike,
    *,
    split: str = "validation",
    resolution: int,
    clevrtex_crop: Literal["official", "lsd"] = "lsd",
) -> Dataset:
    """The labelled reader for ``name`` (one of :data:`DATASETS`) over ``root``.

    Images come at ``resolution`` (the model's input side); GT masks at each reader's protocol
    size. ``root`` follows each reader's rules (for ``movi-*`` the release's dump root, its
    ``movi-e/`` folder or a ``...-with-label`` split folder; for ``synth`` the folder
    ``lsd synth`` wrote or a split folder in it). A missing or malformed folder raises the
    reader's error, which names the file.
    """
    from lsd.data.readers import open_dataset

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return open_dataset(name, root, split=split, resolution=resolution, clevrtex_crop=clevrtex_crop)
