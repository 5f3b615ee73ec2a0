"""CLEVRTex (Karazija et al. 2021) with the official crop or the LSD release's crop."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from lsd.data._common import (
    PropertyKind,
    check_same_size,
    crop_and_resize_mask,
    labelled_sample,
    present_ids,
    read_index_png,
    read_json,
    require,
)
from lsd.data.images import read_rgb
from lsd.data.sample import LabelledSample
from lsd.data.transforms import resize_and_crop, to_model_range

CLEVRTEX_PROPERTIES: dict[str, PropertyKind] = {
    "color": "discrete",
    "material": "discrete",
    "shape": "discrete",
    "size": "discrete",
    "pixel_coords": "continuous",
    "rotation": "continuous",
}

#: Class names per discrete property; a label is its name's position (alphabetical, as the release).
CLEVRTEX_CLASSES: dict[str, tuple[str, ...]] = {
    "shape": ("cube", "cylinder", "monkey", "sphere"),
    "size": ("large", "medium", "small"),
    "color": ("blue", "brown", "cyan", "gray", "green", "purple", "red", "yellow"),
    "material": (
        "poliigonbricks01",
        "poliigonbricksflemishred001",
        "poliigonbrickspaintedwhite001",
        "poliigoncarpettwistnatural001",
        "poliigonchainmailcopperroundedthin001",
        "poliigoncitystreetasphaltgenericcracked002",
        "poliigoncitystreetroadasphalttwolaneworn001",
        "poliigoncliffjagged004",
        "poliigoncobblestonearches002",
        "poliigonconcretewall001",
        "poliigonfabricdenim003",
        "poliigonfabricfleece001",
        "poliigonfabricleatherbuffalorustic001",
        "poliigonfabricrope001",
        "poliigonfabricupholsterybrightanglepattern001",
        "poliigongroundclay002",
        "poliigongrounddirtforest014",
        "poliigongrounddirtrocky002",
        "poliigongroundforest003",
        "poliigongroundforest008",
        "poliigongroundforestmulch001",
        "poliigongroundforestroots001",
        "poliigongroundmoss001",
        "poliigongroundsnowpitted003",
        "poliigongroundtiretracks001",
        "poliigoninteriordesignrugstarrynight001",
        "poliigonmarble062",
        "poliigonmarble13",
        "poliigonmetalcorrodedheavy001",
        "poliigonmetalcorrugatedironsheet002",
        "poliigonmetaldesignerweavesteel002",
        "poliigonmetalpanelrectangular001",
        "poliigonmetalspottydiscoloration001",
        "poliigonmetalstainlesssteelbrushed",
        "poliigonplaster07",
        "poliigonplaster17",
        "poliigonroadcityworn001",
        "poliigonrooftilesterracotta004",
        "poliigonrustmixedonpaint012",
        "poliigonrustplain007",
        "poliigonsolarpanelspolycrystallinetypebframedclean001",
        "poliigonstonebricksbeige015",
        "poliigonstonemarblecalacatta004",
        "poliigonterrazzovenetianmattewhite001",
        "poliigontiles05",
        "poliigontilesmarblechevroncreamgrey001",
        "poliigontilesmarblesagegreenbrickbondhoned001",
        "poliigontilesonyxopaloblack001",
        "poliigontilesrectangularmirrorgray001",
        "poliigonwallmedieval003",
        "poliigonwaterdropletsmixedbubbled001",
        "poliigonwoodfinedark004",
        "poliigonwoodflooring044",
        "poliigonwoodflooring061",
        "poliigonwoodflooringmahoganyafricansanded001",
        "poliigonwoodflooringmerbaubrickbondnatural001",
        "poliigonwoodplanks028",
        "poliigonwoodplanksworn33",
        "poliigonwoodquarteredchiffon001",
        "whitemarble",
    ),
}

#: Official splits as fractions of the index range: [start, stop).
CLEVRTEX_SPLITS = {"test": (0.0, 0.1), "val": (0.1, 0.2), "validation": (0.1, 0.2), "train": (0.2, 1.0)}
CLEVRTEX_MAX_OBJECTS = 10
CLEVRTEX_OFFICIAL_CROP_FRACTION = 0.8  # of the shorter side: 192 for 320 x 240
CLEVRTEX_OFFICIAL_MASK_RESOLUTION = 128

CropName = Literal["official", "lsd"]


def _centre_box(width: int, height: int, side: int) -> tuple[int, int, int, int]:
    """The official code's centre box (floor division), as (left, top, right, bottom)."""
    return ((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2)


class ClevrTexDataset(Dataset):
    """CLEVRTex scenes ``clevrtex_<variant>/<idx // 1000>/CLEVRTEX_<variant>_<idx:06d>{.png,_flat.png,.json}``.

    ``root`` is the ``clevrtex_<variant>`` folder or its parent. Images (any depth) are ordered
    by index; ``split`` takes the official fraction of that order (test [0, 0.1), val [0.1, 0.2),
    train [0.2, 1)); ``split=None`` keeps all.

    ``crop`` names the protocol (report it with every number):
        ``"official"`` (CLEVRTex benchmark): the centre ``int(0.8 * min side)`` square (192 x 192
        for 320 x 240, box (64, 24, 256, 216)) of image and mask; the image is resized to
        ``resolution`` (PIL bilinear), the mask to 128 x 128 (NEAREST).
        ``"lsd"`` (the LSD release): the image is resized on its shortest side to ``resolution``
        (PIL bilinear) and centre-cropped (torchvision ``Resize`` + ``CenterCrop``); the mask is
        the centre ``min side`` square (240 x 240, box (40, 0, 280, 240)), not resized.

    Items:
        ``pixel_values``: float32 ``(3, R, R)`` in [-1, 1] (alpha dropped).
        ``masks``: int64 ``(128, 128)`` or ``(240, 240)``: the raw indices of ``_flat.png`` (a
        palette PNG: the indices are read, never the palette colours); 0 = background, id =
        the object's ``index`` in the JSON.
        ``visible``: bool ``(K + 1,)``: id ``j`` is visible when an object has ``index == j`` and
        keeps at least one pixel in ``masks`` (the release's rule on the cropped mask).
        ``labels``: :data:`CLEVRTEX_PROPERTIES`, row ``j - 1`` <-> the object with ``index == j``:
        discrete int64 ``(K,)`` (pad -1) = position in :data:`CLEVRTEX_CLASSES`; ``rotation``
        float32 ``(K, 1)`` (degrees, as stored); ``pixel_coords`` float32 ``(K, 2)`` =
        ``((x - W // 2) / (W // 2), (y - H // 2) / (H // 2))`` in FULL-image pixels, depth
        dropped (the release's normalisation).
        ``index``: the item's position in this split.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "test",
        crop: CropName = "official",
        resolution: int = 128,
        variant: str = "full",
        max_num_objects: int = CLEVRTEX_MAX_OBJECTS,
    ) -> None:
        if crop not in ("official", "lsd"):
            raise ValueError(f"crop must be 'official' or 'lsd', got {crop!r}")
        if split is not None and split not in CLEVRTEX_SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(CLEVRTEX_SPLITS)} or None")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"data folder {root} does not exist")
        subfolder = root / f"clevrtex_{variant.lower()}"
        self.folder = subfolder if subfolder.is_dir() else root
        self.crop = crop
        self.resolution = resolution
        self.variant = variant
        self.max_num_objects = max_num_objects
        self.property_kinds: dict[str, PropertyKind] = dict(CLEVRTEX_PROPERTIES)
        images = self._index()
        if split is not None:
            start, stop = CLEVRTEX_SPLITS[split]
            images = images[int(start * len(images)) : int(stop * len(images))]
        if not images:
            raise FileNotFoundError(f"split {split!r} of {self.folder} is empty")
        self.images = images

    def _index(self) -> list[Path]:
        prefix = f"CLEVRTEX_{self.variant}_"
        pattern = re.compile(re.escape(prefix) + r"(\d{6})\.png")
        by_index: dict[int, Path] = {}
        for path in self.folder.glob(f"**/{prefix}??????.png"):
            match = pattern.fullmatch(path.name)
            if match is None:
                continue
            idx = int(match.group(1))
            if idx in by_index:
                raise ValueError(f"scene {idx} appears twice: {by_index[idx]} and {path}")
            by_index[idx] = path
        if not by_index:
            raise FileNotFoundError(f"no {prefix}<6 digits>.png files under {self.folder}")
        return [by_index[idx] for idx in sorted(by_index)]

    def __len__(self) -> int:
        return len(self.images)

    def _labels(
        self, record: dict, json_path: Path, width: int, height: int
    ) -> tuple[dict[str, np.ndarray], list[int]]:
        """Label rows ``(K, D)`` by GT id (undescribed ids: -1 / 0, as padding) and the ids described."""
        rows = {name: np.full((self.max_num_objects, 1), -1.0) for name in CLEVRTEX_CLASSES}
        rows["rotation"] = np.zeros((self.max_num_objects, 1))
        rows["pixel_coords"] = np.zeros((self.max_num_objects, 2))
        ids: list[int] = []
        for obj in require(record, "objects", json_path):
            obj_id = int(require(obj, "index", json_path))
            if not 1 <= obj_id <= self.max_num_objects or obj_id in ids:
                raise ValueError(f"{json_path}: object index {obj_id} is repeated or outside 1..{self.max_num_objects}")
            ids.append(obj_id)
            row = obj_id - 1
            for name, classes in CLEVRTEX_CLASSES.items():
                value = require(obj, name, json_path)
                if value not in classes:
                    raise ValueError(f"{json_path}: unknown {name} {value!r} for object {obj_id}")
                rows[name][row, 0] = classes.index(value)
            rows["rotation"][row, 0] = float(require(obj, "rotation", json_path))
            x, y = require(obj, "pixel_coords", json_path)[:2]
            rows["pixel_coords"][row] = ((x - width // 2) / (width // 2), (y - height // 2) / (height // 2))
        return rows, ids

    def image_paths(self) -> list[Path]:
        """The image file each index reads (what a cache of this split is keyed by)."""
        return list(self.images)

    def _crop(self, image: Image.Image) -> Image.Image:
        """The image side of the crop protocol (``official``: the centre square, then bilinear)."""
        if self.crop == "official":
            box = _centre_box(image.width, image.height, int(CLEVRTEX_OFFICIAL_CROP_FRACTION * min(image.size)))
            return image.crop(box).resize((self.resolution, self.resolution), resample=Image.BILINEAR)
        return resize_and_crop(image, self.resolution)

    def pixel_values(self, index: int) -> torch.Tensor:
        """Item ``index``'s ``pixel_values`` alone (``(3, R, R)`` in [-1, 1], equal to
        ``self[index]["pixel_values"]``), without reading its labels: what training reads."""
        return to_model_range(self._crop(read_rgb(self.images[index])))

    def __getitem__(self, index: int) -> LabelledSample:
        image_path = self.images[index]
        flat_path = image_path.with_name(image_path.stem + "_flat.png")
        json_path = image_path.with_suffix(".json")
        image = read_rgb(image_path)
        flat = read_index_png(flat_path, ("P", "L"))
        check_same_size(image, image_path, flat, flat_path)
        rows, ids = self._labels(read_json(json_path), json_path, image.width, image.height)
        stray = sorted(set(np.unique(flat).tolist()) - {0, *ids})
        if stray:
            raise ValueError(f"mask {flat_path} uses ids {stray} that {json_path} does not describe")

        pixels = self._crop(image)
        if self.crop == "official":
            box = _centre_box(image.width, image.height, int(CLEVRTEX_OFFICIAL_CROP_FRACTION * min(image.size)))
            masks = crop_and_resize_mask(flat, box, CLEVRTEX_OFFICIAL_MASK_RESOLUTION)
        else:
            masks = crop_and_resize_mask(flat, _centre_box(image.width, image.height, min(image.size)), None)
        described = np.zeros(self.max_num_objects, dtype=bool)
        described[[i - 1 for i in ids]] = True
        visible = described & present_ids(masks, self.max_num_objects)
        return labelled_sample(
            pixels, masks, visible, rows, self.property_kinds, self.max_num_objects, json_path, index
        )
