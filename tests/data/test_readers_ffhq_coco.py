"""FFHQDataset and CocoDataset against fixtures written in the real layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from lsd.data import fixtures
from lsd.data.coco import COCO_PROPERTIES, CocoDataset
from lsd.data.ffhq import FFHQDataset

from .conftest import model_range, short_side_nearest_then_centre

# ---------------------------------------------------------------------------------------------
# FFHQ
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ffhq(tmp_path_factory):
    root = tmp_path_factory.mktemp("ffhq")
    return root, fixtures.write_ffhq(root)  # indices 0, 1, 2, 1000, 1001; 48 x 40


def test_ffhq_splits_by_index(ffhq):
    root, items = ffhq
    train = FFHQDataset(root, split="train", resolution=40, num_train=3)
    validation = FFHQDataset(root, split="validation", resolution=40, num_train=3)
    assert train.files == [str(i.image_path) for i in items[:3]]
    assert validation.files == [str(i.image_path) for i in items[3:]]
    assert len(FFHQDataset(root, split="train")) == 5  # fewer than 60k: all train


def test_ffhq_resize_and_centre_crop(ffhq):
    root, items = ffhq
    item = FFHQDataset(root, split="validation", resolution=40, num_train=3)[1]
    # 48 x 40 is already 40 on its short side: the centre 40 columns start at round(8 / 2) = 4
    torch.testing.assert_close(item["pixel_values"], model_range(items[4].image[:, 4:44]), rtol=0, atol=1e-6)
    assert FFHQDataset(root, resolution=16)[0]["pixel_values"].shape == (3, 16, 16)


def test_ffhq_bad_or_empty_split_raises(ffhq, tmp_path):
    root, _ = ffhq
    with pytest.raises(ValueError, match="split"):
        FFHQDataset(root, split="test")
    with pytest.raises(FileNotFoundError, match="empty"):
        FFHQDataset(root, split="validation")  # all five files fall in the first 60k
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        FFHQDataset(tmp_path, split="train")


def test_ffhq_truncated_png_raises(tmp_path):
    items = fixtures.write_ffhq(tmp_path, indices=(0,))
    data = items[0].image_path.read_bytes()
    items[0].image_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=str(items[0].image_path)):
        FFHQDataset(tmp_path)[0]


# ---------------------------------------------------------------------------------------------
# COCO
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    return root, fixtures.write_coco(root)


def test_coco_reads_fixture_back(coco):
    root, items = coco
    dataset = CocoDataset(root, split="val", resolution=32)
    assert len(dataset) == 3
    assert dataset.max_num_objects == 3  # image 7: three non-crowd instances (its crowd one dropped)
    assert dataset.property_kinds == COCO_PROPERTIES
    for index, truth in enumerate(items):
        item = dataset[index]
        assert torch.equal(item["masks"], torch.from_numpy(short_side_nearest_then_centre(truth.ids, 320)))
        overlap = short_side_nearest_then_centre(truth.extra["overlap"], 320)
        assert torch.equal(item["ignore"], torch.from_numpy(overlap))
        categories = torch.full((3,), -1, dtype=torch.int64)
        categories[: len(truth.objects)] = torch.tensor([o["category_id"] for o in truth.objects], dtype=torch.int64)
        assert torch.equal(item["labels"]["category"], categories)
        visible = torch.zeros(4, dtype=torch.bool)
        visible[0] = True
        visible[1 : len(truth.visible) + 1] = torch.tensor(truth.visible, dtype=torch.bool)
        assert torch.equal(item["visible"], visible)
        # JPEG of a flat colour: every pixel within a few levels of it
        flat = model_range(np.broadcast_to(truth.extra["colour"], (32, 32, 3)))
        torch.testing.assert_close(item["pixel_values"], flat, rtol=0, atol=4 / 127.5)


def test_coco_overlaps_crowd_and_cropped_instances(coco):
    root, _ = coco
    dataset = CocoDataset(root)
    portrait, landscape, empty = dataset[0], dataset[1], dataset[2]
    assert not portrait["visible"][2]  # rows 0..6 of a 56-row image fall outside the centre crop
    assert landscape["ignore"].sum() > 0  # the RLE instance overlaps the polygon
    assert set(landscape["masks"].unique().tolist()) == {0, 1, 2, 3}  # the crowd region is not an instance
    assert not empty["visible"][1:].any() and (empty["masks"] == 0).all() and not empty["ignore"].any()
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch["masks"].shape == (3, 320, 320) and batch["ignore"].shape == (3, 320, 320)


def test_coco_size_mismatch_raises(tmp_path):
    items = fixtures.write_coco(tmp_path)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(items[1].image_path)
    with pytest.raises(ValueError, match=f"{items[1].image_path}.*instances_val2017.json"):
        CocoDataset(tmp_path)[1]


def test_coco_missing_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="val2017"):
        CocoDataset(tmp_path)
    items = fixtures.write_coco(tmp_path)
    annotation = tmp_path / "annotations" / "instances_val2017.json"
    items[0].image_path.unlink()
    with pytest.raises(ValueError, match=str(items[0].image_path)):
        CocoDataset(tmp_path)[0]
    annotation.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match=str(annotation)):
        CocoDataset(tmp_path)
    annotation.unlink()
    with pytest.raises(FileNotFoundError, match=str(annotation)):
        CocoDataset(tmp_path)
