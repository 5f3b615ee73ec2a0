import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from lsd.evaluation import build_dataset, evaluate, slot_noise
from lsd.evaluation.evaluate import _score
from lsd.metrics import SegmentationAccumulator, collect_matched, fit_property_probes, match_slots, segmentation_scores

from .conftest import NUM_IMAGES


def _whole_set(dataset, count=None):
    """Every item of ``dataset`` stacked into one batch."""
    items = [dataset[i] for i in range(len(dataset) if count is None else count)]
    return {
        "pixel_values": torch.stack([it["pixel_values"] for it in items]),
        "masks": torch.stack([it["masks"] for it in items]),
        "visible": torch.stack([it["visible"] for it in items]),
        "labels": {name: torch.stack([it["labels"][name] for it in items]) for name in dataset.property_kinds},
    }


def test_dataset_reads_32px_images_and_keeps_stored_masks(dataset):
    item = dataset[0]
    assert len(dataset) == NUM_IMAGES
    assert item["pixel_values"].shape == (3, 32, 32)
    assert item["masks"].shape == (32, 32)
    assert item["visible"].shape == (dataset.max_num_objects + 1,)


@pytest.mark.parametrize(("matching", "ties"), [("cosine", "canonical"), ("iou", "release")])
def test_results_equal_scoring_the_whole_set_directly(model, dataset, matching, ties):
    probe_steps = 5
    result = evaluate(
        model, dataset, batch_size=4, seed=3, matching=matching, ties=ties, probe_steps=probe_steps, progress=False
    )

    # independent path: one forward pass over all images, then the metrics functions directly
    batch = _whole_set(dataset)
    config = model.slot_attention.config
    noise = slot_noise(3, range(NUM_IMAGES), config.num_slots, config.slot_size)
    with torch.no_grad():
        encoding = model.encode(batch["pixel_values"], noise=noise)
    pred = model.segment(batch["pixel_values"], (32, 32), noise=noise)
    options = dict(num_slots=config.num_slots, matching=matching, ties=ties, max_num_obj=dataset.max_num_objects)
    expected = segmentation_scores(batch["masks"], pred, visible=batch["visible"], **options)
    assert result.metrics == expected
    assert not any(math.isnan(v) for v in expected.values())
    assert torch.equal(result.examples["pred"], pred[:4])
    assert torch.equal(result.examples["masks"], batch["masks"][:4])

    pairs = match_slots(batch["masks"], pred, visible=batch["visible"], **options)
    slots, labels = collect_matched(encoding.slots, pairs, batch["labels"], label_offset=1)
    assert result.num_matched_objects == slots.shape[0] > 0
    assert result.num_scored_objects == int(batch["visible"][:, 1:].sum())
    probes = fit_property_probes(slots, labels, dataset.property_kinds, steps=probe_steps)
    # the slot vectors of a batch of 4 and of the whole set can differ in the last float bits
    assert result.probes.keys() == probes.keys()
    for name, value in probes.items():
        assert result.probes[name] == pytest.approx(value, rel=1e-5), name
    assert set(result.probes) == {"category", "image_positions", "bboxes_3d", "scale"}
    assert result.num_images == NUM_IMAGES and result.num_slots == 4


def test_same_seed_gives_identical_results_whatever_the_batch_size(model, dataset):
    def run(seed, batch_size):
        result = evaluate(model, dataset, batch_size=batch_size, seed=seed, probe_steps=5, progress=False)
        record = result.to_dict()
        record.pop("seconds")
        return record, result.examples["pred"]

    first, pred = run(7, 4)
    again, pred_again = run(7, 4)
    one_batch, _ = run(7, NUM_IMAGES)
    assert first == again  # bitwise: same seed, same batching
    # Another batching gives the same segmentation exactly; the slot vectors can differ in the last
    # float bits (CPU kernels reduce differently per batch shape), so the fitted probes agree to 1e-5.
    probes, probes_one_batch = first.pop("probes"), one_batch.pop("probes")
    assert first == one_batch
    assert probes.keys() == probes_one_batch.keys()
    for name, probe in probes.items():
        assert probe["value"] == pytest.approx(probes_one_batch[name]["value"], rel=1e-5), name
    assert torch.equal(pred, pred_again)
    _, other_pred = run(8, 4)
    assert not torch.equal(pred, other_pred)  # the seed does drive the slot initialisation


