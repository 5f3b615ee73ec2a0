"""COCO 2017 instances for DINOSAUR-style object-discovery evaluation (read with pycocotools)."""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools.coco import COCO
from torch.utils.data import Dataset

from lsd.data._common import PropertyKind, pad_labels, present_ids, read_json, visible_vector
from lsd.data.images import read_rgb
from lsd.data.sample import LabelledSample
from lsd.data.transforms import resize_and_crop, to_model_range

COCO_PROPERTIES: dict[str, PropertyKind] = {"category": "discrete"}
COCO_MASK_RESOLUTION = 320
#: The label whose values make the class masks of mBO^c / mIoU^c (docs/metrics.md, "Class masks").
COCO_CLASS_LABEL = "category"


class CocoDataset(Dataset):
    """COCO 2017 images with their non-crowd instance masks.

    Layout: ``<root>/<split>2017/<file_name>`` and ``<root>/annotations/instances_<split>2017.json``
    (``split`` ``val``/``validation`` or ``train``). Items follow the image ids in ascending
    order; every image is kept, also one without instances. Crowd annotations (``iscrowd=1``) are
    dropped: their pixels are background unless a non-crowd instance covers them.

    Items:
        ``pixel_values``: float32 ``(3, R, R)`` in [-1, 1], shortest side resized to
        ``resolution`` (PIL bilinear, antialiased), then the centre square.
        ``masks``: int64 ``(M, M)``, ``M = mask_resolution`` (320): instance ids, 0 = background,
        id ``j`` = the ``j``-th non-crowd annotation of the image in annotation-file order. The
        full-resolution id map is resized with NEAREST so its shortest side is ``M``, then its
        centre ``M x M`` is cut (top-left ``round((h - M) / 2), round((w - M) / 2)``). Where
        instances overlap, the later one's id is stored.
        ``ignore``: bool ``(M, M)``: pixels covered by more than one instance (after the same
        resize and crop); FG-ARI, and DINOSAUR's mBO, leave them out.
        ``visible``: bool ``(K + 1,)``: id ``j`` keeps at least one pixel in ``masks``.
        ``labels``: ``{"category": int64 (K,)}``: COCO ``category_id`` (1..90), padded with -1.
        ``index``: the item's position.

    ``class_label`` (``"category"``): the evaluation also scores class masks, every instance of a
    category merged (:func:`lsd.metrics.class_label_maps`; mBO^c, mIoU^c).

    ``K = max_num_objects``: by default the largest number of non-crowd instances of any image
    of the split, so that items collate.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "val",
        resolution: int = 256,
        mask_resolution: int = COCO_MASK_RESOLUTION,
        max_num_objects: int | None = None,
    ) -> None:
        split = {"validation": "val"}.get(split, split)
        if split not in ("train", "val"):
            raise ValueError(f"unknown COCO split {split!r}; expected 'train' or 'val'")
        root = Path(root)
        self.image_folder = root / f"{split}2017"
        if not self.image_folder.is_dir():
            raise FileNotFoundError(f"COCO image folder {self.image_folder} does not exist")
        self.annotation_path = root / "annotations" / f"instances_{split}2017.json"
        dataset = read_json(self.annotation_path)
        if not isinstance(dataset, dict) or not {"images", "annotations"} <= dataset.keys():
            raise ValueError(f"{self.annotation_path} is not a COCO instances file (needs images and annotations)")
        self.coco = COCO()
        self.coco.dataset = dataset
        with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress
            self.coco.createIndex()
        self.image_ids = sorted(self.coco.getImgIds())
        if not self.image_ids:
            raise FileNotFoundError(f"{self.annotation_path} lists no images")
        self.annotation_ids = {i: self.coco.getAnnIds(imgIds=i, iscrowd=False) for i in self.image_ids}
        most = max(len(ids) for ids in self.annotation_ids.values())
        if max_num_objects is not None and max_num_objects < most:
            raise ValueError(f"an image of {self.annotation_path} has {most} instances > max_num_objects")
        self.max_num_objects = most if max_num_objects is None else max_num_objects
        self.resolution = resolution
        self.mask_resolution = mask_resolution
        self.property_kinds: dict[str, PropertyKind] = dict(COCO_PROPERTIES)
        self.class_label = COCO_CLASS_LABEL

    def __len__(self) -> int:
        return len(self.image_ids)

    def _instance_maps(self, info: dict, annotations: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """Full-resolution ``(ids int32, coverage uint8)`` maps of the non-crowd instances."""
        ids = np.zeros((info["height"], info["width"]), dtype=np.int32)
        coverage = np.zeros_like(ids)
        for number, annotation in enumerate(annotations, start=1):
            try:
                with warnings.catch_warnings():  # pycocotools' decode trips a numpy 2 DeprecationWarning
                    warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
                    mask = self.coco.annToMask(annotation).astype(bool)
            except Exception as err:  # pycocotools raises assorted types on a malformed segmentation
                raise ValueError(
                    f"{self.annotation_path}: annotation {annotation.get('id')} cannot be decoded"
                ) from err
            ids[mask] = number
            coverage += mask
        return ids, np.minimum(coverage, 255).astype(np.uint8)

    def image_paths(self) -> list[Path]:
        """The image file each index reads (what a cache of this split is keyed by)."""
        return [self.image_folder / self.coco.imgs[i]["file_name"] for i in self.image_ids]

    def _image(self, info: dict) -> Image.Image:
        image_path = self.image_folder / info["file_name"]
        image = read_rgb(image_path)
        if image.size != (info["width"], info["height"]):
            raise ValueError(
                f"image {image_path} is {image.width}x{image.height} but {self.annotation_path} says "
                f"{info['width']}x{info['height']}"
            )
        return image

    def pixel_values(self, index: int) -> torch.Tensor:
        """Item ``index``'s ``pixel_values`` alone (``(3, R, R)`` in [-1, 1], equal to
        ``self[index]["pixel_values"]``), without reading its labels: what training reads."""
        return to_model_range(resize_and_crop(self._image(self.coco.imgs[self.image_ids[index]]), self.resolution))

    def __getitem__(self, index: int) -> LabelledSample:
        info = self.coco.imgs[self.image_ids[index]]
        image = self._image(info)
        annotations = self.coco.loadAnns(self.annotation_ids[info["id"]])
        ids, coverage = self._instance_maps(info, annotations)
        size = self.mask_resolution
        masks = np.asarray(resize_and_crop(Image.fromarray(ids), size, resample=Image.NEAREST)).astype(np.int64)
        ignore = np.asarray(resize_and_crop(Image.fromarray(coverage), size, resample=Image.NEAREST)) > 1
        categories = np.array([[a["category_id"]] for a in annotations], dtype=np.float64).reshape(-1, 1)
        return LabelledSample(
            pixel_values=to_model_range(resize_and_crop(image, self.resolution)),
            masks=torch.from_numpy(masks),
            ignore=torch.from_numpy(ignore),
            visible=visible_vector(present_ids(masks, len(annotations)), self.max_num_objects, masks),
            labels=pad_labels(
                {"category": categories}, self.property_kinds, self.max_num_objects, self.annotation_path
            ),
            index=index,
        )
