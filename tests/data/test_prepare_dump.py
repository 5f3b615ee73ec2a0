"""``lsd data prepare`` on shards tensorflow-datasets wrote: the dump equals what the LSD release's
dump logic writes (restated below as an oracle, and byte for byte against the release's logic run
with TensorFlow when the fixtures were made), MoviDataset reads it, reruns resume and verify,
damage is named and never written."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections import namedtuple

import numpy as np
import pytest
import torch
from PIL import Image

from lsd.cli import main
from lsd.data.movi import MoviDataset
from lsd.data.prepare import prepare_movi
from lsd.data.prepare.tfrecord import CorruptRecordError

from .movi_tfds import FIXTURES, RELEASES, Expected, expected_records, release_folder


def release_frame_instances(truth: Expected, t: int, frames: int) -> dict:
    """The release's per-frame instances (its dump script, restated): ragged lists zero-padded to
    the longest (``to_tensor``), then ``v[:, t]`` where the second axis is the frame count."""
    out = {}
    for key in sorted(truth.instances):
        value = truth.instances[key]
        if isinstance(value, list):
            longest = max(len(row) for row in value)
            padded = np.zeros((len(value), longest, *value[0].shape[1:]), dtype=value[0].dtype)
            for j, row in enumerate(value):
                padded[j, : len(row)] = row
            value = padded
        out[key] = (value[:, t] if value.ndim > 1 and value.shape[1] == frames else value).tolist()
    return out


@pytest.fixture(scope="module")
def movi_e_dump(tmp_path_factory):
    out = tmp_path_factory.mktemp("dump")
    results = prepare_movi("movi-e", out, source=str(FIXTURES), resolution=16, progress=False)
    return out, results


@pytest.mark.parametrize("split", ["train", "validation"])
def test_dump_is_the_release_dump(movi_e_dump, split):
    out, results = movi_e_dump
    (result,) = [r for r in results if r.split == split]
    folder = out / "movi-e" / f"movi-e-{split}-with-label"
    expected = expected_records("movi_e", split)
    frames = RELEASES["movi_e"][1]
    assert result.folder == folder and result.videos == result.written == len(expected)
    assert sorted(p.name for p in (folder / "images").iterdir()) == [f"{v:08d}" for v in range(len(expected))]
    sliced = whole = 0
    for video, truth in enumerate(expected):  # video N is the N-th record tfds.load yields
        images, labels = folder / "images" / f"{video:08d}", folder / "labels" / f"{video:08d}"
        assert len(list(images.iterdir())) == frames and len(list(labels.iterdir())) == 2 * frames
        for t in range(frames):
            with Image.open(images / f"{t:08d}_image.png") as image:
                assert image.mode == "RGB" and np.array_equal(np.asarray(image), truth.video[t])
            with Image.open(labels / f"{t:08d}_segment.png") as segment:
                assert segment.mode == "L" and np.array_equal(np.asarray(segment), truth.segmentations[t, :, :, 0])
            text = (labels / f"{t:08d}_instances.json").read_text()
            assert hashlib.sha256(text.encode()).hexdigest()[:16] == truth.json_sha256[t]  # the release, run with TF
            oracle = release_frame_instances(truth, t, frames)
            parsed = json.loads(text)
            assert list(parsed) == list(oracle) and parsed == oracle
        boxes = max(len(row) for row in truth.instances["bboxes"])
        sliced, whole = sliced + (boxes == frames), whole + (boxes != frames)
    assert split == "validation" or (sliced and whole)  # both branches of the release's quirk


def test_movi_reader_reads_the_dump(movi_e_dump):
    out, _ = movi_e_dump
    frames = RELEASES["movi_e"][1]
    expected = expected_records("movi_e", "validation")
    dataset = MoviDataset(out, split="validation", name="movi-e", resolution=16)
    assert len(dataset) == len(expected) * frames and dataset.max_num_objects == 23
    for index in range(len(dataset)):
        truth, t = expected[index // frames], index % frames
        item = dataset[index]
        assert torch.equal(item["masks"], torch.from_numpy(truth.segmentations[t, :, :, 0].astype(np.int64)))
        count = len(truth.instances["category"])
        assert torch.equal(item["visible"][1 : count + 1], torch.from_numpy(truth.instances["visibility"][:, t] > 0))
        assert torch.equal(item["labels"]["category"][:count], torch.from_numpy(truth.instances["category"]))
        positions = torch.from_numpy(truth.instances["image_positions"][:, t])
        assert torch.equal(item["labels"]["image_positions"][:count], positions)


def test_rerun_verifies_and_rewrites_only_damaged_videos(tmp_path):
    kwargs = dict(source=str(release_folder("movi_c")), splits=["validation"], progress=False)
    (first,) = prepare_movi("movi-c", tmp_path, **kwargs)
    folder = first.folder
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and ".prepare" not in p.parts}
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "images" / "00000001" / "00000000_image.png")
    (folder / "labels" / "00000003" / "00000002_instances.json").unlink()
    (folder / "images" / ".00000004.tmp-dead").mkdir()  # what a killed run leaves
    (second,) = prepare_movi("movi-c", tmp_path, **kwargs)
    assert (second.written, second.verified) == (2, first.videos - 2)
    assert not (folder / "images" / ".00000004.tmp-dead").exists()
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and ".prepare" not in p.parts}
    assert after == before
    (third,) = prepare_movi("movi-c", tmp_path, **kwargs)
    assert (third.written, third.verified, third.bytes_read) == (0, first.videos, 0)


def test_limit_takes_the_first_videos_in_tfds_order_and_reads_only_what_it_needs(tmp_path):
    (result,) = prepare_movi("movi-c", tmp_path, source=str(FIXTURES), resolution=8, splits=["train"], limit=20,
                             progress=False)  # fmt: skip
    expected = expected_records("movi_c", "train")[:20]
    images = result.folder / "images"
    assert sorted(p.name for p in images.iterdir()) == [f"{v:08d}" for v in range(20)]
    for video, truth in enumerate(expected):
        for t in range(RELEASES["movi_c"][1]):
            assert np.array_equal(
                np.asarray(Image.open(images / f"{video:08d}" / f"{t:08d}_image.png")), truth.video[t]
            )
    shard_bytes = [p.stat().st_size for p in release_folder("movi_c").glob("movi_c-train.tfrecord-*")]
    assert result.bytes_read < shard_bytes[0] + shard_bytes[1]  # shard 0, then the start of shard 1


def test_corrupted_record_is_named_and_not_written(tmp_path):
    source = tmp_path / "release"
    shutil.copytree(release_folder("movi_e"), source)
    shard = source / "movi_e-train.tfrecord-00001-of-00002"
    data = bytearray(shard.read_bytes())
    offset = 0
    for _ in range(5):  # skip records 0..4
        offset += 12 + int.from_bytes(data[offset : offset + 8], "little") + 4
    data[offset + 50] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptRecordError, match=rf"{shard}: record 5 \(byte {offset}\): the data fails its CRC32C"):
        prepare_movi("movi-e", tmp_path / "out", source=str(source), splits=["train"], progress=False)
    images = tmp_path / "out" / "movi-e" / "movi-e-train-with-label" / "images"
    written = sorted(int(p.name) for p in images.iterdir())
    assert written == list(range(21)) + [32, 33]  # shard 0 (videos 0-15, 32, 33), shard 1's records 0-4
    assert not (images / "00000021").exists()  # shard 1's record 5 is video 21


def test_shard_with_fewer_records_than_dataset_info_is_named(tmp_path):
    source = tmp_path / "release"
    shutil.copytree(release_folder("movi_c"), source)
    shard = source / "movi_c-validation.tfrecord-00001-of-00002"
    data = shard.read_bytes()
    first = 12 + int.from_bytes(data[:8], "little") + 4
    shard.write_bytes(data[:first])  # record 0 only, cut at a record boundary
    with pytest.raises(CorruptRecordError, match=rf"{shard}: holds 1 records, dataset_info.json says 3"):
        prepare_movi("movi-c", tmp_path / "out", source=str(source), splits=["validation"], progress=False)


def test_dataset_info_without_shard_lengths_is_named(tmp_path):
    source = tmp_path / "release"
    shutil.copytree(release_folder("movi_c"), source)
    info = json.loads((source / "dataset_info.json").read_text())
    del info["splits"][0]["shardLengths"]
    (source / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=rf"{source}/dataset_info.json: split 'train' has no list of shard lengths"):
        prepare_movi("movi-c", tmp_path / "out", source=str(source), progress=False)
    assert not (tmp_path / "out").exists()


def test_not_enough_disk_space_stops_after_the_first_video(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr("lsd.data.prepare.convert.shutil.disk_usage", lambda _: usage(10**6, 10**6 - 100, 100))
    with pytest.raises(OSError, match=r"not enough disk space in .*movi-c-validation-with-label: 4 more videos"):
        prepare_movi("movi-c", tmp_path, source=str(release_folder("movi_c")), splits=["validation"], progress=False)
    assert len(list((tmp_path / "movi-c" / "movi-c-validation-with-label" / "images").iterdir())) == 1


def test_a_split_folder_is_not_mixed_from_two_releases(tmp_path):
    prepare_movi("movi-c", tmp_path, source=str(release_folder("movi_c")), splits=["validation"], progress=False)
    state = tmp_path / "movi-c" / "movi-c-validation-with-label" / ".prepare" / "source.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "height": 256}))
    with pytest.raises(ValueError, match="was prepared from"):
        prepare_movi("movi-c", tmp_path, source=str(release_folder("movi_c")), splits=["validation"], progress=False)


def test_cli_prepares_and_reports(tmp_path, capsys):
    argv = ["data", "prepare", "movi-c", "--out", str(tmp_path), "--source", str(release_folder("movi_c")),
            "--splits", "validation", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "movi-c validation: 5 videos" in capsys.readouterr().out
    assert len(MoviDataset(tmp_path, split="validation", name="movi-c")) == 5 * RELEASES["movi_c"][1]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--source", "/nonexistent/release"], "--source /nonexistent/release is not a folder"),
        (["--source", str(release_folder("movi_c")), "--splits", "nope"], "has no split 'nope'"),
        (["--source", str(FIXTURES)], "missing .*movi_c/256x256/1.0.0/dataset_info.json"),
        (["--limit", "0"], "--limit must be >= 1, got 0"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--retries", "-1"], "--retries must be >= 0, got -1"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, capsys, extra, message):
    assert main(["data", "prepare", "movi-c", "--out", str(tmp_path / "o"), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lsd data: error: ")
    assert re.search(message, err)
    assert not (tmp_path / "o").exists()


def test_worker_processes_write_the_same_dump(tmp_path):
    def files(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and ".prepare" not in p.parts}  # fmt: skip

    kwargs = dict(source=str(release_folder("movi_c")), splits=["validation"], progress=False)
    prepare_movi("movi-c", tmp_path / "one", workers=1, **kwargs)
    (result,) = prepare_movi("movi-c", tmp_path / "two", workers=2, **kwargs)
    assert result.written == 5 and files(tmp_path / "two") == files(tmp_path / "one")
