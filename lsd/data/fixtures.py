"""Small datasets written in each real on-disk format, for testing the readers.

Each writer returns the items it wrote, in the order the matching reader yields them, with the
truth a test compares against: the written pixels, the full-resolution GT ids, the written
per-object values and which objects must come out visible. Scenes are built from axis-aligned
rectangles at fixed places (random values elsewhere, from ``seed``), so that crops move known
pixels to known places and an object can be put outside a crop on purpose.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from lsd.data.clevrtex import CLEVRTEX_CLASSES

Rect = tuple[int, int, int, int]  # rows [r0, r1), cols [c0, c1)


@dataclass
class FixtureItem:
    """One written item.

    ``image``: ``(H, W, 3)`` uint8 as written (RGB; an alpha channel, when written, dropped).
    ``ids``: ``(H, W)`` int64 full-resolution GT ids (0 = background), or None (FFHQ).
    ``objects``: ``objects[j]`` holds the values written for GT id ``j + 1``.
    ``visible``: truth for GT ids ``1..len(objects)`` under the reader's default protocol.
    ``extra``: format-specific truth (documented by each writer).
    """

    image_path: Path
    image: np.ndarray
    ids: np.ndarray | None = None
    objects: list[dict[str, Any]] = field(default_factory=list)
    visible: list[bool] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def _paint(shape: tuple[int, int], rects: list[Rect | None]) -> np.ndarray:
    """Id map with ``rects[j]`` painted as id ``j + 1`` in order (later ids on top; None = not drawn)."""
    ids = np.zeros(shape, dtype=np.int64)
    for number, rect in enumerate(rects, start=1):
        if rect is not None:
            r0, r1, c0, c1 = rect
            ids[r0:r1, c0:c1] = number
    return ids


def _save_png(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _write_json(value: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def _quadrant_image(height: int, width: int, box: Rect, colours: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """``outside`` everywhere except ``box``, which is split into 2 x 2 quadrants of ``colours[0..3]``."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = outside
    r0, r1, c0, c1 = box
    rm, cm = (r0 + r1) // 2, (c0 + c1) // 2
    quadrants = [(r0, rm, c0, cm), (r0, rm, cm, c1), (rm, r1, c0, cm), (rm, r1, cm, c1)]
    for colour, (top, bottom, left, right) in zip(colours, quadrants, strict=True):
        image[top:bottom, left:right] = colour
    return image


# ----------------------------------------------------------------------------------------------
# MOVi (the LSD release's dump layout)
# ----------------------------------------------------------------------------------------------


