"""Training on a real reader's split (``data.kind = "dataset"``): the images the trainer sees are
the reader's own crop, flips follow (seed, epoch, index), and a mix concatenates two readers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsd.data.fixtures import write_clevr, write_clevrtex
from lsd.data.readers import open_dataset
from lsd.training.config import load_train_config
from lsd.training.data import ReaderImages, build_train_dataset


def _config(overrides: list[str]):
    return load_train_config("synth-smoke", ["data.kind=dataset", "data.resolution=32", *overrides])


def test_training_images_are_the_readers_crop_of_the_train_split(tmp_path):
    items = write_clevr(tmp_path, split="train", num_images=3, seed=4)
    write_clevr(tmp_path, split="validation", num_images=2, seed=5)
    dataset = build_train_dataset(_config(["data.dataset=clevr", f"data.root={tmp_path}"]).data, seed=0)
    assert isinstance(dataset, ReaderImages) and len(dataset) == 3  # the train split only
    for index, item in enumerate(items):
        pixels = dataset.get(index, 0)["pixel_values"]
        assert pixels.shape == (3, 32, 32)
        # the fixture paints four colour quadrants inside the CLEVR crop and another colour outside it:
        # the reader's crop keeps only the quadrants (corner pixels are the quadrant colours, in [-1, 1])
        corners = pixels[:, [0, 0, -1, -1], [0, -1, 0, -1]].T
        expected = torch.tensor(item.extra["colours"], dtype=torch.float32) / 127.5 - 1
        assert torch.allclose(corners, expected, atol=0.02)


def test_flips_depend_on_seed_epoch_and_index_only(tmp_path):
    write_clevr(tmp_path, split="train", num_images=3, seed=4)
    data = _config(["data.dataset=clevr", f"data.root={tmp_path}", "data.flip=true"]).data
    dataset = build_train_dataset(data, seed=11)
    plain = open_dataset("clevr", tmp_path, split="train", resolution=32)
    flips = []
    for epoch in range(4):
        for index in range(3):
            got = dataset.get(index, epoch)["pixel_values"]
            flipped = bool(np.random.default_rng((11, epoch, index)).random() < 0.5)
            want = plain[index]["pixel_values"]
            assert torch.equal(got, want.flip(-1) if flipped else want)
            flips.append(flipped)
    assert any(flips) and not all(flips)


def test_a_mix_concatenates_the_second_readers_split(tmp_path):
    write_clevr(tmp_path / "clevr", split="train", num_images=3, seed=4)
    write_clevrtex(tmp_path / "clevrtex", num_images=10, seed=1)
    mix = ["data.mix_dataset=clevrtex", f"data.mix_root={tmp_path / 'clevrtex'}"]
    data = _config(["data.dataset=clevr", f"data.root={tmp_path / 'clevr'}", *mix]).data
    dataset = build_train_dataset(data, seed=0)
    clevrtex = open_dataset("clevrtex", tmp_path / "clevrtex", split="train", resolution=32)
    assert len(dataset) == 3 + len(clevrtex)
    assert torch.equal(dataset.get(3, 0)["pixel_values"], clevrtex[0]["pixel_values"])
    # the autoencoder stage's cache key names both sources
    assert dataset.files == [f"clevr:{tmp_path / 'clevr'}:train", f"clevrtex:{tmp_path / 'clevrtex'}:train"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.root=x"], "data.kind='dataset' needs data.dataset"),
        (["data.dataset=clevr", "data.root=null"], "data.kind='dataset' needs data.dataset"),
        (["data.dataset=clevr", "data.root=x", "data.portion=[0.0, 0.5]"], "data.portion"),
        (["data.dataset=clevr", "data.root=x", "data.mix_dataset=clevrtex"], "data.mix_dataset and data.mix_root"),
        (["data.dataset=imagenet", "data.root=x"], "data.dataset='imagenet'"),
    ],
)
def test_bad_dataset_fields_are_named(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        _config(overrides)


def test_an_empty_training_split_is_named(tmp_path):
    write_clevr(tmp_path, split="validation", num_images=2, seed=5)
    with pytest.raises(FileNotFoundError, match="train"):
        build_train_dataset(_config(["data.dataset=clevr", f"data.root={tmp_path}"]).data, seed=0)
