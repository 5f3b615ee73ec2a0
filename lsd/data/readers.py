"""Every dataset reader by name: the one place that maps a dataset name to its real reader.

Used by the evaluation (``lsd evaluate --dataset``), by training (``data.kind = "dataset"``: the
images of a reader's split) and by the reproductions. Each reader follows its own on-disk layout
(docs/datasets.md); a missing or malformed folder raises the reader's error, which names the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from torch.utils.data import Dataset

__all__ = ["LABELLED_DATASETS", "READABLE_DATASETS", "open_dataset", "synth_name"]

#: Names of the labelled readers (masks and per-object labels): what evaluation scores.
LABELLED_DATASETS = ("movi-e", "movi-c", "clevr", "clevrtex", "coco", "synth")
#: Every name :func:`open_dataset` reads; ``ffhq`` has images only (no masks).
READABLE_DATASETS = (*LABELLED_DATASETS, "ffhq")


def synth_name(root: Path) -> str | None:
    """The dataset name recorded by :func:`lsd.data.synthetic.write_dataset`, if ``root`` is its folder."""
    spec = Path(root) / "synth_spec.json"
    if not spec.is_file():
        return None
    try:
        return str(json.loads(spec.read_text())["name"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{spec} is not a synthetic dataset spec: {err}") from err


def open_dataset(
    name: str,
    root: str | os.PathLike,
    *,
    split: str = "validation",
    resolution: int,
    clevrtex_crop: Literal["official", "lsd"] = "lsd",
    ffhq_num_train: int | None = None,
) -> Dataset:
    """The reader for ``name`` (one of :data:`READABLE_DATASETS`) over ``root``'s ``split``.

    Images come at ``resolution`` (the model's input side); GT masks at each reader's protocol
    size. ``root`` follows each reader's rules (for ``movi-*`` the release's dump root, its
    ``movi-e/`` folder or a ``...-with-label`` split folder; for ``synth`` the folder ``lsd synth``
    wrote or a split folder in it; for ``ffhq`` the folder holding the PNGs, with the first
    ``ffhq_num_train`` (default 60,000) files as ``train``).
    """
    if name not in READABLE_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(READABLE_DATASETS)}")
    if name in ("movi-e", "movi-c", "synth"):
        from lsd.data.movi import MoviDataset

        dataset_name = name if name != "synth" else synth_name(Path(root))
        return MoviDataset(root, split, name=dataset_name, resolution=resolution)
    if name == "clevr":
        from lsd.data.clevr import ClevrWithMasksDataset

        return ClevrWithMasksDataset(root, split, resolution=resolution)
    if name == "clevrtex":
        from lsd.data.clevrtex import ClevrTexDataset

        return ClevrTexDataset(root, split, crop=clevrtex_crop, resolution=resolution)
    if name == "ffhq":
        from lsd.data.ffhq import FFHQ_NUM_TRAIN, FFHQDataset

        num_train = FFHQ_NUM_TRAIN if ffhq_num_train is None else ffhq_num_train
        return FFHQDataset(root, split, resolution=resolution, num_train=num_train)
    from lsd.data.coco import CocoDataset

    return CocoDataset(root, split, resolution=resolution)