def write_movi(
    root: str | os.PathLike,
    name: str = "movi-e",
    split: str = "validation",
    num_videos: int = 2,
    num_frames: int = 2,
    size: int = 32,
    num_objects: int = 4,
    seed: int = 0,
) -> list[FixtureItem]:
    """Write ``<root>/<name>/<name>-<split>-with-label/{images,labels}/<video:08d>/<frame:08d>_*``.

    Per frame: a random RGB image, an ``L`` segment of random rectangles (id ``i`` <->
    ``instances[i - 1]``), and ``instances.json`` with MOVi's keys sliced to the frame
    (``image_positions`` (k, 2), ``bboxes_3d`` (k, 8, 3), ``visibility`` (k,) pixel counts,
    ...) plus whole-video ones (``scale``, ``category``, ``asset_id`` strings, ragged ``bboxes``).
    In frame 0 of every video object 2 is not drawn (``visibility == 0``); ``visible`` is
    ``visibility > 0``.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / name / f"{name}-{split}-with-label"
    items = []
    for video in range(num_videos):
        category = rng.integers(0, 17, num_objects)
        scale = rng.uniform(0.5, 2.0, num_objects)
        asset_id = [f"asset_{int(c)}_{j}" for j, c in enumerate(category)]
        bboxes = [rng.uniform(0, 1, (int(rng.integers(1, 4)), 4)).tolist() for _ in range(num_objects)]
        for frame in range(num_frames):
            rects: list[Rect | None] = []
            for j in range(num_objects):
                height, width = (int(v) for v in rng.integers(2, max(size // 2, 3), 2))
                r0, c0 = int(rng.integers(0, size - height + 1)), int(rng.integers(0, size - width + 1))
                rects.append(None if (frame == 0 and j == 1) else (r0, r0 + height, c0, c0 + width))
            ids = _paint((size, size), rects)
            visibility = np.bincount(ids.ravel(), minlength=num_objects + 1)[1:]
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            instances = {
                "category": category.tolist(),
                "scale": scale.tolist(),
                "asset_id": asset_id,
                "bboxes": bboxes,
                "bbox_frames": [list(range(len(b))) for b in bboxes],
                "mass": rng.uniform(0, 5, num_objects).tolist(),
                "is_dynamic": [bool(j % 2) for j in range(num_objects)],
                "image_positions": rng.uniform(0, 1, (num_objects, 2)).tolist(),
                "bboxes_3d": rng.normal(size=(num_objects, 8, 3)).tolist(),
                "positions": rng.normal(size=(num_objects, 3)).tolist(),
                "quaternions": rng.normal(size=(num_objects, 4)).tolist(),
                "velocities": rng.normal(size=(num_objects, 3)).tolist(),
                "visibility": visibility.tolist(),
            }
            image_path = base / "images" / f"{video:08d}" / f"{frame:08d}_image.png"
            labels = base / "labels" / f"{video:08d}"
            _save_png(image, image_path)
            _save_png(ids.astype(np.uint8), labels / f"{frame:08d}_segment.png")
            _write_json(instances, labels / f"{frame:08d}_instances.json")
            objects = [{key: value[j] for key, value in instances.items()} for j in range(num_objects)]
            items.append(FixtureItem(image_path, image, ids, objects, [bool(v > 0) for v in visibility]))
    return items


# ----------------------------------------------------------------------------------------------
# CLEVR with masks (converted layout)
# ----------------------------------------------------------------------------------------------

#: Object rectangles (rows, cols) of the CLEVR fixture on the 240 x 320 image. Id 3 lies above
#: the usual crop (rows 29..221); id 4 has JSON visibility 0 and is not drawn.
CLEVR_FIXTURE_RECTS: list[Rect | None] = [(40, 120, 80, 160), (100, 200, 150, 240), (2, 20, 10, 50), None]


def write_clevr(
    root: str | os.PathLike, name: str = "clevr_with_masks", split: str = "train", num_images: int = 3, seed: int = 0
) -> list[FixtureItem]:
    """Write ``<root>/<name>/<name>-<split>-with-label/{images,labels}/<i:08d>_*`` (flat, 320 x 240).

    Images: one colour outside the usual crop (rows 29..221, cols 64..256), four colour
    quadrants inside it (``extra["colours"]`` (4, 3), ``extra["outside"]`` (3,)). Segments: entity
    ids per :data:`CLEVR_FIXTURE_RECTS`. JSON: the source's 11-long arrays (index 0 background,
    entities 5..10 padding with visibility 0). ``objects[j]`` holds entity ``j + 1``'s values;
    ``visible`` is True for ids 1 and 2 only (3 is cropped away, 4 has visibility 0).
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / name / f"{name}-{split}-with-label"
    entities, drawn = 11, len(CLEVR_FIXTURE_RECTS)
    items = []
    for i in range(num_images):
        colours = rng.integers(0, 256, (4, 3), dtype=np.uint8)
        outside = rng.integers(0, 256, 3, dtype=np.uint8)
        image = _quadrant_image(240, 320, (29, 221, 64, 256), colours, outside)
        ids = _paint((240, 320), CLEVR_FIXTURE_RECTS)
        used = np.arange(entities) >= 1
        used[drawn + 1 :] = False
        record = {
            "visibility": [1.0] + [1.0, 1.0, 1.0, 0.0] + [0.0] * (entities - drawn - 1),
            "x": np.where(used, rng.uniform(-3, 3, entities), 0).tolist(),
            "y": np.where(used, rng.uniform(-3, 3, entities), 0).tolist(),
            "z": np.where(used, rng.uniform(0, 1, entities), 0).tolist(),
            "rotation": np.where(used, rng.uniform(0, 360, entities), 0).tolist(),
            "pixel_coords": np.where(used[:, None], rng.uniform(0, 240, (entities, 3)), 0).tolist(),
            "color": np.where(used, rng.integers(1, 9, entities), 0).tolist(),
            "material": np.where(used, rng.integers(1, 3, entities), 0).tolist(),
            "shape": np.where(used, rng.integers(1, 4, entities), 0).tolist(),
            "size": np.where(used, rng.integers(1, 3, entities), 0).tolist(),
        }
        image_path = base / "images" / f"{i:08d}_image.png"
        _save_png(image, image_path)
        _save_png(ids.astype(np.uint8), base / "labels" / f"{i:08d}_segment.png")
        _write_json(record, base / "labels" / f"{i:08d}_instances.json")
        objects = [{key: value[j] for key, value in record.items()} for j in range(1, entities)]
        visible = [True, True, False, False] + [False] * (entities - drawn - 1)
        items.append(FixtureItem(image_path, image, ids, objects, visible, {"colours": colours, "outside": outside}))
    return items


# ----------------------------------------------------------------------------------------------
# CLEVRTex
# ----------------------------------------------------------------------------------------------

