"""Every reader returns the typed sample of lsd.data.sample: its required keys, no undeclared key,
tensors where tensors are declared; and default collation makes the declared batch."""

from __future__ import annotations

import torch
from torch.utils.data import default_collate

from lsd.data import fixtures
from lsd.data.sample import ImageBatch, ImageSample, LabelledBatch, LabelledSample


def _readers(root):
    from lsd.data.clevr import ClevrWithMasksDataset
    from lsd.data.clevrtex import ClevrTexDataset
    from lsd.data.coco import CocoDataset
    from lsd.data.ffhq import FFHQDataset
    from lsd.data.movi import MoviDataset

    fixtures.write_movi(root / "movi")
    fixtures.write_clevr(root / "clevr", split="train")
    fixtures.write_clevrtex(root / "clevrtex", num_images=10)
    fixtures.write_coco(root / "coco")
    fixtures.write_ffhq(root / "ffhq")
    return {
        "movi": (MoviDataset(root / "movi", "validation", name="movi-e", resolution=16), LabelledSample, LabelledBatch),
        "clevr": (ClevrWithMasksDataset(root / "clevr", split="train", resolution=16), LabelledSample, LabelledBatch),
        "clevrtex": (ClevrTexDataset(root / "clevrtex", split=None, resolution=16), LabelledSample, LabelledBatch),
        "coco": (CocoDataset(root / "coco", "val", resolution=16), LabelledSample, LabelledBatch),
        "ffhq": (FFHQDataset(root / "ffhq", resolution=16, dinov2_resolution=14), ImageSample, ImageBatch),
    }


def _check(value: dict, kind, name: str) -> None:
    keys = set(value)
    missing = kind.__required_keys__ - keys
    extra = keys - kind.__required_keys__ - kind.__optional_keys__
    assert not missing and not extra, f"{name}: missing {sorted(missing)}, undeclared {sorted(extra)}"


def test_every_reader_returns_its_typed_sample(tmp_path):
    for name, (dataset, sample_kind, batch_kind) in _readers(tmp_path).items():
        item = dataset[0]
        _check(item, sample_kind, name)
        assert item["pixel_values"].dtype == torch.float32 and item["pixel_values"].shape[0] == 3, name
        assert isinstance(item["index"], int), name
        if sample_kind is LabelledSample:
            assert item["masks"].dtype == torch.int64 and item["visible"].dtype == torch.bool, name
            assert all(isinstance(v, torch.Tensor) for v in item["labels"].values()), name
        batch = default_collate([dataset[0], dataset[1]])
        _check(batch, batch_kind, f"{name} batch")
        assert batch["pixel_values"].shape[0] == 2 and batch["index"].tolist() == [0, 1], name


def test_the_sample_keys_are_those_the_docs_name():
    assert ImageSample.__required_keys__ == {"pixel_values", "index"}
    assert LabelledSample.__required_keys__ == {"pixel_values", "index", "masks", "visible", "labels"}
    assert LabelledSample.__optional_keys__ == {"backbone_pixel_values", "ignore"}
    assert set(ImageBatch.__required_keys__) == set(ImageSample.__required_keys__)
    assert LabelledBatch.__optional_keys__ == LabelledSample.__optional_keys__