def test_slot_noise_depends_only_on_seed_and_image_index():
    full = slot_noise(5, range(4), 3, 8)
    assert full.shape == (4, 3, 8) and full.dtype == torch.float32
    assert torch.equal(slot_noise(5, [2, 3], 3, 8), full[2:])
    assert not torch.equal(slot_noise(6, range(4), 3, 8), full)
    with pytest.raises(ValueError, match="seed"):
        slot_noise(-1, [0], 3, 8)


def test_max_images_scores_the_first_images(model, dataset):
    result = evaluate(model, dataset, batch_size=2, seed=1, max_images=3, probe_steps=0, progress=False)
    batch = _whole_set(dataset, 3)
    config = model.slot_attention.config
    pred = model.segment(batch["pixel_values"], (32, 32), noise=slot_noise(1, range(3), 4, config.slot_size))
    expected = segmentation_scores(
        batch["masks"], pred, num_slots=4, visible=batch["visible"], max_num_obj=dataset.max_num_objects
    )
    assert result.num_images == 3 and result.metrics == expected
    assert result.probes == {} and "probe_steps=0" in result.probe_note


def test_bad_arguments_are_clear_errors(model, dataset):
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(model, dataset, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="seed"):
        evaluate(model, dataset, seed=-2, progress=False)
    with pytest.raises(ValueError, match="matching"):
        evaluate(model, dataset, matching="dice", probe_steps=0, progress=False)
    with pytest.raises(ValueError, match="unknown dataset 'mnist'.*movi-e"):
        build_dataset("mnist", dataset.folder, resolution=32)


def _dinosaur_oracle(true, pred, ignore, num_slots):
    """Per image, FG-ARI (sklearn) and mean best overlap with ignored pixels removed from both masks."""
    aris, mbos = [], []
    for t, p, ign in zip(true.numpy(), pred.numpy(), ignore.numpy(), strict=True):
        keep = ~ign
        fg = keep & (t > 0)
        aris.append(adjusted_rand_score(t[fg], p[fg]))
        overlaps = []
        for obj in np.unique(t[keep]):
            if obj == 0:
                continue
            gt = (t == obj) & keep
            ious = [((gt & (p == s) & keep).sum()) / ((gt | ((p == s) & keep)).sum()) for s in range(num_slots)]
            overlaps.append(max(ious))
        if overlaps:
            mbos.append(np.mean(overlaps))
    return float(np.mean(aris)), float(np.mean(mbos))


def test_ignored_pixels_leave_every_score_as_if_removed_from_both_masks():
    gen = torch.Generator().manual_seed(0)
    true = torch.randint(0, 4, (3, 12, 12), generator=gen)
    pred = torch.randint(0, 3, (3, 12, 12), generator=gen)
    ignore = torch.rand(3, 12, 12, generator=gen) < 0.3
    ignore[2, :, :6] = True  # the whole left half of image 2, and object 3 with it
    true[2, :, :6] = 3
    true[2, :, 6:][true[2, :, 6:] == 3] = 1
    visible = torch.ones(3, 6, dtype=torch.bool)
    visible[:, 4:] = False
    accumulator = SegmentationAccumulator(3, max_num_obj=5)
    pairs, scored = _score(accumulator, true, pred, visible, ignore)
    scores = accumulator.compute()
    fg_ari, mbo_image = _dinosaur_oracle(true, pred, ignore, 3)
    assert scores["fg_ari"] == pytest.approx(fg_ari, abs=1e-12)
    assert scores["mbo_image"] == pytest.approx(mbo_image, abs=1e-12)
    assert len(pairs) == 3 and scored == 3 + 3 + 2  # object 3 of image 2 lost all its pixels