#: Object rectangles (rows, cols) of the CLEVRTex fixture, by object index 1..4. Index 3 lies
#: inside the LSD crop (cols 40..280) but left of the official one (cols 64..256); index 4 lies
#: outside both.
CLEVRTEX_FIXTURE_RECTS: list[Rect] = [(40, 100, 80, 150), (120, 200, 130, 240), (100, 140, 44, 60), (100, 140, 0, 30)]
CLEVRTEX_OFFICIAL_BOX: Rect = (24, 216, 64, 256)  # rows, cols


def clevrtex_palette() -> list[int]:
    """A 256-entry palette whose colour for index ``i`` never equals ``(i, i, i)``."""
    return [int(v) for i in range(256) for v in ((i + 101) % 256, (7 * i + 50) % 256, 255 - i)]


def write_clevrtex(
    root: str | os.PathLike, num_images: int = 10, variant: str = "full", seed: int = 0
) -> list[FixtureItem]:
    """Write ``<root>/clevrtex_<variant>/<idx // 1000>/CLEVRTEX_<variant>_<idx:06d>{.png,_flat.png,.json}``.

    Images are 320 x 240 (RGBA for even ``idx``, RGB for odd): one colour outside the official
    crop box (rows 24..216, cols 64..256), four quadrant colours inside it (``extra["colours"]``,
    ``extra["outside"]``). ``_flat.png`` is a palette PNG (:func:`clevrtex_palette`) whose raw
    indices are the object indices of :data:`CLEVRTEX_FIXTURE_RECTS`. The JSON lists the objects
    in the order 3, 1, 4, 2 (the reader must align them by ``index``). ``visible`` is the
    official crop's truth (ids 1, 2); ``extra["visible_lsd"]`` the LSD crop's (ids 1, 2, 3).
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / f"clevrtex_{variant}"
    items = []
    for idx in range(num_images):
        colours = rng.integers(0, 256, (4, 3), dtype=np.uint8)
        outside = rng.integers(0, 256, 3, dtype=np.uint8)
        image = _quadrant_image(240, 320, CLEVRTEX_OFFICIAL_BOX, colours, outside)
        ids = _paint((240, 320), list(CLEVRTEX_FIXTURE_RECTS))
        objects = []
        for number in range(1, len(CLEVRTEX_FIXTURE_RECTS) + 1):
            objects.append(
                {
                    "index": number,
                    **{name: str(rng.choice(classes)) for name, classes in CLEVRTEX_CLASSES.items()},
                    "rotation": float(rng.uniform(0, 360)),
                    "3d_coords": rng.uniform(-3, 3, 3).tolist(),
                    "pixel_coords": [float(rng.uniform(0, 320)), float(rng.uniform(0, 240)), float(rng.uniform(5, 15))],
                }
            )
        stem = folder / str(idx // 1000) / f"CLEVRTEX_{variant}_{idx:06d}"
        image_path = stem.with_name(stem.name + ".png")
        written = np.concatenate([image, np.full((240, 320, 1), 255, np.uint8)], axis=2) if idx % 2 == 0 else image
        _save_png(written, image_path)
        flat = Image.fromarray(ids.astype(np.uint8), mode="P")
        flat.putpalette(clevrtex_palette())
        flat.save(stem.with_name(stem.name + "_flat.png"))
        record = {
            "image_index": idx,
            "num_objects": len(objects),
            "ground_material": "poliigonwoodplanks028",
            "objects": [objects[k] for k in (2, 0, 3, 1)],
        }
        _write_json(record, stem.with_name(stem.name + ".json"))
        extra = {"colours": colours, "outside": outside, "visible_lsd": [True, True, True, False]}
        items.append(FixtureItem(image_path, image, ids, objects, [True, True, False, False], extra))
    return items


# ----------------------------------------------------------------------------------------------
# FFHQ
# ----------------------------------------------------------------------------------------------


def write_ffhq(
    root: str | os.PathLike,
    indices: tuple[int, ...] = (0, 1, 2, 1000, 1001),
    width: int = 48,
    height: int = 40,
    folder: str = "images1024x1024",
    seed: int = 0,
) -> list[FixtureItem]:
    """Write ``<root>/<folder>/<idx // 1000 * 1000:05d>/<idx:05d>.png`` random RGB images."""
    rng = np.random.default_rng(seed)
    items = []
    for idx in sorted(indices):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        path = Path(root) / folder / f"{idx // 1000 * 1000:05d}" / f"{idx:05d}.png"
        _save_png(image, path)
        items.append(FixtureItem(path, image))
    return items


# ----------------------------------------------------------------------------------------------
# COCO 2017
# ----------------------------------------------------------------------------------------------


def _rect_mask(height: int, width: int, rect: Rect) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.uint8)
    r0, r1, c0, c1 = rect
    mask[r0:r1, c0:c1] = 1
    return mask


