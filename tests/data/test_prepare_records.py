"""lsd.data.prepare without TensorFlow, against shards tensorflow-datasets wrote: TFRecord framing
and checksums, Example decoding (exactly the arrays tfds decoded), the MOVi spec from
features.json, and tfds's read order."""

from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest

from lsd.data.prepare.example import Example
from lsd.data.prepare.features import Ragged, decode_record, feature_leaves, movi_spec
from lsd.data.prepare.order import interleave_order, read_order
from lsd.data.prepare.tfrecord import CorruptRecordError, frame_record, iter_records, masked_crc32c

from .movi_tfds import RELEASES, SPLITS, expected_records, release_folder


def _info(name: str) -> dict:
    return json.loads((release_folder(name) / "dataset_info.json").read_text())


def _shard_lengths(name: str, split: str) -> list[int]:
    (entry,) = [s for s in _info(name)["splits"] if s["name"] == split]
    return [int(n) for n in entry["shardLengths"]]


def _shards(name: str, split: str) -> list:
    lengths = _shard_lengths(name, split)
    return [
        release_folder(name) / f"{name}-{split}.tfrecord-{i:05d}-of-{len(lengths):05d}" for i in range(len(lengths))
    ]


def _spec(name: str):
    folder = release_folder(name)
    return movi_spec(json.loads((folder / "features.json").read_text()), str(folder / "features.json"))


# ---------------------------------------------------------------------------------------------
# TFRecord framing
# ---------------------------------------------------------------------------------------------


def test_crc32c_check_value_and_tensorflow_mask():
    import crc32c

    assert crc32c.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value (RFC 3720)
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@pytest.mark.parametrize("name, split", SPLITS)
def test_reads_every_record_tfds_wrote(name, split):
    for shard, length in zip(_shards(name, split), _shard_lengths(name, split), strict=True):
        with shard.open("rb") as stream:
            assert sum(1 for _ in iter_records(stream, str(shard))) == length


def test_framing_round_trip(tmp_path):
    path = tmp_path / "x.tfrecord"
    path.write_bytes(b"".join(frame_record(d) for d in (b"", b"a", b"bc" * 1000)))
    with path.open("rb") as stream:
        assert list(iter_records(stream, str(path))) == [b"", b"a", b"bc" * 1000]


@pytest.fixture
def shard_copy(tmp_path):
    source = _shards("movi_e", "validation")[0]
    path = tmp_path / source.name
    shutil.copy(source, path)
    data = path.read_bytes()
    (first,) = struct.unpack("<Q", data[:8])
    return path, data, 12 + first + 4  # byte offset of record 1


@pytest.mark.parametrize(
    "where, damage, message",
    [
        ("length", lambda d, o: d[: o + 2] + bytes([d[o + 2] ^ 1]) + d[o + 3 :], "length field fails its CRC32C"),
        ("data", lambda d, o: d[: o + 40] + bytes([d[o + 40] ^ 1]) + d[o + 41 :], "data fails its CRC32C"),
        ("cut", lambda d, o: d[: o + 100], "truncated"),
        ("header", lambda d, o: d[: o + 5], "truncated"),
    ],
)
def test_damaged_record_is_named_and_never_returned(shard_copy, where, damage, message):
    path, data, offset = shard_copy
    path.write_bytes(damage(data, offset))
    records = []
    with pytest.raises(CorruptRecordError, match=rf"{path}: record 1 \(byte {offset}\): .*{message}"):
        with path.open("rb") as stream:
            for record in iter_records(stream, str(path)):
                records.append(record)
    assert len(records) == 1  # record 0 only


# ---------------------------------------------------------------------------------------------
# features.json and decoding: exactly what tfds decoded
# ---------------------------------------------------------------------------------------------


def test_spec_takes_shapes_from_features_json():
    for name, (_, frames, size) in RELEASES.items():
        spec = _spec(name)
        assert (spec.frames, spec.height, spec.width) == (frames, size, size)
        assert list(spec.instances) == sorted(spec.instances)
        assert spec.instances["bboxes"].ragged and spec.instances["bbox_frames"].ragged
        assert spec.instances["bboxes_3d"].shape == (None, frames, 8, 3)
        assert ("is_dynamic" in spec.instances) == (name == "movi_e")


