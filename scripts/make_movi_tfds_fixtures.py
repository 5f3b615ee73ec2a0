"""Write tiny MOVi-E / MOVi-C datasets with tensorflow-datasets itself, and what tfds reads back.

Run once, in an environment with TensorFlow and tensorflow-datasets (NOT the project's; CI never
needs them)::

    python -m venv .tfvenv && .tfvenv/bin/pip install tensorflow-cpu==2.21.0 tensorflow-datasets==4.9.10
    .tfvenv/bin/python scripts/make_movi_tfds_fixtures.py tests/fixtures/movi_tfds

It writes, under OUT:

- ``<name>/<config>/1.0.0/``: a TFDS release folder as the public bucket has it
  (``dataset_info.json``, ``features.json``, ``<name>-<split>.tfrecord-<i>-of-<n>`` shards), written
  by tfds's own ``Writer`` and ``write_metadata`` with the feature definitions of kubric's
  builders (``challenges/movi/movi_e.py`` / ``movi_c.py`` in google-research/kubric), restated
  here, at tiny sizes (few frames, few pixels; the shapes live in ``features.json``);
- ``expected/<name>-<split>.npz``: what ``tfds.load`` yields, in its read order: ``video``
  (N, T, H, W, 3) and ``segmentations`` (N, T, H, W, 1) stacked, ``num_instances`` (N,), and every
  ``instances/<key>`` concatenated over the records on the object axis (ragged fields as
  ``.../flat_values`` + ``.../row_lengths``; text as unicode arrays);
- ``expected/<name>-<split>.json``: tfds's read order (``tfds_id`` = ``<shard file>__<record>``)
  and the sha256 (first 16 hex digits) of every ``_instances.json`` text that the LSD release's
  dump logic writes from these records (run here with TensorFlow's ``RaggedTensor.to_tensor``).

The datasets: ``movi_e/16x16`` (5 frames of 16 x 16): train in 2 shards (18 + 17 records, the
order example of docs/datasets.md), validation in 1; ``movi_c/8x8`` (3 frames of 8 x 8): train
in 17 shards of 16 or 17 records (more than 16 shards, some of exactly 16), validation in 2.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer, file_adapters, naming, writer
from tensorflow_datasets.core.utils import shard_utils

CATEGORIES = [
    "Action Figures", "Bag", "Board Games", "Bottles and Cans and Cups", "Camera", "Car Seat",
    "Consumer Goods", "Hat", "Headphones", "Keyboard", "Legos", "Media Cases", "Mouse", "None",
    "Shoe", "Stuffed Toys", "Toys",
]  # fmt: skip

#: name -> (config, frames, height = width, {split: (records, shards)}, objects (low, high))
DATASETS = {
    "movi_e": ("16x16", 5, 16, {"train": (35, 2), "validation": (4, 1)}, (3, 8)),
    "movi_c": ("8x8", 3, 8, {"train": (280, 17), "validation": (5, 2)}, (1, 3)),
}


def instance_features(frames: int, movi_e: bool) -> dict:
    """Per-object features of kubric's MOVi-C / MOVi-E builders (restated)."""
    f32 = np.float32
    features = {
        "mass": f32,
        "friction": f32,
        "restitution": f32,
        "positions": tfds.features.Tensor(shape=(frames, 3), dtype=f32),
        "quaternions": tfds.features.Tensor(shape=(frames, 4), dtype=f32),
        "velocities": tfds.features.Tensor(shape=(frames, 3), dtype=f32),
        "angular_velocities": tfds.features.Tensor(shape=(frames, 3), dtype=f32),
        "bboxes_3d": tfds.features.Tensor(shape=(frames, 8, 3), dtype=f32),
        "image_positions": tfds.features.Tensor(shape=(frames, 2), dtype=f32),
        "bboxes": tfds.features.Sequence(tfds.features.BBoxFeature()),
        "bbox_frames": tfds.features.Sequence(tfds.features.Tensor(shape=(), dtype=np.int32)),
        "visibility": tfds.features.Tensor(shape=(frames,), dtype=np.uint16),
        "asset_id": tfds.features.Text(),
        "category": tfds.features.ClassLabel(names=CATEGORIES),
        "scale": f32,
    }
    if movi_e:
        features["is_dynamic"] = np.bool_
    return features


