"""ARI with background, class masks (mBO^c / mIoU^c) and the mask-resolution transform.

Each score is checked against a plain restatement of its definition (loops over images, ids and
slots; sklearn for ARI) on random label maps, plus properties that must hold whatever the input.
"""

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from sklearn.metrics import adjusted_rand_score

from lsd.data.transforms import resize_label_maps
from lsd.metrics import ari, class_label_maps, segmentation_scores


@st.composite
def segmentations(draw, max_batch=3, max_side=6, max_obj=4, max_slots=4):
    shape = (draw(st.integers(1, max_batch)), draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))
    num_slots = draw(st.integers(1, max_slots))
    true = draw(arrays(np.int64, shape, elements=st.integers(0, max_obj)))
    pred = draw(arrays(np.int64, shape, elements=st.integers(0, num_slots - 1)))
    return torch.from_numpy(true), torch.from_numpy(pred), num_slots


@st.composite
def categorised(draw, max_obj=4, num_categories=3):
    """A segmentation and, per image, a category (1..num_categories) for every instance id."""
    true, pred, num_slots = draw(segmentations(max_obj=max_obj))
    cats = draw(arrays(np.int64, (true.shape[0], max_obj), elements=st.integers(1, num_categories)))
    return true, pred, num_slots, torch.from_numpy(cats)


# -- plain restatements of the definitions ---------------------------------------------------------


def plain_ari(true, pred):
    return [adjusted_rand_score(t.ravel().numpy(), p.ravel().numpy()) for t, p in zip(true, pred, strict=True)]


def plain_class_maps(true, cats):
    out = np.zeros(true.shape, dtype=np.int64)
    for b in range(true.shape[0]):
        for y in range(true.shape[1]):
            for x in range(true.shape[2]):
                j = int(true[b, y, x])
                out[b, y, x] = 0 if j == 0 else int(cats[b, j - 1])
    return out


def plain_iou(a, b):
    union = np.logical_or(a, b).sum()
    return np.logical_and(a, b).sum() / union if union else 0.0


def plain_image_mbo(true, pred, num_slots):
    """DINOSAUR / SPOT's mBO: per image, mean over its segments of the best IoU with any slot."""
    per_image = []
    for t, p in zip(np.asarray(true), np.asarray(pred), strict=True):
        ids = [i for i in np.unique(t) if i != 0]
        if ids:
            per_image.append(np.mean([max(plain_iou(t == i, p == s) for s in range(num_slots)) for i in ids]))
    return float(np.mean(per_image)) if per_image else math.nan


def plain_image_miou_iou_matching(true, pred, num_slots):
    """Per image: the largest total IoU of a one-to-one (segment, slot) matching, over its pairs."""
    per_image = []
    for t, p in zip(np.asarray(true), np.asarray(pred), strict=True):
        ids = [i for i in np.unique(t) if i != 0]
        if not ids:
            continue
        iou = np.array([[plain_iou(t == i, p == s) for s in range(num_slots)] for i in ids])
        pairs = min(len(ids), num_slots)
        best = max(
            sum(iou[r, c] for r, c in zip(rows, cols, strict=True))
            for rows in itertools.combinations(range(len(ids)), pairs)
            for cols in itertools.permutations(range(num_slots), pairs)
        )
        per_image.append(best / pairs)
    return float(np.mean(per_image)) if per_image else math.nan


# -- ARI with background ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(segmentations(max_obj=5, max_slots=6))
def test_ari_equals_sklearn_over_every_pixel(seg):
    true, pred, _ = seg
    np.testing.assert_allclose(ari(true, pred).numpy(), plain_ari(true, pred), rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(segmentations())
def test_dataset_ari_is_the_mean_of_per_image_ari(seg):
    true, pred, num_slots = seg
    scores = segmentation_scores(true, pred, num_slots=num_slots)
    assert scores["ari"] == pytest.approx(float(np.mean(plain_ari(true, pred))), abs=1e-12)


def test_ari_counts_the_background_fg_ari_does_not():
    # objects perfectly separated, but the background split over two slots: FG-ARI 1, ARI < 1
    true = torch.tensor([[[1, 1, 0, 0], [2, 2, 0, 0]]])
    pred = torch.tensor([[[0, 0, 2, 3], [1, 1, 2, 3]]])
    scores = segmentation_scores(true, pred, num_slots=4)
    assert scores["fg_ari"] == 1.0
    assert scores["ari"] == pytest.approx(adjusted_rand_score(true.ravel(), pred.ravel()), abs=1e-15)
    assert scores["ari"] < 1.0
    assert ari(true, true).item() == 1.0


# -- class masks -----------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(categorised())
def test_class_maps_equal_the_plain_lookup(case):
    true, _, _, cats = case
    np.testing.assert_array_equal(class_label_maps(true, cats).numpy(), plain_class_maps(true.numpy(), cats.numpy()))


@settings(max_examples=60, deadline=None)
@given(categorised())
def test_class_mbo_and_miou_equal_plain_restatements(case):
    true, pred, num_slots, cats = case
    classes = class_label_maps(true, cats)
    scores = segmentation_scores(classes, pred, num_slots=num_slots, matching="iou")
    expected_mbo = plain_image_mbo(classes.numpy(), pred.numpy(), num_slots)
    expected_miou = plain_image_miou_iou_matching(classes.numpy(), pred.numpy(), num_slots)
    for key, expected in (("mbo_image", expected_mbo), ("miou_image", expected_miou)):
        if math.isnan(expected):
            assert math.isnan(scores[key]), key
        else:
            assert scores[key] == pytest.approx(expected, abs=1e-12), key


@settings(max_examples=60, deadline=None)
@given(segmentations())
def test_distinct_categories_give_the_instance_scores(seg):
    # one category per instance: the class masks are the instance masks with other ids
    true, pred, num_slots = seg
    cats = torch.tensor([[10, 20, 30, 40]]).expand(true.shape[0], 4)
    by_class = segmentation_scores(class_label_maps(true, cats), pred, num_slots=num_slots)
    by_instance = segmentation_scores(true, pred, num_slots=num_slots)
    for key in ("mbo_image", "miou_image", "mbo", "miou", "fg_ari"):
        a, b = by_class[key], by_instance[key]
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12), key


