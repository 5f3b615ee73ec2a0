"""The MOVi feature spec, read from a TFDS release's ``features.json``, and the decoding of one
record into the arrays ``tfds.load`` yields.

``features.json`` describes the record as nested TFDS features; TFDS flattens them into the
Example's keys (``instances/positions``, ``video``...). Both of its formats are read: the proto
JSON of tfds >= 4.5 (``{"featuresDict": {"features": {...}}}``, each node naming its
``pythonClassName``) and the older ``{"type": ..., "content": ...}``. How TFDS stores each kind
(``tensorflow_datasets/core/features`` and ``example_serializer.py``, tfds 4.9.10):

- ``Tensor`` / ``ClassLabel`` (int64) / ``BBoxFeature`` (float32, 4): the values flattened into a
  float list (floating dtypes) or an int64 list (integers and bool, cast back on decoding);
- ``Text``: a bytes list (UTF-8);
- ``Image``, and ``Video`` (a sequence of images): one encoded image (PNG) per image;
- ``Sequence``: adds a leading axis; its values are concatenated. A tensor under two or more
  ``Sequence`` levels (MOVi's ``instances/bboxes`` and ``instances/bbox_frames``) is ragged:
  ``<key>/ragged_flat_values`` plus ``<key>/ragged_row_lengths_0``.

The MOVi features come from kubric's builders (``challenges/movi/movi_e.py`` / ``movi_c.py``):
``video`` (T, H, W, 3) uint8, ``segmentations`` (T, H, W, 1) uint8, and ``instances``, a
sequence of per-object features. T, H and W are taken from ``features.json``, never from the
folder's name.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from lsd.data.prepare.example import feature_values, parse_example

LeafKind = Literal["tensor", "image", "text", "unsupported"]


@dataclass(frozen=True)
class Leaf:
    """One flattened feature: its Example key, how it is stored and what it decodes to.

    ``shape`` is the decoded shape, ``None`` for a variable-length (sequence) axis;
    ``sequence_rank`` counts the ``Sequence`` levels around it (2 or more: stored ragged).
    For an image leaf ``shape`` includes the image axes, e.g. ``(T, H, W, 1)``.
    """

    key: str
    kind: LeafKind
    dtype: str
    shape: tuple[int | None, ...]
    sequence_rank: int = 0
    detail: str = ""

    @property
    def ragged(self) -> bool:
        return self.sequence_rank > 1


class Ragged(NamedTuple):
    """A ragged ``(k, None, *inner)`` array: ``flat_values`` (sum(row_lengths), *inner) and
    ``row_lengths`` (k,) int64 (TensorFlow's ``RaggedTensor.from_row_lengths``)."""

    flat_values: np.ndarray
    row_lengths: np.ndarray

    def to_dense(self) -> np.ndarray:
        """Zero-padded ``(k, L, *inner)`` with ``L = max(row_lengths)`` (0 when k = 0), as
        ``tf.RaggedTensor.to_tensor()`` pads."""
        rows = len(self.row_lengths)
        width = int(self.row_lengths.max()) if rows else 0
        dense = np.zeros((rows, width, *self.flat_values.shape[1:]), dtype=self.flat_values.dtype)
        starts = np.concatenate([[0], np.cumsum(self.row_lengths)[:-1]]).astype(np.int64)
        for row, (start, length) in enumerate(zip(starts, self.row_lengths, strict=True)):
            dense[row, :length] = self.flat_values[start : start + length]
        return dense


# ----------------------------------------------------------------------------------------------
# features.json -> leaves
# ----------------------------------------------------------------------------------------------


def _dims(shape: Any) -> tuple[int | None, ...]:
    """A shape from either format: ``{"dimensions": ["24", "-1"]}`` or ``[24, null]``."""
    if isinstance(shape, Mapping):
        shape = shape.get("dimensions", [])
    return tuple(None if d is None or int(d) < 0 else int(d) for d in shape)


#: The proto JSON's content field of each feature class (tfds ``feature.proto``).
_PROTO_FIELDS = {
    "featuresDict": "FeaturesDict", "sequence": "Sequence", "tensor": "Tensor", "image": "Image",
    "video": "Video", "text": "Text", "classLabel": "ClassLabel", "boundingBox": "BBoxFeature",
}  # fmt: skip


def _node(node: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """``(class name, content)`` of a feature node in either format."""
    if "type" in node and "content" in node:  # tfds < 4.5
        return str(node["type"]).rsplit(".", 1)[-1], node["content"] or {}
    for field, name in _PROTO_FIELDS.items():
        if field in node:
            return name, node[field] or {}
    return str(node.get("pythonClassName", "unknown")).rsplit(".", 1)[-1], {}


def _leaves(node: Mapping[str, Any], key: str, outer: tuple[int | None, ...], rank: int, out: dict[str, Leaf]) -> None:
    name, content = _node(node)
    if name in ("FeaturesDict", "Dict"):
        children = content.get("features", {}) if "features" in content else content
        for child, value in children.items():
            _leaves(value, f"{key}/{child}" if key else child, outer, rank, out)
    elif name == "Sequence":
        length = content.get("length")
        length = None if length is None or int(length) < 0 else int(length)
        _leaves(content["feature"], key, (*outer, length), rank + 1, out)
    elif name in ("Tensor", "Scalar"):
        out[key] = Leaf(
            key, "tensor", str(content.get("dtype", "float32")), (*outer, *_dims(content.get("shape", []))), rank
        )
    elif name == "ClassLabel":
        out[key] = Leaf(key, "tensor", "int64", outer, rank)
    elif name == "BBoxFeature":
        out[key] = Leaf(key, "tensor", str(content.get("dtype", "float32")), (*outer, 4), rank)
    elif name == "Text":
        out[key] = Leaf(key, "text", "str", outer, rank)
    elif name in ("Image", "Video"):
        encoding = content.get("encodingFormat", content.get("encoding_format")) or "png"
        image_rank = rank + (1 if name == "Video" else 0)
        shape = (*outer, *_dims(content.get("shape", [])))
        out[key] = Leaf(key, "image", str(content.get("dtype", "uint8")), shape, image_rank, detail=str(encoding))
    else:
        out[key] = Leaf(key, "unsupported", "", outer, rank, detail=name or "unknown")


def feature_leaves(features_json: Mapping[str, Any], where: str) -> dict[str, Leaf]:
    """Every flattened feature of a ``features.json`` (either format), by Example key."""
    try:
        out: dict[str, Leaf] = {}
        _leaves(features_json, "", (), 0, out)
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as err:
        raise ValueError(f"{where}: not a TFDS features.json ({type(err).__name__}: {err})") from err
    return out


@dataclass(frozen=True)
class MoviSpec:
    """What the dump needs of a MOVi release: frame count and size, and its instance features
    (``instances`` keyed by the name under ``instances/``, sorted: the order ``tfds.load`` gives
    them, and the key order of the release's ``_instances.json``)."""

    frames: int
    height: int
    width: int
    video: Leaf
    segmentations: Leaf
    instances: dict[str, Leaf]


def movi_spec(features_json: Mapping[str, Any], where: str) -> MoviSpec:
    """Check that ``features.json`` describes a MOVi record and read its shapes from it."""
    leaves = feature_leaves(features_json, where)
    video, segmentations = leaves.get("video"), leaves.get("segmentations")
    if video is None or segmentations is None:
        raise ValueError(f"{where}: no 'video' and 'segmentations' features (is this a MOVi release?)")
    if video.kind != "image" or video.dtype != "uint8" or len(video.shape) != 4 or video.shape[3] != 3:
        raise ValueError(f"{where}: 'video' is {video.kind} {video.dtype} {video.shape}; expected (T, H, W, 3) uint8")
    if segmentations.kind != "image" or segmentations.dtype != "uint8" or segmentations.shape != (*video.shape[:3], 1):
        raise ValueError(
            f"{where}: 'segmentations' is {segmentations.kind} {segmentations.dtype} {segmentations.shape}; "
            f"expected {(*video.shape[:3], 1)} uint8 like the video"
        )
    if None in video.shape:
        raise ValueError(f"{where}: 'video' has a variable axis {video.shape}; MOVi videos have fixed shapes")
    instances = {k.removeprefix("instances/"): leaf for k, leaf in sorted(leaves.items()) if k.startswith("instances/")}
    if not instances:
        raise ValueError(f"{where}: no 'instances' features")
    for leaf in instances.values():
        if leaf.kind in ("unsupported", "image") or leaf.sequence_rank > 2:
            raise ValueError(f"{where}: cannot decode instance feature {leaf.key!r} ({leaf.kind} {leaf.detail})")
    frames, height, width, _ = video.shape
    return MoviSpec(int(frames), int(height), int(width), video, segmentations, instances)


# ----------------------------------------------------------------------------------------------
# one record -> arrays
# ----------------------------------------------------------------------------------------------


@dataclass
class MoviRecord:
    """One video as ``tfds.load`` decodes it: ``video`` (T, H, W, 3) uint8, ``segmentations``
    (T, H, W, 1) uint8, ``instances[name]`` an array with objects on axis 0 (text as ``str``
    arrays) or a :class:`Ragged` (``bboxes``, ``bbox_frames``)."""

    video: np.ndarray
    segmentations: np.ndarray
    instances: dict[str, np.ndarray | Ragged]


def _decode_images(leaf: Leaf, values: list[bytes], where: str) -> np.ndarray:
    frames = []
    for index, encoded in enumerate(values):
        try:
            with Image.open(io.BytesIO(encoded)) as image:
                image.load()
                array = np.asarray(image)
        except (OSError, SyntaxError, UnidentifiedImageError) as err:
            raise ValueError(f"{where}: {leaf.key!r} image {index} does not decode ({err})") from err
        frames.append(array[..., None] if array.ndim == 2 else array)
    stacked = np.stack(frames) if frames else np.zeros((0, *leaf.shape[1:]), dtype=leaf.dtype)
    if stacked.shape != leaf.shape or stacked.dtype != np.dtype(leaf.dtype):
        raise ValueError(
            f"{where}: {leaf.key!r} decodes to {stacked.dtype} {stacked.shape}; features.json says "
            f"{leaf.dtype} {leaf.shape}"
        )
    return stacked


def _reshape(values: np.ndarray, shape: tuple[int | None, ...], key: str, where: str) -> np.ndarray:
    target = tuple(-1 if d is None else d for d in shape)
    fixed = int(np.prod([d for d in shape if d is not None], dtype=np.int64))
    if target.count(-1) > 1 or (fixed and values.size % fixed) or (not fixed and values.size):
        raise ValueError(f"{where}: {key!r} holds {values.size} values, which do not fit the shape {shape}")
    return values.reshape(target)


def _decode_tensor(leaf: Leaf, features: Mapping[str, Any], where: str) -> np.ndarray | Ragged:
    dtype = np.dtype("bool" if leaf.dtype == "bool" else leaf.dtype)
    if leaf.kind == "text":
        values = feature_values(features, leaf.key, where)
        try:
            return np.array([v.decode("utf-8") for v in values], dtype=str).reshape(-1)
        except (UnicodeDecodeError, AttributeError) as err:
            raise ValueError(f"{where}: {leaf.key!r} is not UTF-8 text ({err})") from err
    if not leaf.ragged:
        return _reshape(
            np.asarray(feature_values(features, leaf.key, where)).astype(dtype), leaf.shape, leaf.key, where
        )
    flat = np.asarray(feature_values(features, f"{leaf.key}/ragged_flat_values", where)).astype(dtype)
    rows = np.asarray(feature_values(features, f"{leaf.key}/ragged_row_lengths_0", where)).astype(np.int64)
    flat = _reshape(flat, (None, *leaf.shape[2:]), leaf.key, where)
    if int(rows.sum()) != len(flat) or (rows < 0).any():
        raise ValueError(f"{where}: {leaf.key!r} row lengths sum to {int(rows.sum())}, but {len(flat)} rows are stored")
    return Ragged(flat, rows)


def decode_record(spec: MoviSpec, data: bytes, where: str) -> MoviRecord:
    """Decode the fields the dump uses from one serialized Example; every error names ``where``."""
    features = parse_example(data, where)
    video = _decode_images(spec.video, feature_values(features, "video", where), where)
    segmentations = _decode_images(spec.segmentations, feature_values(features, "segmentations", where), where)
    instances = {name: _decode_tensor(leaf, features, where) for name, leaf in spec.instances.items()}
    counts = {name: len(v.row_lengths if isinstance(v, Ragged) else v) for name, v in instances.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"{where}: instance features disagree on the object count: {counts}")
    return MoviRecord(video, segmentations, instances)