def movi_features(frames: int, size: int, movi_e: bool) -> tfds.features.FeaturesDict:
    """The whole record of kubric's MOVi builders (restated), ``frames`` x ``size`` x ``size``."""
    f32 = np.float32
    s, h, w = frames, size, size
    return tfds.features.FeaturesDict(
        {
            "metadata": {
                "video_name": tfds.features.Text(),
                "width": np.int32,
                "height": np.int32,
                "num_frames": np.int32,
                "num_instances": np.uint16,
                "depth_range": tfds.features.Tensor(shape=(2,), dtype=f32),
                "forward_flow_range": tfds.features.Tensor(shape=(2,), dtype=f32),
                "backward_flow_range": tfds.features.Tensor(shape=(2,), dtype=f32),
            },
            "background": tfds.features.Text(),
            "instances": tfds.features.Sequence(feature=instance_features(s, movi_e)),
            "camera": {
                "focal_length": f32,
                "sensor_width": f32,
                "field_of_view": f32,
                "positions": tfds.features.Tensor(shape=(s, 3), dtype=f32),
                "quaternions": tfds.features.Tensor(shape=(s, 4), dtype=f32),
            },
            "events": {
                "collisions": tfds.features.Sequence(
                    {
                        "instances": tfds.features.Tensor(shape=(2,), dtype=np.uint16),
                        "frame": np.int32,
                        "force": f32,
                        "position": tfds.features.Tensor(shape=(3,), dtype=f32),
                        "image_position": tfds.features.Tensor(shape=(2,), dtype=f32),
                        "contact_normal": tfds.features.Tensor(shape=(3,), dtype=f32),
                    }
                )
            },
            "video": tfds.features.Video(shape=(s, h, w, 3)),
            "segmentations": tfds.features.Sequence(tfds.features.Image(shape=(h, w, 1), dtype=np.uint8), length=s),
            "forward_flow": tfds.features.Sequence(tfds.features.Tensor(shape=(h, w, 2), dtype=np.uint16), length=s),
            "backward_flow": tfds.features.Sequence(tfds.features.Tensor(shape=(h, w, 2), dtype=np.uint16), length=s),
            "depth": tfds.features.Sequence(tfds.features.Image(shape=(h, w, 1), dtype=np.uint16), length=s),
            "normal": tfds.features.Video(shape=(s, h, w, 3), dtype=np.uint16),
            "object_coordinates": tfds.features.Video(shape=(s, h, w, 3), dtype=np.uint16),
        }
    )