@pytest.mark.parametrize("name, split", SPLITS)
def test_decoded_records_equal_what_tfds_decoded(name, split):
    spec = _spec(name)
    by_id = {}
    for shard in _shards(name, split):
        with shard.open("rb") as stream:
            for index, data in enumerate(iter_records(stream, str(shard))):
                by_id[f"{shard.name}__{index}"] = data
    expected = expected_records(name, split)
    assert len(expected) == len(by_id)
    for truth in expected:
        record = decode_record(spec, by_id[truth.tfds_id], truth.tfds_id)
        assert record.video.dtype == np.uint8 and np.array_equal(record.video, truth.video)
        assert record.segmentations.dtype == np.uint8 and np.array_equal(record.segmentations, truth.segmentations)
        assert set(record.instances) == set(truth.instances)
        for key, want in truth.instances.items():
            got = record.instances[key]
            if isinstance(got, Ragged):
                rows = np.split(got.flat_values, np.cumsum(got.row_lengths)[:-1]) if len(got.row_lengths) else []
                assert len(rows) == len(want), key
                for row, want_row in zip(rows, want, strict=True):
                    assert row.dtype == want_row.dtype and np.array_equal(row, want_row), key
            else:
                assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), key


def test_old_features_json_format_is_read():
    """tfds < 4.5 wrote ``{"type": ..., "content": ...}`` nodes (the 2022 public release's era)."""

    def node(kind, content):
        return {"type": f"tensorflow_datasets.core.features.{kind}", "content": content}

    old = node("features_dict.FeaturesDict", {
        "video": node("video_feature.Video", {"shape": [24, 256, 256, 3], "dtype": "uint8", "encoding_format": "png"}),
        "segmentations": node("sequence_feature.Sequence", {
            "feature": node("image_feature.Image", {"shape": [256, 256, 1], "dtype": "uint8", "encoding_format": None}),
            "length": 24}),
        "instances": node("sequence_feature.Sequence", {"length": None, "feature": node("features_dict.FeaturesDict", {
            "bboxes": node("sequence_feature.Sequence", {"feature": node("bounding_boxes.BBoxFeature", {}), "length": None}),
            "category": node("class_label_feature.ClassLabel", {"num_classes": 17}),
            "positions": node("tensor_feature.Tensor", {"shape": [24, 3], "dtype": "float32"}),
            "asset_id": node("text_feature.Text", {}),
        })}),
    })  # fmt: skip
    spec = movi_spec(old, "features.json")
    assert (spec.frames, spec.height, spec.width) == (24, 256, 256)
    assert list(spec.instances) == ["asset_id", "bboxes", "category", "positions"]
    assert spec.instances["bboxes"].ragged and spec.instances["bboxes"].shape == (None, None, 4)
    assert spec.instances["category"].dtype == "int64" and spec.instances["positions"].shape == (None, 24, 3)
    assert spec.instances["asset_id"].kind == "text"


def test_features_json_without_video_is_refused():
    features = json.loads((release_folder("movi_c") / "features.json").read_text())
    del features["featuresDict"]["features"]["video"]
    with pytest.raises(ValueError, match=r"somewhere/features.json: no 'video'"):
        movi_spec(features, "somewhere/features.json")
    assert "video" not in feature_leaves(features, "x")


def test_record_missing_a_field_is_named():
    spec = _spec("movi_c")
    message = Example()
    message.features.feature["segmentations"].bytes_list.value.append(b"")
    with pytest.raises(ValueError, match=r"shard-3 record 7: the record has no 'video' entry"):
        decode_record(spec, message.SerializeToString(), "shard-3 record 7")


def test_values_that_do_not_fit_the_shape_are_named():
    spec = _spec("movi_c")
    data = (release_folder("movi_c") / "movi_c-validation.tfrecord-00000-of-00002").open("rb")
    record = next(iter_records(data, "x"))
    data.close()
    message = Example()
    message.ParseFromString(record)
    del message.features.feature["instances/positions"].float_list.value[-1]
    with pytest.raises(ValueError, match=r"here: 'instances/positions' holds \d+ values, which do not fit"):
        decode_record(spec, message.SerializeToString(), "here")


# ---------------------------------------------------------------------------------------------
# Read order
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, split", SPLITS)
def test_read_order_is_tfds_load_order(name, split):
    lengths = _shard_lengths(name, split)
    ids = [f"{name}-{split}.tfrecord-{s:05d}-of-{len(lengths):05d}__{r}" for s, r in read_order(lengths)]
    assert ids == [r.tfds_id for r in expected_records(name, split)]


def test_order_fixtures_cover_the_cases():
    assert _shard_lengths("movi_e", "train") == [18, 17]  # the documented example
    lengths = _shard_lengths("movi_c", "train")
    assert len(lengths) > 16 and 16 in lengths and min(lengths) >= 16 and max(lengths) > 16


def test_documented_example_and_empty_shards():
    order = interleave_order([18, 17])
    assert order[:16] == [(0, r) for r in range(16)] and order[16:32] == [(1, r) for r in range(16)]
    assert order[32:] == [(0, 16), (0, 17), (1, 16)]
    with_empty = interleave_order([18, 0, 17])
    assert with_empty == [(0 if s == 0 else 2, r) for s, r in order]  # an empty shard is left out
    assert read_order([3, 2], disable_shuffling=True) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
