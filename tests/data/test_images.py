import random

import numpy as np
import pytest
import torch
from PIL import Image

from lsd.data.images import GlobImageDataset, split_files
from lsd.data.transforms import center_crop, resize_and_crop, to_model_range


def test_split_rule_partitions_and_is_the_release_shuffle():
    files = [f"img_{i:03d}.png" for i in range(50)]
    train = split_files(list(reversed(files)), (0.0, 0.9))
    held = split_files(files, (0.9, 1.0))
    assert len(train) == 45 and len(held) == 5 and set(train).isdisjoint(held) and set(train) | set(held) == set(files)
    shuffled = sorted(files)
    random.Random(42).shuffle(shuffled)  # the release: sorted, then random.Random(42).shuffle
    assert train == shuffled[:45]
    assert split_files(list(reversed(files)), None) == files
    with pytest.raises(ValueError, match="portion"):
        split_files(files, (0.5, 0.2))


def test_resize_shortest_side_then_centre_crop_geometry():
    # 8 wide x 4 high, each column a distinct value; shortest side 4 -> no resize, crop columns 2..5
    array = np.repeat(np.arange(8, dtype=np.uint8)[None, :, None] * 30, 4, axis=0).repeat(3, axis=2)
    image = Image.fromarray(array)
    cropped = np.asarray(resize_and_crop(image, 4))
    assert cropped.shape == (4, 4, 3) and cropped[0, :, 0].tolist() == [60, 90, 120, 150]
    # odd margin: torchvision rounds the offset: (7 - 4) / 2 = 1.5 -> 2
    assert center_crop(Image.new("RGB", (7, 4)), 4).size == (4, 4)
    assert np.asarray(center_crop(Image.fromarray(array[:, :7]), 4))[0, 0, 0] == 60
    assert resize_and_crop(Image.new("RGB", (100, 50)), 20).size == (20, 20)


def test_model_range():
    image = Image.fromarray(np.array([[[0, 255, 51]]], dtype=np.uint8))
    torch.testing.assert_close(to_model_range(image)[:, 0, 0], torch.tensor([-1.0, 1.0, -0.6]))


def test_glob_dataset_items_flips_and_errors(tmp_path):
    for i in range(6):
        Image.fromarray(np.full((8, 12, 3), i * 40, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "ignored.txt").write_text("x")
    dataset = GlobImageDataset(tmp_path, 8, "*.png", flip=True, dinov2_resolution=14, seed=0)
    assert len(dataset) == 6
    item = dataset.get(2, epoch=0)
    assert item["pixel_values"].shape == (3, 8, 8) and item["backbone_pixel_values"].shape == (3, 14, 14)
    flips = [dataset.flips(i, e) for i in range(6) for e in range(10)]
    assert 10 < sum(flips) < 50  # about half, decided by (seed, epoch, index)
    assert flips == [dataset.flips(i, e) for i in range(6) for e in range(10)]
    (tmp_path / "bad.png").write_bytes(b"not a png")
    broken = GlobImageDataset(tmp_path, 8, "*.png")
    with pytest.raises(ValueError, match=r"cannot read image .*bad\.png"):
        broken[broken.files.index(str(tmp_path / "bad.png"))]
    with pytest.raises(FileNotFoundError, match="no images match"):
        GlobImageDataset(tmp_path, 8, "*.jpg")


def _release_dinov2_view(image: Image.Image, size: int) -> np.ndarray:
    """The release's DINOv2 transform restated literally (torchvision Resize(size) + CenterCrop(size)
    + ToTensor + Normalize(ImageNet mean, std) on a PIL image), in numpy."""
    width, height = image.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    resized = image.resize((new_w, new_h), resample=Image.BILINEAR)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    array = np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    return ((array - mean) / std).transpose(2, 0, 1)


def test_dinov2_view_is_the_release_transform_in_training_and_evaluation(tmp_path):
    from types import SimpleNamespace

    from lsd.data.transforms import dinov2_view
    from lsd.evaluation.evaluate import backbone_view

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (45, 61, 3), dtype=np.uint8))  # resized and cropped
    expected = torch.from_numpy(_release_dinov2_view(image, 28))
    view = dinov2_view(image, 28)
    torch.testing.assert_close(view, expected, rtol=0, atol=1e-6)
    bicubic = np.asarray(resize_and_crop(image, 28, resample=Image.BICUBIC), dtype=np.float32)
    assert not np.allclose(np.asarray(resize_and_crop(image, 28)), bicubic)  # the filter is pinned
    image.save(tmp_path / "a.png")  # training reads the same view
    item = GlobImageDataset(tmp_path, 16, "*.png", dinov2_resolution=28)[0]
    torch.testing.assert_close(item["backbone_pixel_values"], view, rtol=0, atol=0)
    # Evaluation: the reader's [-1, 1] pixels at the backbone's size, re-normalised: the same view.
    pytest.importorskip("transformers")
    from lsd.models.dinov2 import DINOv2Backbone

    backbone = DINOv2Backbone.__new__(DINOv2Backbone)  # only its type is consulted
    model = SimpleNamespace(backbone=backbone)
    pixels = to_model_range(resize_and_crop(image, 28))[None]
    torch.testing.assert_close(backbone_view(model, pixels)[0], expected, rtol=0, atol=1e-5)
    assert backbone_view(model, pixels, view[None]) is not None
    assert backbone_view(SimpleNamespace(backbone=torch.nn.Identity()), pixels) is None


def test_no_images_names_the_pattern_and_root_without_a_portion_of_none(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        GlobImageDataset(tmp_path, 32)
    assert str(err.value) == f"no images match '**/*.png' under {tmp_path}"
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(FileNotFoundError, match=r"portion \[0.5, 0.5\] selects none of the 1 images"):
        GlobImageDataset(tmp_path, 32, portion=(0.5, 0.5))
