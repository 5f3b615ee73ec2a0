"""COCO class masks (mBO^c / mIoU^c) and the mask-resolution option, end to end through the reader.

The fixture (``lsd.data.fixtures.write_coco(shared_category=True)``) has an image whose first and
third instances share category 1: an oracle that puts every instance in its own segment scores
instance mBO 1 but class mBO < 1 there, and the class value is restated here from the masks.
"""

import numpy as np
import pytest
import torch

from lsd.data import fixtures
from lsd.data.coco import CocoDataset
from lsd.data.transforms import resize_label_maps
from lsd.evaluation import evaluate_segmenter


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco-shared")
    fixtures.write_coco(root, shared_category=True)
    return CocoDataset(root, split="val", resolution=32)


def oracle(dataset, size=None):
    """A segmenter that returns the GT instance ids (at ``size``): segment ids 0..K."""

    def segment(pixels, indices):
        masks = torch.stack([dataset[i]["masks"] for i in indices])
        return masks if size is None else resize_label_maps(masks, size)

    return segment


def plain_image_mbo(maps):
    """Per image, mean over its segments (ignored pixels left out) of the best IoU of an oracle
    prediction that is the instance map itself; then the mean over images with a segment."""
    per_image = []
    for segments, instances, ignore in maps:
        keep = ~ignore
        segments, instances = segments[keep], instances[keep]
        ids = [i for i in np.unique(segments) if i != 0]
        if not ids:
            continue
        best = []
        for i in ids:
            gt = segments == i
            ious = [np.sum(gt & (instances == s)) / np.sum(gt | (instances == s)) for s in np.unique(instances)]
            best.append(max(ious))
        per_image.append(np.mean(best))
    return float(np.mean(per_image))


def test_class_and_instance_mbo_differ_on_the_shared_category_fixture(coco):
    result = evaluate_segmenter(oracle(coco), coco, num_segments=4, progress=False)
    metrics = result.metrics
    assert metrics["mbo_image"] == 1.0 and metrics["mbo"] == 1.0 and metrics["fg_ari"] == 1.0
    items = [coco[i] for i in range(len(coco))]
    class_maps = []
    for item in items:
        lookup = torch.cat([torch.zeros(1, dtype=torch.int64), item["labels"]["category"].clamp_min(0)])
        class_maps.append((lookup[item["masks"]].numpy(), item["masks"].numpy(), item["ignore"].numpy()))
    expected = plain_image_mbo(class_maps)
    assert expected < 1.0
    assert metrics["mbo_class_image"] == pytest.approx(expected, abs=1e-12)
    assert metrics["mbo_class_image"] < metrics["mbo_image"]
    assert result.conventions["class_masks"].startswith("instances merged by their 'category' label")
    assert result.conventions["mask_resolution"] == "native"


def test_without_a_shared_category_class_and_instance_scores_agree(tmp_path):
    fixtures.write_coco(tmp_path)
    dataset = CocoDataset(tmp_path, split="val", resolution=32)
    metrics = evaluate_segmenter(oracle(dataset), dataset, num_segments=4, progress=False).metrics
    for key in ("mbo", "miou", "mbo_image", "miou_image"):
        assert metrics[key.replace("mbo", "mbo_class").replace("miou", "miou_class")] == metrics[key] == 1.0


def test_class_masks_can_be_switched_off(coco):
    metrics = evaluate_segmenter(oracle(coco), coco, num_segments=4, progress=False, class_label=None).metrics
    assert "mbo_class_image" not in metrics and "ari" in metrics


def test_mask_resolution_224_scores_resized_ground_truth(coco):
    native = evaluate_segmenter(oracle(coco), coco, num_segments=4, progress=False, num_examples=3)
    result = evaluate_segmenter(
        oracle(coco, 224), coco, num_segments=4, progress=False, mask_resolution=224, num_examples=3
    )
    assert result.conventions["mask_resolution"] == 224
    assert "224 x 224" in result.conventions["mask_resolution_protocol"]
    assert result.examples["masks"].shape == (3, 224, 224)
    expected = resize_label_maps(native.examples["masks"], 224)
    assert torch.equal(result.examples["masks"], expected)
    # the oracle, resized the same way, is still perfect on instances
    assert result.metrics["mbo_image"] == 1.0 and result.metrics["fg_ari"] == 1.0


def test_bad_options_fail_before_scoring(coco):
    with pytest.raises(ValueError, match="mask_resolution"):
        evaluate_segmenter(oracle(coco), coco, num_segments=4, progress=False, mask_resolution=0)
    with pytest.raises(ValueError, match="class_label"):
        evaluate_segmenter(oracle(coco), coco, num_segments=4, progress=False, class_label="colour")


def test_an_object_lost_by_the_resize_is_no_longer_scored():
    from lsd.evaluation.evaluate import _resized

    masks = torch.zeros(1, 8, 8, dtype=torch.int64)
    masks[0, :4] = 1
    masks[0, 6, 6] = 2  # one pixel: nearest to 4 x 4 samples rows and columns 1, 3, 5, 7 only
    batch = {"masks": masks, "visible": torch.tensor([[True, True, True]]), "pixel_values": torch.zeros(1, 3, 8, 8)}
    resized = _resized(batch, 4)
    assert resized["masks"].shape == (1, 4, 4) and 2 not in resized["masks"]
    assert resized["visible"].tolist() == [[True, True, False]]
    assert batch["masks"] is masks  # the reader's batch is not modified