def scene(rng: np.random.Generator, name: str, frames: int, size: int, objects: tuple[int, int], movi_e: bool) -> dict:
    """One record: rectangles moving over a two-colour background, instances sorted by total
    visibility (most visible first, segment id = index + 1) as kubric sorts them. In about half
    the videos every object is hidden in one frame (then no bbox list is ``frames`` long)."""
    k = int(rng.integers(objects[0], objects[1] + 1))
    hide_one_frame = bool(rng.integers(0, 2))
    ids = np.zeros((frames, size, size), np.uint8)
    colours = rng.integers(0, 256, (k + 1, 3), dtype=np.uint8)
    for j in range(k):
        hidden = int(rng.integers(0, frames)) if hide_one_frame else -1
        height, width = (int(v) for v in rng.integers(max(size // 8, 1), size // 2 + 1, 2))
        r0, c0 = int(rng.integers(0, size - height + 1)), int(rng.integers(0, size - width + 1))
        dr, dc = (int(v) for v in rng.integers(-1, 2, 2))
        for t in range(frames):
            if t != hidden:
                r, c = np.clip(r0 + dr * t, 0, size - height), np.clip(c0 + dc * t, 0, size - width)
                ids[t, r : r + height, c : c + width] = j + 1
    visibility = np.stack([(ids == j + 1).sum(axis=(1, 2)) for j in range(k)]).astype(np.uint16)  # (k, T)
    order = np.argsort(-visibility.sum(axis=1), kind="stable")
    relabel = np.zeros(k + 1, np.uint8)
    relabel[order + 1] = np.arange(1, k + 1)
    ids, visibility = relabel[ids], visibility[order]
    video = colours[ids]
    video[..., 0] = np.where(ids == 0, np.arange(size, dtype=np.uint8) * (255 // size), video[..., 0])
    if size >= 64:  # full-size bench records: texture, so that PNG sizes are like rendered frames'
        video = (video & 0xF0) | rng.integers(0, 16, video.shape, dtype=np.uint8)
    instances = []
    for j in range(k):
        seen = np.flatnonzero(visibility[j] > 0)
        boxes = []
        for t in seen:
            rows, cols = np.nonzero(ids[t] == j + 1)
            boxes.append(
                tfds.features.BBox(
                    rows.min() / size, cols.min() / size, (rows.max() + 1) / size, (cols.max() + 1) / size
                )
            )
        f = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
        instance = {
            "mass": float(rng.uniform(0.1, 5)),
            "friction": 0.5,
            "restitution": 0.5,
            "positions": f(frames, 3),
            "quaternions": f(frames, 4),
            "velocities": f(frames, 3),
            "angular_velocities": f(frames, 3),
            "bboxes_3d": f(frames, 8, 3),
            "image_positions": rng.uniform(0, 1, (frames, 2)).astype(np.float32),
            "bboxes": boxes,
            "bbox_frames": seen.astype(np.int32),
            "visibility": visibility[j],
            "asset_id": f"asset_{int(rng.integers(0, 10**6)):06d}",
            "category": int(rng.integers(0, len(CATEGORIES))),
            "scale": float(rng.uniform(0.75, 3.0)),
        }
        if movi_e:
            instance["is_dynamic"] = bool(rng.integers(0, 2))
        instances.append(instance)
    collisions = [
        {
            "instances": rng.integers(0, k, 2).astype(np.uint16),
            "frame": int(rng.integers(0, frames)),
            "force": float(rng.uniform(0, 10)),
            "position": f(3),
            "image_position": rng.uniform(0, 1, 2).astype(np.float32),
            "contact_normal": f(3),
        }
        for _ in range(int(rng.integers(0, 3)))
    ]
    zeros16 = np.zeros((frames, size, size, 3), np.uint16)
    return {
        "metadata": {
            "video_name": name,
            "width": size,
            "height": size,
            "num_frames": frames,
            "num_instances": k,
            "depth_range": np.array([1.0, 20.0], np.float32),
            "forward_flow_range": np.array([-1.0, 1.0], np.float32),
            "backward_flow_range": np.array([-1.0, 1.0], np.float32),
        },
        "background": f"background_{name}",
        "instances": instances,
        "camera": {
            "focal_length": 35.0,
            "sensor_width": 32.0,
            "field_of_view": 0.85,
            "positions": f(frames, 3),
            "quaternions": f(frames, 4),
        },
        "events": {"collisions": collisions},
        "video": video,
        "segmentations": ids[..., None],
        "forward_flow": np.zeros((frames, size, size, 2), np.uint16),
        "backward_flow": np.zeros((frames, size, size, 2), np.uint16),
        "depth": np.full((frames, size, size, 1), 1000, np.uint16),
        "normal": zeros16,
        "object_coordinates": zeros16,
    }


def write_release(root: Path, name: str, seed: int) -> Path:
    """Write ``root/<name>/<config>/1.0.0/`` with tfds's writer; return that folder."""
    config, frames, size, splits, objects = DATASETS[name]
    folder = root / name / config / "1.0.0"
    folder.mkdir(parents=True)
    features = movi_features(frames, size, movi_e=name == "movi_e")
    serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
    rng = np.random.default_rng(seed)
    split_infos = []
    for split, (records, shards) in splits.items():
        template = naming.ShardedFileTemplate(
            data_dir=folder, dataset_name=name, split=split, filetype_suffix="tfrecord"
        )
        out = writer.Writer(
            serializer=serializer,
            filename_template=template,
            hash_salt=split,
            disable_shuffling=False,
            example_writer=writer.ExampleWriter(file_adapters.FileFormat.TFRECORD),
            shard_config=shard_utils.ShardConfig(num_shards=shards),
        )
        for i in range(records):
            key = f"{split}_{i:05d}"
            out.write(key, features.encode_example(scene(rng, key, frames, size, objects, name == "movi_e")))
        lengths, num_bytes = out.finalize()
        split_infos.append(
            tfds.core.SplitInfo(name=split, shard_lengths=lengths, num_bytes=num_bytes, filename_template=template)
        )
    tfds.folder_dataset.write_metadata(
        data_dir=folder, features=features, split_infos=split_infos, version="1.0.0", check_data=False
    )
    return folder


class ReleaseJsonEncoder(json.JSONEncoder):
    """The LSD release's encoder for numpy values (its dump script's ``JsonEncoder``)."""

    def default(self, obj):
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return float(obj)
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, tf.RaggedTensor):
            return obj.to_tensor().numpy().tolist()
        if isinstance(obj, bytes):
            return obj.decode()
        return json.JSONEncoder.default(self, obj)


def release_instances_json(record: dict) -> list[str]:
    """What the release's dump writes as ``<t>_instances.json`` for each frame ``t`` of a record
    (its loop body, with TensorFlow's ragged -> dense padding)."""
    instances = {}
    for key, value in record["instances"].items():
        if isinstance(value, tf.RaggedTensor):
            value = value.to_tensor().numpy()
        instances[key] = value
    frames = record["video"].shape[0]
    texts = []
    for t in range(frames):
        per_frame = {k: (v[:, t] if len(v.shape) > 1 and v.shape[1] == frames else v) for k, v in instances.items()}
        texts.append(json.dumps(per_frame, cls=ReleaseJsonEncoder))
    return texts


def record_arrays(record: dict) -> dict[str, np.ndarray]:
    """The fields the dump uses, as plain arrays (ragged as flat values + row lengths)."""
    arrays = {"video": record["video"], "segmentations": record["segmentations"]}
    for key, value in record["instances"].items():
        if isinstance(value, tf.RaggedTensor):
            arrays[f"instances/{key}/flat_values"] = value.flat_values.numpy()
            arrays[f"instances/{key}/row_lengths"] = value.row_lengths().numpy()
        elif value.dtype == object:
            arrays[f"instances/{key}"] = np.array([v.decode() for v in value], dtype=str)
        else:
            arrays[f"instances/{key}"] = value
    return arrays


def stack(records: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Records' arrays joined: ``video`` / ``segmentations`` stacked (one row per record), every
    instance array concatenated on its first axis, with ``num_instances`` per record."""
    out = {key: np.stack([r[key] for r in records]) for key in ("video", "segmentations")}
    out["num_instances"] = np.array([len(r["instances/category"]) for r in records], np.int64)
    for key in records[0]:
        if key.startswith("instances/"):
            out[key] = np.concatenate([r[key] for r in records])
    return out


def read_back(root: Path, name: str, expected: Path) -> None:
    """Read every split with ``tfds.load`` as the release does; store arrays, order, JSON hashes."""
    config = DATASETS[name][0]
    for split in DATASETS[name][3]:
        ds = tfds.load(
            f"{name}/{config}:1.0.0",
            data_dir=str(root),
            split=split,
            read_config=tfds.ReadConfig(add_tfds_id=True),
        )
        arrays, order, json_sha256, video_names = [], [], [], []
        for record in tfds.as_numpy(ds):
            order.append(record["tfds_id"].decode())
            video_names.append(record["metadata"]["video_name"].decode())
            arrays.append(record_arrays(record))
            json_sha256.append([hashlib.sha256(t.encode()).hexdigest()[:16] for t in release_instances_json(record)])
        np.savez_compressed(expected / f"{name}-{split}.npz", **stack(arrays))
        meta = {"tfds_id": order, "video_name": video_names, "instances_json_sha256": json_sha256}
        (expected / f"{name}-{split}.json").write_text(json.dumps(meta, indent=1) + "\n")
        print(f"{name} {split}: {len(order)} records")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="fixture folder (replaced)")
    parser.add_argument(
        "--bench", type=int, default=0, metavar="N",
        help="instead: N full-size records (movi_e/256x256, 24 frames, 10-23 objects, textured frames) in "
        "one train shard, for measuring conversion speed; no expected arrays",
    )  # fmt: skip
    args = parser.parse_args()
    if args.bench:
        DATASETS.clear()
        DATASETS["movi_e"] = ("256x256", 24, 256, {"train": (args.bench, 1)}, (10, 23))
        write_release(args.out, "movi_e", seed=0)
        return
    tmp = Path(tempfile.mkdtemp(prefix=".movi-tfds-", dir=args.out.parent))
    (tmp / "expected").mkdir()
    for seed, name in enumerate(DATASETS):
        write_release(tmp, name, seed)
        read_back(tmp, name, tmp / "expected")
    for leftover in tmp.rglob("*.tmp*"):
        leftover.unlink()
    if args.out.exists():
        shutil.rmtree(args.out)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
