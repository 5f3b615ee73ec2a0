"""Pieces the dataset readers share: strict file reading, split folders, per-object labels.

Conventions every reader follows (each reader's docstring adds its own):

- GT ids: ``masks`` holds int64 instance ids, 0 = background, ``1..K`` objects.
- ``visible``: bool ``(K + 1,)``; entry ``j`` says whether GT id ``j`` is scored. Index 0 (the
  background) is True when any background pixel is present; metrics never score it.
- ``labels[name]`` rows are aligned with GT ids ``1..K`` (row ``j`` <-> id ``j + 1``), padded to
  ``K = max_num_objects``: discrete properties are int64 ``(K,)`` padded with -1, continuous ones
  float32 ``(K, D)`` (``D = 1`` for scalars) padded with 0. Padded rows are never visible.
- Every error about a file names it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from lsd.data.images import read_rgb
from lsd.data.sample import LabelledSample
from lsd.data.transforms import to_model_range

PropertyKind = Literal["discrete", "continuous"]

#: Other spellings accepted for a split folder (the release's README says ``val`` once).
SPLIT_ALIASES = {"validation": ("validation", "val"), "val": ("val", "validation")}


def split_names(split: str) -> tuple[str, ...]:
    """The folder spellings accepted for ``split``, preferred first."""
    return SPLIT_ALIASES.get(split, (split,))


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing or malformed file raises an error naming it."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"missing label file {path}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def read_index_png(path: Path, modes: tuple[str, ...]) -> np.ndarray:
    """Raw pixel values of a one-channel mask PNG, ``(H, W)`` uint8.

    For a palette (``P``) image these are the palette indices, never the palette colours.
    A mode outside ``modes`` (e.g. an RGB segment where ``L`` is expected), a missing or
    truncated file raise an error naming the file.
    """
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            array = np.asarray(image)
    except FileNotFoundError:
        raise FileNotFoundError(f"missing mask file {path}") from None
    except (OSError, SyntaxError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot read mask {path}: {err}") from err
    if mode not in modes:
        raise ValueError(f"mask {path} has PIL mode {mode!r}; expected {' or '.join(modes)} (one id per pixel)")
    return array.astype(np.uint8, copy=False)


def check_same_size(image: Image.Image, image_path: Path, mask: np.ndarray, mask_path: Path) -> None:
    """Raise when the mask and the image it labels differ in size."""
    if mask.shape != (image.height, image.width):
        raise ValueError(
            f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but image {image_path} is "
            f"{image.width}x{image.height}"
        )


def check_ids(masks: np.ndarray, num_objects: int, mask_path: Path, label_path: Path) -> None:
    """Raise when the mask uses an id that the label file does not describe."""
    top = int(masks.max(initial=0))
    if top > num_objects:
        raise ValueError(f"mask {mask_path} uses id {top} but {label_path} describes {num_objects} objects")


def check_count(num_objects: int, max_num_objects: int, label_path: Path) -> None:
    if num_objects > max_num_objects:
        raise ValueError(f"{label_path} describes {num_objects} objects; max_num_objects is {max_num_objects}")


def require(record: Mapping[str, Any], key: str, path: Path) -> Any:
    """``record[key]``, or an error naming the file and the key."""
    if key not in record:
        raise ValueError(f"{path} has no {key!r} entry")
    return record[key]


def per_object(values: Any, num_objects: int, key: str, path: Path) -> np.ndarray:
    """A per-object array flattened to ``(num_objects, D)`` float64 (objects along axis 0)."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {key!r} is not a numeric per-object array") from err
    if array.ndim == 0 or array.shape[0] != num_objects:
        raise ValueError(f"{path}: {key!r} has shape {array.shape}; expected {num_objects} objects on axis 0")
    return array.reshape(num_objects, -1)


def pad_labels(
    rows: Mapping[str, np.ndarray], kinds: Mapping[str, PropertyKind], max_num_objects: int, path: Path
) -> dict[str, torch.Tensor]:
    """Per-object ``(n, D)`` arrays -> padded label tensors (see the module docstring).

    ``rows[name][j]`` is the value of GT id ``j + 1``; ``n <= max_num_objects``.
    """
    labels = {}
    for name, kind in kinds.items():
        values = rows[name]
        count = values.shape[0]
        if kind == "discrete":
            if values.shape[1] != 1 or not np.array_equal(values, np.round(values)):
                raise ValueError(f"{path}: discrete property {name!r} must hold one integer per object")
            out = torch.full((max_num_objects,), -1, dtype=torch.int64)
            out[:count] = torch.from_numpy(values[:, 0].astype(np.int64))
        else:
            out = torch.zeros(max_num_objects, values.shape[1], dtype=torch.float32)
            out[:count] = torch.from_numpy(values.astype(np.float32))
        labels[name] = out
    return labels


def visible_vector(foreground: Iterable[bool], max_num_objects: int, masks: np.ndarray) -> torch.Tensor:
    """``(K + 1,)`` bool: background presence, then ``foreground`` (GT ids 1..n), then False."""
    foreground = list(foreground)
    visible = torch.zeros(max_num_objects + 1, dtype=torch.bool)
    visible[0] = bool((masks == 0).any())
    visible[1 : len(foreground) + 1] = torch.tensor(foreground, dtype=torch.bool)
    return visible