def test_coco_items_with_ignore_masks_evaluate(model, tmp_path):
    from lsd.data.fixtures import write_coco

    write_coco(tmp_path)
    dataset = build_dataset("coco", tmp_path, split="validation", resolution=32)
    result = evaluate(model, dataset, batch_size=2, seed=4, probe_steps=2, progress=False)
    assert result.num_images == 3
    assert result.conventions["ignored_pixels"] is not None
    assert set(result.probe_kinds) == {"category"}

    items = [dataset[i] for i in range(3)]
    assert items[1]["ignore"].any()  # image 7: two instances overlap
    noise = slot_noise(4, range(3), 4, model.slot_attention.config.slot_size)
    pred = model.segment(torch.stack([it["pixel_values"] for it in items]), (320, 320), noise=noise)
    true, ignore = torch.stack([it["masks"] for it in items]), torch.stack([it["ignore"] for it in items])
    fg_ari, mbo_image = _dinosaur_oracle(true, pred, ignore, 4)
    assert result.metrics["fg_ari"] == pytest.approx(fg_ari, abs=1e-12)
    assert result.metrics["mbo_image"] == pytest.approx(mbo_image, abs=1e-12)


def test_a_dinov2_backbone_gets_the_imagenet_normalised_view():
    transformers = pytest.importorskip("transformers")
    from types import SimpleNamespace

    from PIL import Image

    from lsd.data.transforms import dinov2_view, to_model_range
    from lsd.evaluation import input_resolution
    from lsd.evaluation.evaluate import backbone_view
    from lsd.models.dinov2 import DINOv2Backbone

    config = transformers.Dinov2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=14, image_size=28
    )
    model = SimpleNamespace(backbone=DINOv2Backbone(dinov2_config=config.to_dict(), input_resolution=28))
    assert input_resolution(model) == 28
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8))
    view = backbone_view(model, to_model_range(image)[None])
    torch.testing.assert_close(view[0], dinov2_view(image, 28), rtol=0, atol=1e-5)
    assert backbone_view(SimpleNamespace(backbone=torch.nn.Identity()), view) is None


def test_evaluate_segmenter_scores_any_segmenter_like_slots(dataset):
    from lsd.evaluation import evaluate_segmenter

    truth = _whole_set(dataset)["masks"]  # (N, H, W) GT ids, 0 = background
    num_ids = int(truth.max()) + 1

    def oracle(pixels, indices):  # the ground truth itself
        return truth[list(indices)]

    def half(pixels, indices):  # the ground truth at half size, resized back with nearest neighbours
        return truth[list(indices)][:, ::2, ::2]

    perfect = evaluate_segmenter(oracle, dataset, num_segments=num_ids, batch_size=3, progress=False)
    assert perfect.metrics["fg_ari"] == pytest.approx(1.0) and perfect.metrics["mbo"] == pytest.approx(1.0)
    coarse = evaluate_segmenter(half, dataset, num_segments=num_ids, batch_size=3, progress=False)
    upsampled = truth[:, ::2, ::2].repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)  # nearest, by hand
    whole = _whole_set(dataset)
    expected = segmentation_scores(
        truth, upsampled, num_slots=num_ids, visible=whole["visible"], max_num_obj=dataset.max_num_objects
    )
    assert coarse.metrics == expected  # scored exactly as slots are scored
    assert perfect.probes == {} and perfect.num_images == NUM_IMAGES

    with pytest.raises(ValueError, match=r"outside \[0, 2\)"):
        evaluate_segmenter(oracle, dataset, num_segments=2, progress=False)
    with pytest.raises(ValueError, match="returned"):
        evaluate_segmenter(
            lambda px, idx: torch.zeros(1, 4, 4, dtype=torch.long), dataset, num_segments=2, batch_size=2
        )
