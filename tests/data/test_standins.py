"""Stand-ins are written in each dataset's real layout: the REAL reader reads back exactly what the
scene renderer drew (truth re-rendered here from lsd.data.synthetic / render_face), deterministically."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from lsd.data import synthetic
from lsd.data.clevrtex import CLEVRTEX_CLASSES
from lsd.data.readers import open_dataset
from lsd.data.standins import (
    CLEVR_LEVEL,
    CLEVRTEX_SHAPE_OF,
    FFHQ_STANDIN_PARTS,
    FFHQPartsDataset,
    StandinSpec,
    coco_scene,
    render_face,
    standin_reader_root,
    write_standin,
)


def _pixels(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1).float() / 127.5 - 1


def _write(tmp_path, kind: str, num_train: int = 6, num_validation: int = 3, **kw):
    folder = write_standin(tmp_path, StandinSpec(kind, num_train, num_validation, **kw), progress=False)
    return folder, standin_reader_root(folder)


def test_movi_c_standin_is_the_release_dump_layout_of_the_medium_scenes(tmp_path):
    _, root = _write(tmp_path, "movi-c")
    assert (root / "movi-c" / "movi-c-train-with-label" / "images").is_dir()
    dataset = open_dataset("movi-c", root, split="validation", resolution=64)
    assert len(dataset) == 3
    for i in range(3):
        image, segment, instances = synthetic.render_scene(0, "validation", i, 64, "medium")
        item = dataset[i]
        assert torch.equal(item["pixel_values"], _pixels(image))
        assert torch.equal(item["masks"], torch.from_numpy(segment.astype(np.int64)))
        cats = item["labels"]["category"][: len(instances)].tolist()
        assert cats == [inst["category"] for inst in instances]


def test_clevr_standin_reads_back_through_the_clevr_crop_with_one_based_codes(tmp_path):
    _, root = _write(tmp_path, "clevr")
    dataset = open_dataset("clevr", root, split="train", resolution=192)  # 192: the crop, not resized
    assert len(dataset) == 6
    for i in (0, 5):
        image, segment, instances = synthetic.render_scene(0, "train", i, 192, CLEVR_LEVEL)
        item = dataset[i]
        assert torch.allclose(item["pixel_values"], _pixels(image))
        want = np.asarray(Image.fromarray(segment).resize((128, 128), Image.NEAREST)).astype(np.int64)
        assert torch.equal(item["masks"], torch.from_numpy(want))
        k = len(instances)
        assert item["labels"]["color"][:k].tolist() == [inst["color_id"] + 1 for inst in instances]
        assert item["labels"]["shape"][:k].tolist() == [inst["category"] + 1 for inst in instances]
        assert item["visible"][1 : k + 1].tolist() == [inst["visibility"] > 0 and bool((want == j).any())
                                                       for j, inst in enumerate(instances, start=1)]  # fmt: skip
        assert not item["visible"][k + 1 :].any()  # padding entities are never scored


def test_clevrtex_standin_splits_by_index_fraction_and_names_classes(tmp_path):
    _, root = _write(tmp_path, "clevrtex", num_train=16, num_validation=3)
    train = open_dataset("clevrtex", root, split="train", resolution=64)
    validation = open_dataset("clevrtex", root, split="validation", resolution=64)
    assert len(train) >= 16 and len(validation) >= 3
    total = len(list((root / "clevrtex_full").glob("*/CLEVRTEX_full_??????.png")))
    first_val = int(0.1 * total)  # the official fraction: validation starts at 10 % of the indices
    image, segment, instances = synthetic.render_scene(0, "train", first_val, 240, "medium")
    item = validation[0]
    assert torch.equal(item["masks"], torch.from_numpy(segment.astype(np.int64)))  # LSD crop: 240 x 240, raw ids
    shapes = [CLEVRTEX_CLASSES["shape"].index(CLEVRTEX_SHAPE_OF[synthetic.SHAPES[i["category"]]]) for i in instances]
    assert item["labels"]["shape"][: len(instances)].tolist() == shapes
    flat = next((root / "clevrtex_full").glob("*/*_flat.png"))
    assert Image.open(flat).mode == "P"  # indices, not colours


def test_ffhq_standin_is_read_by_the_real_ffhq_reader_and_its_parts_beside_it(tmp_path):
    _, root = _write(tmp_path, "ffhq", num_train=5, num_validation=2)
    assert root.name == "images1024x1024" and (root / "00000" / "00004.png").is_file()
    train = open_dataset("ffhq", root, split="train", resolution=64, ffhq_num_train=5)
    assert len(train) == 5
    parts = FFHQPartsDataset(root, "validation", resolution=64, num_train=5)
    assert len(parts) == 2 and parts.max_num_objects == len(FFHQ_STANDIN_PARTS)
    image, ids = render_face(0, 5, 64)  # the first validation face is face 5
    item = parts[0]
    assert torch.equal(item["pixel_values"], _pixels(image))
    assert torch.equal(item["masks"], torch.from_numpy(ids.astype(np.int64)))
    assert item["visible"].tolist() == [bool((ids == j).any()) for j in range(len(FFHQ_STANDIN_PARTS) + 1)]
    assert item["visible"][1:].sum() >= 6  # skin, eyes, brows, nose, mouth at least
    plain = tmp_path / "plain" / "images1024x1024" / "00000"  # FFHQ images without part labels
    plain.mkdir(parents=True)
    Image.fromarray(image).save(plain / "00000.png")
    with pytest.raises(FileNotFoundError, match="parts.json"):
        FFHQPartsDataset(plain.parent, "train", 64, 1)


def test_coco_standin_has_overlapping_instances_crowds_dropped_and_the_ignore_mask(tmp_path):
    folder, root = _write(tmp_path, "coco", num_train=4, num_validation=8)
    dataset = open_dataset("coco", root, split="validation", resolution=64)
    record = json.loads((folder / "annotations" / "instances_val2017.json").read_text())
    assert any(a["iscrowd"] for a in record["annotations"])
    overlapping = 0
    for i in range(len(dataset)):
        image, amodal, categories, ids = coco_scene(0, "validation", i)
        item = dataset[i]
        assert item["visible"][1 : len(amodal) + 1].all() or min(m.sum() for m in amodal) < 4  # crowd not counted
        assert not item["visible"][len(amodal) + 1 :].any()
        covered = np.sum(amodal, axis=0) > 1
        overlapping += bool(covered.any())
        assert bool(item["ignore"].any()) == bool(covered.any())
        assert item["labels"]["category"][: len(amodal)].tolist() == categories
    assert overlapping >= len(dataset) // 2


def test_same_spec_gives_identical_bytes_and_is_reused(tmp_path):
    def digest(folder):
        return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip

    a, _ = _write(tmp_path / "a", "coco", 2, 2)
    b, _ = _write(tmp_path / "b", "coco", 2, 2)
    assert digest(a) == digest(b)
    stamp = (a / "standin_spec.json").stat().st_mtime_ns
    assert _write(tmp_path / "a", "coco", 2, 2)[0] == a and (a / "standin_spec.json").stat().st_mtime_ns == stamp
    (a / "standin_spec.json").write_text(json.dumps({"kind": "coco", "num_train": 2, "num_validation": 2, "seed": 9,
                                                     "resolution": 64}))  # fmt: skip
    with pytest.raises(FileExistsError, match="different stand-in"):
        _write(tmp_path / "a", "coco", 2, 2)
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary folders left behind


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"kind": "imagenet"}, "kind='imagenet'"), ({"num_train": 0}, "num_train=0"), ({"seed": -1}, "seed=-1"),
     ({"resolution": True}, "resolution=True")],
)  # fmt: skip
def test_bad_spec_fields_are_named(fields, message):
    values = {"kind": "clevr", "num_train": 2, "num_validation": 2} | fields
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        StandinSpec(**values)
