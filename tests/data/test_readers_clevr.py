"""ClevrWithMasksDataset (converted layout) and ClevrTexDataset (both crops) against fixtures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from lsd.data import fixtures
from lsd.data.clevr import CLEVR_PROPERTIES, ClevrWithMasksDataset
from lsd.data.clevrtex import CLEVRTEX_CLASSES, CLEVRTEX_PROPERTIES, ClevrTexDataset

from .conftest import crop_then_nearest, model_range


def _colour(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float32) / 255.0) * 2.0 - 1.0


def assert_quadrants(pixels: torch.Tensor, colours: np.ndarray) -> None:
    """A crop of exactly the fixture's quadrant box: every corner pixel (the border included,
    where a crop one pixel off would mix in the outside colour) holds its quadrant's colour."""
    last = pixels.shape[-1] - 1
    for k, (row, col) in enumerate(((0, 0), (0, last), (last, 0), (last, last))):
        torch.testing.assert_close(pixels[:, row, col], _colour(colours[k]), rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# CLEVR with masks
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clevr(tmp_path_factory):
    root = tmp_path_factory.mktemp("clevr")
    return root, fixtures.write_clevr(root, split="train")


def test_clevr_reads_fixture_back(clevr):
    root, items = clevr
    dataset = ClevrWithMasksDataset(root, split="train")
    assert len(dataset) == len(items) == 3
    assert dataset.property_kinds == CLEVR_PROPERTIES
    for index, truth in enumerate(items):
        item = dataset[index]
        expected = crop_then_nearest(truth.ids, (29, 221), (64, 256), 128)
        assert torch.equal(item["masks"], torch.from_numpy(expected))
        assert torch.equal(item["visible"], torch.tensor([True] + truth.visible))
        assert not item["visible"][3] and (truth.ids == 3).any()  # drawn, but above the crop
        labels = item["labels"]
        for name in ("color", "material", "shape", "size"):
            assert labels[name].dtype == torch.int64
            assert torch.equal(labels[name], torch.tensor([o[name] for o in truth.objects]))
        for name in ("x", "y", "z", "rotation"):
            assert torch.equal(labels[name], torch.tensor([[o[name]] for o in truth.objects], dtype=torch.float32))
        coords = np.array([o["pixel_coords"] for o in truth.objects])[:, :2]
        expected_coords = np.stack([(coords[:, 0] - 160) / 160, (coords[:, 1] - 120) / 120], axis=1)
        torch.testing.assert_close(labels["pixel_coords"], torch.from_numpy(expected_coords).float())


def test_clevr_crop_lands_the_known_pixels(clevr):
    root, items = clevr
    native = ClevrWithMasksDataset(root, split="train", resolution=192)[0]
    torch.testing.assert_close(native["pixel_values"], model_range(items[0].image[29:221, 64:256]), rtol=0, atol=1e-6)
    resized = ClevrWithMasksDataset(root, split="train", resolution=128)[0]
    assert resized["pixel_values"].shape == (3, 128, 128)
    assert_quadrants(resized["pixel_values"], items[0].extra["colours"])


def test_clevr6_filter(tmp_path):
    root = tmp_path
    items = fixtures.write_clevr(root, split="train")
    json_path = root / "clevr_with_masks" / "clevr_with_masks-train-with-label" / "labels" / "00000001_instances.json"
    record = json.loads(json_path.read_text())
    record["visibility"][3] = 0.0  # scene 1 now has two objects
    json_path.write_text(json.dumps(record))
    assert len(ClevrWithMasksDataset(root, split="train", max_objects_in_scene=3)) == 3
    kept = ClevrWithMasksDataset(root, split="train", max_objects_in_scene=2)
    assert [f.name for f in kept.frames] == [items[1].image_path.name]
    with pytest.raises(FileNotFoundError, match="at most 1"):
        ClevrWithMasksDataset(root, split="train", max_objects_in_scene=1)


def test_clevr_wrong_image_size_raises(tmp_path):
    (item,) = fixtures.write_clevr(tmp_path, num_images=1)
    Image.fromarray(item.image[:200]).save(item.image_path)
    with pytest.raises(ValueError, match=str(item.image_path)):
        ClevrWithMasksDataset(tmp_path, split="train")[0]


# ---------------------------------------------------------------------------------------------
# CLEVRTex
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clevrtex(tmp_path_factory):
    root = tmp_path_factory.mktemp("clevrtex")
    return root, fixtures.write_clevrtex(root, num_images=10)


def _expected_labels(truth: fixtures.FixtureItem) -> dict[str, torch.Tensor]:
    labels = {}
    for name, classes in CLEVRTEX_CLASSES.items():
        labels[name] = torch.full((10,), -1, dtype=torch.int64)
        labels[name][:4] = torch.tensor([classes.index(o[name]) for o in truth.objects])
    labels["rotation"] = torch.zeros(10, 1)
    labels["rotation"][:4, 0] = torch.tensor([o["rotation"] for o in truth.objects])
    coords = np.array([o["pixel_coords"][:2] for o in truth.objects])
    labels["pixel_coords"] = torch.zeros(10, 2)
    labels["pixel_coords"][:4] = torch.from_numpy((coords - [160, 120]) / [160, 120]).float()
    return labels


@pytest.mark.parametrize(
    "split, indices", [("test", [0]), ("val", [1]), ("train", list(range(2, 10))), (None, list(range(10)))]
)
def test_clevrtex_official_splits(clevrtex, split, indices):
    root, items = clevrtex
    dataset = ClevrTexDataset(root, split=split)
    assert dataset.images == [items[i].image_path for i in indices]


def test_clevrtex_official_crop(clevrtex):
    root, items = clevrtex
    dataset = ClevrTexDataset(root / "clevrtex_full", split=None, crop="official", resolution=128)
    assert dataset.property_kinds == CLEVRTEX_PROPERTIES
    for index in (0, 1):  # RGBA, then RGB
        truth, item = items[index], dataset[index]
        expected = crop_then_nearest(truth.ids, (24, 216), (64, 256), 128)
        assert torch.equal(item["masks"], torch.from_numpy(expected))
        assert_quadrants(item["pixel_values"], truth.extra["colours"])
        assert torch.equal(item["visible"], torch.tensor([True] + truth.visible + [False] * 6))
        for name, value in _expected_labels(truth).items():
            torch.testing.assert_close(item["labels"][name], value, rtol=0, atol=1e-6)


def test_clevrtex_lsd_crop(clevrtex):
    root, items = clevrtex
    item = ClevrTexDataset(root, split=None, crop="lsd", resolution=240)[0]
    truth = items[0]
    assert torch.equal(item["masks"], torch.from_numpy(truth.ids[:, 40:280]))
    torch.testing.assert_close(item["pixel_values"], model_range(truth.image[:, 40:280]), rtol=0, atol=1e-6)
    # index 3 lies in cols 44..60: inside the LSD crop, outside the official one
    assert torch.equal(item["visible"], torch.tensor([True] + truth.extra["visible_lsd"] + [False] * 6))
    small = ClevrTexDataset(root, split=None, crop="lsd", resolution=128)[0]
    assert small["pixel_values"].shape == (3, 128, 128) and small["masks"].shape == (240, 240)


def test_clevrtex_palette_png_is_read_as_raw_indices(clevrtex):
    root, items = clevrtex
    flat_path = items[0].image_path.with_name(items[0].image_path.stem + "_flat.png")
    with Image.open(flat_path) as flat:
        assert flat.mode == "P"
        as_colours = np.asarray(flat.convert("L"))
    assert not np.array_equal(as_colours, items[0].ids)  # reading colours would be wrong
    item = ClevrTexDataset(root, split=None, crop="lsd", resolution=240)[0]
    assert torch.equal(item["masks"], torch.from_numpy(items[0].ids[:, 40:280]))


def test_clevrtex_unknown_crop_raises(clevrtex):
    root, _ = clevrtex
    with pytest.raises(ValueError, match="crop"):
        ClevrTexDataset(root, crop="centre")


@pytest.fixture
def one_scene(tmp_path):
    (item,) = fixtures.write_clevrtex(tmp_path, num_images=1)
    stem = item.image_path.with_suffix("")
    return tmp_path, item, stem.with_name(stem.name + "_flat.png"), stem.with_suffix(".json")


def _read_scene(root):
    return ClevrTexDataset(root, split=None)[0]


def test_clevrtex_rgb_flat_png_raises(one_scene):
    root, item, flat_path, _ = one_scene
    Image.fromarray(np.stack([item.ids.astype(np.uint8)] * 3, axis=-1)).save(flat_path)
    with pytest.raises(ValueError, match=f"{flat_path}.*'RGB'"):
        _read_scene(root)


def test_clevrtex_missing_json_raises(one_scene):
    root, _, _, json_path = one_scene
    json_path.unlink()
    with pytest.raises(FileNotFoundError, match=str(json_path)):
        _read_scene(root)


def test_clevrtex_truncated_flat_png_raises(one_scene):
    root, _, flat_path, _ = one_scene
    data = flat_path.read_bytes()
    flat_path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=str(flat_path)):
        _read_scene(root)


def test_clevrtex_size_mismatch_raises(one_scene):
    root, item, flat_path, _ = one_scene
    Image.fromarray(item.ids[:100].astype(np.uint8), mode="L").save(flat_path)
    with pytest.raises(ValueError, match=f"{flat_path}.*{item.image_path}"):
        _read_scene(root)


def test_clevrtex_unknown_material_raises(one_scene):
    root, _, _, json_path = one_scene
    record = json.loads(json_path.read_text())
    record["objects"][0]["material"] = "plastic"
    json_path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=f"{json_path}.*plastic"):
        _read_scene(root)


def test_clevrtex_mask_id_without_object_raises(one_scene):
    root, _, flat_path, json_path = one_scene
    record = json.loads(json_path.read_text())
    record["objects"] = [o for o in record["objects"] if o["index"] != 2]
    json_path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match=f"{flat_path}.*\\[2\\]"):
        _read_scene(root)


def test_clevrtex_missing_folder_and_empty_split_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ClevrTexDataset(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        ClevrTexDataset(tmp_path)
    fixtures.write_clevrtex(tmp_path, num_images=3)
    with pytest.raises(FileNotFoundError, match="empty"):
        ClevrTexDataset(tmp_path, split="test")  # int(0.1 * 3) == 0 scenes
