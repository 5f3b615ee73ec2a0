"""CLEVR-with-masks (DeepMind multi_object_datasets) in the converted layout the LSD evaluation reads."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from lsd.data._common import (
    PropertyKind,
    check_count,
    check_ids,
    crop_and_resize_mask,
    find_labelled_folder,
    frame_label_paths,
    labelled_sample,
    list_frames,
    per_object,
    present_ids,
    read_labelled_frame,
    read_visibility,
    require,
)
from lsd.data.images import read_rgb
from lsd.data.sample import LabelledSample
from lsd.data.transforms import to_model_range

CLEVR_PROPERTIES: dict[str, PropertyKind] = {
    "color": "discrete",
    "material": "discrete",
    "shape": "discrete",
    "size": "discrete",
    "x": "continuous",
    "y": "continuous",
    "z": "continuous",
    "pixel_coords": "continuous",
    "rotation": "continuous",
}
CLEVR_IMAGE_SIZE = (320, 240)  # width, height
#: The usual crop: rows 29..221, cols 64..256, as a PIL box (left, top, right, bottom).
CLEVR_CROP_BOX = (64, 29, 256, 221)
CLEVR_MASK_RESOLUTION = 128
CLEVR_MAX_OBJECTS = 10


class ClevrWithMasksDataset(Dataset):
    """CLEVR-with-masks converted to the MOVi file naming::

        <folder>/images/.../<stem>_image.png        RGB 320 x 240
        <folder>/labels/.../<stem>_segment.png      L, value = entity id (0 = background)
        <folder>/labels/.../<stem>_instances.json   11-long arrays, index 0 = background

    ``root`` is ``<folder>`` (or its ``images/``), or, with ``split``, a parent holding
    ``<name>-<split>-with-label`` or ``<name>/<name>-<split>-with-label``.

    The 11-long arrays keep the source's entity order, so GT id ``j`` is array index ``j`` (no
    shift); discrete codes (``color``, ``material``, ``shape``, ``size``) are the source's raw
    codes (1-based; 0 only for background and padding). Ids of the source's padding entities
    keep the source's values (codes 0) and are never visible.

    Items:
        ``pixel_values``: float32 ``(3, R, R)`` in [-1, 1]: the usual crop (rows 29..221, cols
        64..256, 192 x 192) resized to ``resolution`` (PIL bilinear, antialiased).
        ``masks``: int64 ``(128, 128)``: the same crop resized with NEAREST to 128.
        ``visible``: bool ``(K + 1,)``: id ``j`` is visible when its JSON ``visibility`` is
        non-zero AND it keeps at least one pixel in ``masks`` (an object cropped away cannot be
        scored); ``visible[0]``: any background pixel.
        ``labels``: :data:`CLEVR_PROPERTIES`; discrete int64 ``(K,)`` (pad -1); continuous float32
        ``(K, D)`` (pad 0): ``x``, ``y``, ``z``, ``rotation`` D = 1; ``pixel_coords`` D = 2,
        ``((x_px - 160) / 160, (y_px - 120) / 120)`` in FULL-image pixels (depth dropped), as
        the release normalises them.
        ``index``: the item's position.

    ``max_objects_in_scene`` keeps only scenes with at most that many objects (non-zero
    foreground visibility), e.g. 6 for CLEVR6; it reads every JSON once here.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        resolution: int = 128,
        max_num_objects: int = CLEVR_MAX_OBJECTS,
        max_objects_in_scene: int | None = None,
        name: str = "clevr_with_masks",
    ) -> None:
        self.folder = find_labelled_folder(Path(root), name, split)
        self.resolution = resolution
        self.max_num_objects = max_num_objects
        self.property_kinds: dict[str, PropertyKind] = dict(CLEVR_PROPERTIES)
        frames = list_frames(self.folder)
        if max_objects_in_scene is not None:
            frames = [f for f in frames if self._num_objects(f) <= max_objects_in_scene]
            if not frames:
                raise FileNotFoundError(f"no scene in {self.folder} has at most {max_objects_in_scene} objects")
        self.frames = frames

    def _num_objects(self, image_path: Path) -> int:
        visibility = read_visibility(frame_label_paths(image_path, self.folder)[1])
        return int((visibility[1:] > 0).sum())

    def __len__(self) -> int:
        return len(self.frames)

    def image_paths(self) -> list[Path]:
        """The image file each index reads (what a cache of this split is keyed by)."""
        return list(self.frames)

    def _crop(self, image: Image.Image, image_path: Path) -> Image.Image:
        if image.size != CLEVR_IMAGE_SIZE:
            raise ValueError(f"image {image_path} is {image.width}x{image.height}; CLEVR images are 320x240")
        return image.crop(CLEVR_CROP_BOX).resize((self.resolution, self.resolution), resample=Image.BILINEAR)

    def pixel_values(self, index: int) -> torch.Tensor:
        """Item ``index``'s ``pixel_values`` alone (``(3, R, R)`` in [-1, 1], equal to
        ``self[index]["pixel_values"]``), without reading its labels: what training reads."""
        return to_model_range(self._crop(read_rgb(self.frames[index]), self.frames[index]))

    def __getitem__(self, index: int) -> LabelledSample:
        image_path = self.frames[index]
        image, segment, record, visibility, segment_path, json_path = read_labelled_frame(image_path, self.folder)
        cropped = self._crop(image, image_path)
        count = len(visibility) - 1  # entity 0 is the background
        check_count(count, self.max_num_objects, json_path)
        check_ids(segment, count, segment_path, json_path)

        masks = crop_and_resize_mask(segment, CLEVR_CROP_BOX, CLEVR_MASK_RESOLUTION)
        rows = {
            key: per_object(require(record, key, json_path), count + 1, key, json_path)[1:] for key in CLEVR_PROPERTIES
        }
        width, height = CLEVR_IMAGE_SIZE
        rows["pixel_coords"] = (rows["pixel_coords"][:, :2] - [width / 2, height / 2]) / [width / 2, height / 2]
        visible = (visibility[1:] > 0) & present_ids(masks, count)
        return labelled_sample(
            cropped, masks, visible, rows, self.property_kinds, self.max_num_objects, json_path, index
        )