@settings(max_examples=60, deadline=None)
@given(categorised(), st.permutations([1, 2, 3]))
def test_renaming_categories_changes_no_class_score(case, renaming):
    true, pred, num_slots, cats = case
    renamed = torch.tensor([0, *renaming])[cats]
    a = segmentation_scores(class_label_maps(true, cats), pred, num_slots=num_slots)
    b = segmentation_scores(class_label_maps(true, renamed), pred, num_slots=num_slots)
    for key in a:
        assert (math.isnan(a[key]) and math.isnan(b[key])) or a[key] == pytest.approx(b[key], abs=1e-12), key


def test_class_and_instance_mbo_differ_when_instances_share_a_category():
    # two people (ids 1, 2: category 1) each predicted by its own slot: instance mBO 1, class mBO 1/2
    true = torch.tensor([[[1, 1, 0, 2, 2]]])
    pred = torch.tensor([[[0, 0, 2, 1, 1]]])
    cats = torch.tensor([[1, 1]])
    instance = segmentation_scores(true, pred, num_slots=3)
    by_class = segmentation_scores(class_label_maps(true, cats), pred, num_slots=3)
    assert instance["mbo_image"] == 1.0
    assert by_class["mbo_image"] == pytest.approx(2 / 4)


def test_class_maps_reject_bad_input():
    true = torch.tensor([[[0, 1, 2]]])
    with pytest.raises(ValueError, match="no category"):
        class_label_maps(true, torch.tensor([[5, -1]]))  # instance 2 is present but padded
    with pytest.raises(ValueError, match="only 1 columns"):
        class_label_maps(true, torch.tensor([[5]]))
    with pytest.raises(ValueError, match="shape"):
        class_label_maps(true, torch.tensor([5, 6]))


# -- mask resolution -------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.int64, st.tuples(st.integers(1, 2), st.integers(3, 30), st.integers(3, 30)), elements=st.integers(0, 6)),
    st.integers(1, 24),
)
def test_resize_label_maps_is_nearest_then_centre_crop(maps, size):
    out = resize_label_maps(torch.from_numpy(maps), size)
    assert out.shape == (maps.shape[0], size, size) and out.dtype == torch.int64
    for b in range(maps.shape[0]):
        # restatement: PIL nearest to short side `size` (long side truncated), then the centre square
        h, w = maps[b].shape
        new_w, new_h = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        image = Image.fromarray(maps[b].astype(np.int32))
        if min(h, w) != size:
            image = image.resize((new_w, new_h), Image.NEAREST)
        top, left = round((image.height - size) / 2), round((image.width - size) / 2)
        expected = np.asarray(image)[top : top + size, left : left + size]
        np.testing.assert_array_equal(out[b].numpy(), expected)
        assert set(np.unique(out[b].numpy())) <= set(np.unique(maps[b]))


def test_resize_label_maps_keeps_bool_and_rejects_bad_sizes():
    ignore = torch.zeros(1, 10, 20, dtype=torch.bool)
    ignore[0, :, 10:] = True
    out = resize_label_maps(ignore, 4)
    assert out.dtype == torch.bool and out.shape == (1, 4, 4)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="mask size"):
            resize_label_maps(ignore, bad)


def test_class_maps_of_images_without_instances_are_background():
    classes = class_label_maps(torch.zeros(2, 3, 3, dtype=torch.int64), torch.full((2, 0), -1))
    assert classes.shape == (2, 3, 3) and not classes.any()
