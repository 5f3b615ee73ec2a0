"""MoviDataset against fixtures written in the LSD release's MOVi dump layout."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from lsd.data import fixtures
from lsd.data.movi import MOVI_PROPERTIES, MoviDataset

from .conftest import model_range


@pytest.fixture(scope="module")
def movi(tmp_path_factory):
    root = tmp_path_factory.mktemp("movi")
    return root, fixtures.write_movi(root, name="movi-e", split="validation")


def test_reads_fixture_back_exactly(movi):
    root, items = movi
    dataset = MoviDataset(root, split="validation", name="movi-e", resolution=32)
    assert len(dataset) == len(items) == 4
    assert dataset.max_num_objects == 23
    assert dataset.property_kinds == MOVI_PROPERTIES
    for index, truth in enumerate(items):
        item = dataset[index]
        assert item["index"] == index
        assert item["masks"].dtype == torch.int64
        assert torch.equal(item["masks"], torch.from_numpy(truth.ids))
        torch.testing.assert_close(item["pixel_values"], model_range(truth.image), rtol=0, atol=1e-6)
        count = len(truth.objects)
        expected_visible = torch.zeros(24, dtype=torch.bool)
        expected_visible[0] = True
        expected_visible[1 : count + 1] = torch.tensor(truth.visible)
        assert torch.equal(item["visible"], expected_visible)
        labels = item["labels"]
        assert set(labels) == set(MOVI_PROPERTIES)
        category = torch.full((23,), -1, dtype=torch.int64)
        category[:count] = torch.tensor([o["category"] for o in truth.objects])
        assert torch.equal(labels["category"], category)
        positions = torch.zeros(23, 2)
        positions[:count] = torch.tensor([o["image_positions"] for o in truth.objects])
        assert torch.equal(labels["image_positions"], positions)
        boxes = torch.zeros(23, 24)
        boxes[:count] = torch.tensor(
            np.array([o["bboxes_3d"] for o in truth.objects]).reshape(count, 24), dtype=torch.float32
        )
        assert torch.equal(labels["bboxes_3d"], boxes)
        scale = torch.zeros(23, 1)
        scale[:count, 0] = torch.tensor([o["scale"] for o in truth.objects])
        assert torch.equal(labels["scale"], scale)


def test_invisible_object_is_not_visible(movi):
    root, items = movi
    dataset = MoviDataset(root, split="validation", name="movi-e")
    first = dataset[0]  # video 0, frame 0: object 2 is not drawn, visibility 0
    assert items[0].objects[1]["visibility"] == 0
    assert not first["visible"][2]
    assert not (first["masks"] == 2).any()
    assert first["visible"][1] == (items[0].objects[0]["visibility"] > 0)


def test_resizes_images_not_masks(movi):
    root, items = movi
    item = MoviDataset(root, split="validation", name="movi-e", resolution=16)[0]
    assert item["pixel_values"].shape == (3, 16, 16)
    assert item["pixel_values"].dtype == torch.float32
    assert -1.0 <= item["pixel_values"].min() and item["pixel_values"].max() <= 1.0
    assert item["masks"].shape == (32, 32)


@pytest.mark.parametrize(
    "relative, kwargs",
    [
        ("", {"split": "validation", "name": "movi-e"}),
        ("", {"split": "val", "name": "movi-e"}),  # alias
        ("movi-e", {"split": "validation", "name": "movi-e"}),
        ("movi-e/movi-e-validation-with-label", {"split": "validation"}),
        ("movi-e/movi-e-validation-with-label/images", {"split": "val"}),  # the release's --dataset_root
    ],
)
def test_accepts_generic_roots(movi, relative, kwargs):
    root, items = movi
    dataset = MoviDataset(root / relative, **kwargs)
    assert dataset.name == "movi-e"
    assert [p.name for p in dataset.frames] == [i.image_path.name for i in items]


def test_val_folder_found_for_validation_split(tmp_path):
    fixtures.write_movi(tmp_path, name="movi-c", split="val", num_videos=1, num_frames=1, size=8)
    dataset = MoviDataset(tmp_path, split="validation", name="movi-c")
    assert len(dataset) == 1 and dataset.max_num_objects == 10


def test_object_budgets(tmp_path):
    fixtures.write_movi(tmp_path, name="movi-c", split="test", num_videos=1, num_frames=1, size=8)
    assert MoviDataset(tmp_path, split="test", name="movi-c").max_num_objects == 24
    fixtures.write_movi(tmp_path, name="synth", split="train", num_videos=2, num_frames=1, size=8, num_objects=3)
    dataset = MoviDataset(tmp_path, split="train", name="synth")  # unknown name: scanned
    assert dataset.max_num_objects == 3
    assert MoviDataset(tmp_path, split="train", name="synth", max_num_objects=7)[0]["visible"].shape == (8,)


def test_wrong_split_folder_is_refused(movi):
    root, _ = movi
    with pytest.raises(ValueError, match="train"):
        MoviDataset(root / "movi-e" / "movi-e-validation-with-label", split="train")


def test_batches_collate(movi):
    root, _ = movi
    batch = next(iter(DataLoader(MoviDataset(root, split="validation", name="movi-e", resolution=16), batch_size=3)))
    assert batch["pixel_values"].shape == (3, 3, 16, 16)
    assert batch["masks"].shape == (3, 32, 32)
    assert batch["visible"].shape == (3, 24)
    assert batch["labels"]["bboxes_3d"].shape == (3, 23, 24)


def test_reads_the_synthetic_stand_in(tmp_path):
    from lsd.data.synthetic import SynthSpec, write_dataset

    folder = write_dataset(tmp_path, SynthSpec(resolution=32, num_train=1, num_validation=2), progress=False)
    dataset = MoviDataset(tmp_path, split="validation", name=folder.name, resolution=32)
    assert len(dataset) == 2
    for index, frame in enumerate(dataset.frames):
        labels = frame.parent.parent.parent / "labels" / frame.parent.name
        segment = np.asarray(Image.open(labels / "00000000_segment.png"))
        record = json.loads((labels / "00000000_instances.json").read_text())
        item = dataset[index]
        assert torch.equal(item["masks"], torch.from_numpy(segment.astype(np.int64)))
        count = len(record["visibility"])
        assert torch.equal(item["visible"][1 : count + 1], torch.tensor(record["visibility"]) > 0)
        assert torch.equal(item["labels"]["category"][:count], torch.tensor(record["category"]))


# ---------------------------------------------------------------------------------------------
# Malformed data: every error names the offending file.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def one_frame(tmp_path):
    (item,) = fixtures.write_movi(tmp_path, name="movi-e", num_videos=1, num_frames=1, size=16)
    labels = tmp_path / "movi-e" / "movi-e-validation-with-label" / "labels" / "00000000"
    return tmp_path, item, labels / "00000000_segment.png", labels / "00000000_instances.json"


def _read(root):
    return MoviDataset(root, split="validation", name="movi-e")[0]


def test_missing_root_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        MoviDataset(tmp_path / "nowhere", split="validation", name="movi-e")


def test_missing_split_raises(one_frame):
    root, *_ = one_frame
    with pytest.raises(FileNotFoundError, match="movi-e-train-with-label"):
        MoviDataset(root, split="train", name="movi-e")


def test_empty_split_raises(one_frame):
    root, item, *_ = one_frame
    shutil.rmtree(item.image_path.parent)
    with pytest.raises(FileNotFoundError, match="empty split"):
        MoviDataset(root, split="validation", name="movi-e")


def test_missing_json_raises(one_frame):
    root, _, _, json_path = one_frame
    json_path.unlink()
    with pytest.raises(FileNotFoundError, match=str(json_path)):
        _read(root)


def test_malformed_json_raises(one_frame):
    root, _, _, json_path = one_frame
    json_path.write_text('{"visibility": [1, 2')
    with pytest.raises(ValueError, match=str(json_path)):
        _read(root)


def test_json_without_a_property_raises(one_frame):
    root, _, _, json_path = one_frame
    record = json.loads(json_path.read_text())
    del record["bboxes_3d"]
    json_path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=f"{json_path}.*bboxes_3d"):
        _read(root)


def test_rgb_segment_raises(one_frame):
    root, item, segment_path, _ = one_frame
    Image.fromarray(np.stack([item.ids.astype(np.uint8)] * 3, axis=-1)).save(segment_path)
    with pytest.raises(ValueError, match=f"{segment_path}.*'RGB'"):
        _read(root)


@pytest.mark.parametrize("which", ["image", "segment"])
def test_truncated_png_raises(one_frame, which):
    root, item, segment_path, _ = one_frame
    path = item.image_path if which == "image" else segment_path
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=str(path)):
        _read(root)


def test_size_mismatch_raises(one_frame):
    root, item, segment_path, _ = one_frame
    Image.fromarray(np.zeros((8, 16), np.uint8)).save(segment_path)
    with pytest.raises(ValueError, match=f"{segment_path}.*{item.image_path}"):
        _read(root)


def test_segment_id_without_instance_raises(one_frame):
    root, item, segment_path, json_path = one_frame
    ids = item.ids.astype(np.uint8)
    ids[0, 0] = len(item.objects) + 1
    Image.fromarray(ids).save(segment_path)
    with pytest.raises(ValueError, match=f"{segment_path}.*{json_path}"):
        _read(root)


def test_more_objects_than_the_budget_raises(one_frame):
    root, _, _, json_path = one_frame
    with pytest.raises(ValueError, match=str(json_path)):
        MoviDataset(root, split="validation", name="movi-e", max_num_objects=2)[0]