def labelled_sample(
    image: Image.Image,
    masks: np.ndarray,
    foreground_visible: Iterable[bool],
    rows: Mapping[str, np.ndarray],
    kinds: Mapping[str, PropertyKind],
    max_num_objects: int,
    label_path: Path,
    index: int,
) -> LabelledSample:
    """The :class:`~lsd.data.sample.LabelledSample` of a reader's cropped/resized RGB ``image``,
    GT id map ``masks`` ``(H, W)``, per-object visibility (GT ids 1..n) and label rows."""
    return LabelledSample(
        pixel_values=to_model_range(image),
        masks=torch.from_numpy(masks.astype(np.int64)),
        visible=visible_vector(foreground_visible, max_num_objects, masks),
        labels=pad_labels(rows, kinds, max_num_objects, label_path),
        index=index,
    )


def present_ids(masks: np.ndarray, num_objects: int) -> np.ndarray:
    """``(num_objects,)`` bool: whether GT id ``j + 1`` has at least one pixel in ``masks``."""
    counts = np.bincount(masks.ravel(), minlength=num_objects + 1)
    return counts[1 : num_objects + 1] > 0


def crop_and_resize_mask(mask: np.ndarray, box: tuple[int, int, int, int], size: int | None) -> np.ndarray:
    """Crop ``box`` = (left, top, right, bottom) from an id map, then resize to ``size`` (NEAREST)."""
    image = Image.fromarray(mask).crop(box)
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), resample=Image.NEAREST)
    return np.asarray(image)


# ----------------------------------------------------------------------------------------------
# The "labelled frames" layout shared by MOVi (release dump) and converted CLEVR-with-masks:
# <folder>/images/.../<stem>_image.png, <folder>/labels/.../<stem>_segment.png and _instances.json
# ----------------------------------------------------------------------------------------------


def find_labelled_folder(root: Path, name: str | None, split: str | None) -> Path:
    """The folder that holds ``images/`` and ``labels/`` for ``split``.

    ``root`` may be that folder, its ``images/`` subfolder (the release's ``--dataset_root``), or a
    parent holding ``<name>-<split>-with-label`` or ``<name>/<name>-<split>-with-label``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    if root.name == "images" and (root.parent / "labels").is_dir():
        root = root.parent
    if (root / "images").is_dir():
        wrong_split = (
            split is not None
            and root.name.endswith("-with-label")
            and not any(root.name.endswith(f"-{s}-with-label") for s in split_names(split))
        )
        if wrong_split:
            raise ValueError(f"{root} does not hold the {split!r} split")
        return root
    if split is None or name is None:
        raise FileNotFoundError(f"no images/ folder in {root}; pass the split folder or a name and split")
    tried = []
    for s in split_names(split):
        for candidate in (root / f"{name}-{s}-with-label", root / name / f"{name}-{s}-with-label"):
            if (candidate / "images").is_dir():
                return candidate
            tried.append(str(candidate))
    raise FileNotFoundError(f"no {split!r} split of {name} under {root}; looked for {', '.join(tried)}")


def list_frames(folder: Path) -> list[Path]:
    """Every ``*_image.png`` under ``folder/images`` (any depth), sorted by path."""
    frames = sorted((folder / "images").rglob("*_image.png"))
    if not frames:
        raise FileNotFoundError(f"no *_image.png files under {folder / 'images'} (empty split)")
    return frames


def frame_label_paths(image_path: Path, folder: Path) -> tuple[Path, Path]:
    """``(segment png, instances json)`` of a frame: ``images/`` -> ``labels/``, same subfolders."""
    relative = image_path.relative_to(folder / "images")
    stem = relative.name[: -len("_image.png")]
    labels = folder / "labels" / relative.parent
    return labels / f"{stem}_segment.png", labels / f"{stem}_instances.json"


def read_visibility(json_path: Path, record: Any = None) -> np.ndarray:
    """The ``visibility`` array of an ``instances.json`` (parsed here unless ``record`` is given), float64."""
    record = read_json(json_path) if record is None else record
    if not isinstance(record, dict):
        raise ValueError(f"{json_path} must hold an object of per-instance arrays")
    return np.asarray(require(record, "visibility", json_path), dtype=np.float64)


class LabelledFrame(NamedTuple):
    image: Image.Image  # RGB
    segment: np.ndarray  # (H, W) uint8 ids, same size as the image
    record: dict[str, Any]  # the parsed instances.json
    visibility: np.ndarray  # record["visibility"], float64
    segment_path: Path
    json_path: Path


def read_labelled_frame(image_path: Path, folder: Path) -> LabelledFrame:
    """Read a frame's image, ``L`` segment and ``instances.json``; check that image and segment agree."""
    segment_path, json_path = frame_label_paths(image_path, folder)
    image = read_rgb(image_path)
    segment = read_index_png(segment_path, ("L",))
    check_same_size(image, image_path, segment, segment_path)
    record = read_json(json_path)
    visibility = read_visibility(json_path, record)
    return LabelledFrame(image, segment, record, visibility, segment_path, json_path)
