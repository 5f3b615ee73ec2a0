"""``reader.pixel_values(i)``: the image of item ``i`` without its labels (what training reads,
:class:`lsd.training.data.ReaderImages`), equal to ``reader[i]["pixel_values"]`` for every reader."""

from __future__ import annotations

import shutil

import pytest
import torch

from lsd.data import fixtures
from lsd.data.clevrtex import ClevrTexDataset
from lsd.data.coco import CocoDataset
from lsd.data.readers import open_dataset
from lsd.data.standins import FFHQPartsDataset, StandinSpec, standin_reader_root, write_standin
from lsd.training.data import ReaderImages


def _readers(root):
    fixtures.write_movi(root / "movi", name="movi-e", split="validation")
    fixtures.write_clevr(root / "clevr", split="validation", num_images=2)
    fixtures.write_clevrtex(root / "clevrtex", num_images=10)
    fixtures.write_coco(root / "coco")
    fixtures.write_ffhq(root / "ffhq")
    ffhq_parts = standin_reader_root(write_standin(root / "standin", StandinSpec("ffhq", 3, 2), progress=False))
    return {
        "movi-e": open_dataset("movi-e", root / "movi", split="validation", resolution=32),
        "clevr": open_dataset("clevr", root / "clevr", split="validation", resolution=32),
        "clevrtex lsd crop": ClevrTexDataset(root / "clevrtex", "train", resolution=32, crop="lsd"),
        "clevrtex official crop": ClevrTexDataset(root / "clevrtex", "train", resolution=32, crop="official"),
        "coco": CocoDataset(root / "coco", split="val", resolution=32),
        "ffhq": open_dataset(
            "ffhq", root / "ffhq" / "images1024x1024", split="train", resolution=32, ffhq_num_train=3
        ),  # fmt: skip
        "ffhq parts stand-in": FFHQPartsDataset(ffhq_parts, "validation", resolution=32, num_train=3),
    }


@pytest.fixture(scope="module")
def readers(tmp_path_factory):
    return _readers(tmp_path_factory.mktemp("readers"))


@pytest.mark.parametrize(
    "name", ["movi-e", "clevr", "clevrtex lsd crop", "clevrtex official crop", "coco", "ffhq", "ffhq parts stand-in"]
)
def test_pixel_values_equal_the_items(readers, name):
    reader = readers[name]
    for index in range(len(reader)):
        assert torch.equal(reader.pixel_values(index), reader[index]["pixel_values"]), (name, index)


def test_training_images_read_no_labels(tmp_path):
    """ReaderImages over a reader whose label files are gone: the images still come, the items do not."""
    fixtures.write_movi(tmp_path, name="movi-e", split="train")
    reader = open_dataset("movi-e", tmp_path, split="train", resolution=32)
    expected = [reader[i]["pixel_values"] for i in range(len(reader))]
    shutil.rmtree(next(tmp_path.rglob("labels")))  # masks and instances.json
    images = ReaderImages([reader, reader], sources=("a", "b"))
    assert len(images) == 2 * len(reader)
    assert all(torch.equal(images[i]["pixel_values"], expected[i % len(reader)]) for i in range(len(images)))
    with pytest.raises(OSError):
        reader[0]
    with pytest.raises(IndexError):
        images[len(images)]
