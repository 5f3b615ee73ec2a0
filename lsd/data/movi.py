"""MOVi-C / MOVi-E frames as dumped by the LSD release (also the synthetic stand-in's format)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch.utils.data import Dataset

from lsd.data._common import (
    PropertyKind,
    check_count,
    check_ids,
    find_labelled_folder,
    frame_label_paths,
    labelled_sample,
    list_frames,
    per_object,
    read_labelled_frame,
    read_visibility,
    require,
    split_names,
)
from lsd.data.images import read_rgb
from lsd.data.sample import LabelledSample
from lsd.data.transforms import resize_and_crop, to_model_range

#: What the LSD evaluation predicts from slots on MOVi-C/E.
MOVI_PROPERTIES: dict[str, PropertyKind] = {
    "category": "discrete",
    "image_positions": "continuous",
    "bboxes_3d": "continuous",
    "scale": "continuous",
}

#: The LSD evaluation's ``max_num_obj`` (MOVi-C test holds up to 24 objects).
MOVI_MAX_OBJECTS = {"movi-a": 10, "movi-c": 10, "movi-e": 23}
MOVI_C_TEST_MAX_OBJECTS = 24


def default_max_objects(name: str, split: str) -> int | None:
    """The release's object budget for a MOVi variant, or None for an unknown name."""
    name = name.lower().replace("_", "-")
    if name == "movi-c" and split == "test":
        return MOVI_C_TEST_MAX_OBJECTS
    return MOVI_MAX_OBJECTS.get(name)


def _name_from_folder(folder: Path, split: str) -> str:
    """``movi-e-validation-with-label`` -> ``movi-e``; any other folder name is kept whole."""
    stem = folder.name.removesuffix("-with-label")
    for s in split_names(split):
        if stem.endswith(f"-{s}"):
            return stem[: -len(s) - 1]
    return stem


class MoviDataset(Dataset):
    """Frames of MOVi-C / MOVi-E in the layout the release's dump script writes::

        <root>/<name>/<name>-<split>-with-label/images/<video:08d>/<frame:08d>_image.png   RGB
        <root>/<name>/<name>-<split>-with-label/labels/<video:08d>/<frame:08d>_segment.png  L, 0..k
        <root>/<name>/<name>-<split>-with-label/labels/<video:08d>/<frame:08d>_instances.json

    ``root`` may also be the ``...-with-label`` folder or its ``images/`` folder; ``split``
    ``validation`` and ``val`` name the same folder. Every ``*_image.png`` is one item, sorted by
    path (video, then frame).

    Items:
        ``pixel_values``: float32 ``(3, R, R)`` in [-1, 1]; shortest side resized to
        ``resolution`` (PIL bilinear, antialiased), then the centre square (the release's
        ``Resize`` + ``CenterCrop``). No resize when the frame is already ``R x R``.
        ``masks``: int64 ``(H, W)`` segment ids as stored (MOVi: 256 x 256, never resized);
        0 = background, id ``i`` <-> ``instances[i - 1]``.
        ``visible``: bool ``(K + 1,)``; ``visible[i]`` (i >= 1) is ``visibility[i - 1] > 0`` in this
        frame's ``instances.json`` (the release's rule); ``visible[0]``: any background pixel.
        ``labels``: per property of ``properties`` (default :data:`MOVI_PROPERTIES`): discrete
        int64 ``(K,)`` padded with -1, continuous float32 ``(K, D)`` padded with 0, row ``i - 1``
        <-> id ``i``. ``bboxes_3d`` (k, 8, 3) is flattened to D = 24; ``scale`` has D = 1.
        ``index``: the item's position in the dataset.

    ``K = max_num_objects``: by default the release's budget for ``name`` (movi-c 10, 24 on
    its test split; movi-e 23); for another name (e.g. the synthetic stand-in), the largest
    object count over the split's ``instances.json`` files, read once here.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "validation",
        name: str | None = None,
        resolution: int = 256,
        max_num_objects: int | None = None,
        properties: Mapping[str, PropertyKind] | None = None,
    ) -> None:
        self.folder = find_labelled_folder(Path(root), name, split)
        self.name = name or _name_from_folder(self.folder, split)
        self.split = split
        self.resolution = resolution
        self.frames = list_frames(self.folder)
        self.property_kinds: dict[str, PropertyKind] = dict(MOVI_PROPERTIES if properties is None else properties)
        if max_num_objects is None:
            max_num_objects = default_max_objects(self.name, split)
        if max_num_objects is None:
            max_num_objects = max(self._num_objects(frame) for frame in self.frames)
        self.max_num_objects = max_num_objects

    def _num_objects(self, image_path: Path) -> int:
        return len(read_visibility(frame_label_paths(image_path, self.folder)[1]))

    def __len__(self) -> int:
        return len(self.frames)

    def image_paths(self) -> list[Path]:
        """The image file each index reads (what a cache of this split is keyed by)."""
        return list(self.frames)

    def pixel_values(self, index: int) -> torch.Tensor:
        """Item ``index``'s ``pixel_values`` alone (``(3, R, R)`` in [-1, 1], equal to
        ``self[index]["pixel_values"]``), without reading its labels: what training reads."""
        return to_model_range(resize_and_crop(read_rgb(self.frames[index]), self.resolution))

    def __getitem__(self, index: int) -> LabelledSample:
        image, masks, instances, visibility, segment_path, json_path = read_labelled_frame(
            self.frames[index], self.folder
        )
        count = len(visibility)
        check_count(count, self.max_num_objects, json_path)
        check_ids(masks, count, segment_path, json_path)
        rows = {
            key: per_object(require(instances, key, json_path), count, key, json_path) for key in self.property_kinds
        }
        return labelled_sample(
            resize_and_crop(image, self.resolution), masks, visibility > 0, rows, self.property_kinds,
            self.max_num_objects, json_path, index,
        )  # fmt: skip