def _polygon(rect: Rect) -> list[float]:
    """An integer-cornered rectangle as a COCO polygon; pycocotools fills exactly rows [r0, r1), cols [c0, c1)."""
    r0, r1, c0, c1 = rect
    return [float(v) for v in (c0, r0, c1, r0, c1, r1, c0, r1)]


def _compressed_rle(mask: np.ndarray) -> dict[str, Any]:
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _uncompressed_rle(mask: np.ndarray) -> dict[str, Any]:
    """Column-major run lengths, starting with a run of zeros (COCO's crowd format)."""
    flat = mask.flatten(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    if flat[0] == 1:
        runs = [0, *runs]
    return {"size": list(mask.shape), "counts": runs}


def write_coco(
    root: str | os.PathLike, split: str = "val", seed: int = 0, shared_category: bool = False
) -> list[FixtureItem]:
    """Write ``<root>/<split>2017/*.jpg`` and ``<root>/annotations/instances_<split>2017.json``.

    Three images (one flat colour each, ``extra["colour"]``), listed in ascending image id:

    - id 3 (40 x 56, portrait): a polygon (category 18) and a polygon in rows 0..6 that the
      320 centre crop removes (invisible).
    - id 7 (64 x 48, landscape): a polygon (1), a compressed-RLE mask (18) overlapping it, a
      crowd annotation as uncompressed RLE (dropped), and a two-part polygon (90).
    - id 12 (32 x 32): only a crowd annotation, so no instances.

    ``shared_category``: the two-part polygon of image 7 gets category 1, as the first polygon
    has, so two instances share a class: class masks (mBO^c) then differ from instance masks.

    Annotations are interleaved across images in the file. ``ids`` is the full-resolution id map
    (later instances on top), ``extra["overlap"]`` the pixels covered by more than one
    non-crowd instance; ``objects[j]`` = ``{"id", "category_id"}``.
    """
    rng = np.random.default_rng(seed)
    root = Path(root)
    # image id -> (width, height, [(ann id, category, kind, rects)])
    layout: dict[int, tuple[int, int, list[tuple[int, int, str, list[Rect]]]]] = {
        3: (40, 56, [(31, 18, "polygon", [(20, 50, 5, 35)]), (32, 1, "polygon", [(0, 6, 0, 40)])]),
        7: (
            64,
            48,
            [
                (71, 1, "polygon", [(5, 30, 10, 40)]),
                (72, 18, "rle", [(20, 45, 30, 55)]),
                (73, 1, "crowd", [(40, 48, 0, 64)]),
                (74, 1 if shared_category else 90, "polygon", [(2, 8, 45, 50), (35, 45, 12, 20)]),
            ],
        ),
        12: (32, 32, [(121, 1, "crowd", [(0, 10, 0, 10)])]),
    }
    visible_truth = {3: [True, False], 7: [True, True, True], 12: []}
    images, annotations, items = [], [], []
    for image_id, (width, height, anns) in layout.items():
        file_name = f"{image_id:012d}.jpg"
        colour = rng.integers(30, 226, 3, dtype=np.uint8)
        image = np.broadcast_to(colour, (height, width, 3)).copy()
        image_path = root / f"{split}2017" / file_name
        image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(image_path, quality=95)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        ids = np.zeros((height, width), dtype=np.int64)
        coverage = np.zeros((height, width), dtype=np.int64)
        objects = []
        for ann_id, category, kind, rects in anns:
            mask = np.zeros((height, width), dtype=np.uint8)
            for rect in rects:
                mask |= _rect_mask(height, width, rect)
            if kind == "polygon":
                segmentation: Any = [_polygon(rect) for rect in rects]
            elif kind == "rle":
                segmentation = _compressed_rle(mask)
            else:
                segmentation = _uncompressed_rle(mask)
            r, c = np.nonzero(mask)
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": category,
                    "segmentation": segmentation,
                    "area": float(mask.sum()),
                    "bbox": [
                        float(c.min()),
                        float(r.min()),
                        float(c.max() - c.min() + 1),
                        float(r.max() - r.min() + 1),
                    ],
                    "iscrowd": int(kind == "crowd"),
                }
            )
            if kind != "crowd":
                objects.append({"id": ann_id, "category_id": category})
                ids[mask.astype(bool)] = len(objects)
                coverage += mask
        extra = {"overlap": coverage > 1, "colour": colour}
        items.append(FixtureItem(image_path, image, ids, objects, visible_truth[image_id], extra))
    order = [0, 2, 1, 3, 4, 6, 5]  # interleave images in the file, each image's annotations in order
    record = {
        "images": images,
        "annotations": [annotations[k] for k in order],
        "categories": [{"id": c, "name": f"class{c}", "supercategory": "thing"} for c in (1, 18, 90)],
    }
    _write_json(record, root / "annotations" / f"instances_{split}2017.json")
    return sorted(items, key=lambda item: int(item.image_path.stem))
