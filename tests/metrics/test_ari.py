import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import adjusted_rand_score

from lsd.metrics import fg_ari
from lsd.metrics.ari import _ari_from_pair_sums, _fg_pair_sums_sparse


def sklearn_fg_ari(true: torch.Tensor, pred: torch.Tensor) -> list[float]:
    return [adjusted_rand_score(t[t != 0].numpy(), p[t != 0].numpy()) for t, p in zip(true, pred, strict=True)]


@st.composite
def label_maps(draw, max_true=5, pred_range=(-3, 6)):
    shape = draw(st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)))
    true = draw(arrays(np.int64, shape, elements=st.integers(0, max_true)))
    pred = draw(arrays(np.int64, shape, elements=st.integers(*pred_range)))
    return torch.from_numpy(true), torch.from_numpy(pred)


@settings(max_examples=200, deadline=None)
@given(label_maps())
def test_fg_ari_equals_sklearn(maps):
    true, pred = maps
    np.testing.assert_allclose(fg_ari(true, pred).numpy(), sklearn_fg_ari(true, pred), rtol=0, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(label_maps(max_true=40, pred_range=(-(2**40), 2**40)))
def test_sparse_path_equals_sklearn(maps):
    # huge id ranges: fg_ari takes the sort-based path; also call it directly on small ranges
    true, pred = maps
    expected = sklearn_fg_ari(true, pred)
    np.testing.assert_allclose(fg_ari(true, pred).numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(_ari_from_pair_sums(*_fg_pair_sums_sparse(true, pred)).numpy(), expected, atol=1e-12)


def test_hand_computed_value():
    # fg pixels: true [1 1 1 1 2 2 2 2], pred [0 0 0 2 1 1 1 1] -> n_ij = {3, 1 | 4}, n = 8,
    # sum n_ij^2 = 26, rows (4, 4) -> 32, cols (3, 4, 1) -> 26; ordered pairs:
    # tp = 26 - 8 = 18, fp = 0, fn = 6, tn = 64 - 6 - 26 = 32;
    # ARI = 2 (18*32) / (24*38 + 18*32) = 1152 / 1488 = 24/31.
    true = torch.tensor([[[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0]]])
    pred = torch.tensor([[[0, 0, 1, 1], [0, 2, 1, 1], [2, 2, 2, 2]]])
    assert fg_ari(true, pred).item() == pytest.approx(24 / 31, abs=1e-15)


@pytest.mark.parametrize(
    "true, pred, expected",
    [
        ([1, 1, 1], [4, 4, 4], 1.0),  # one object, one cluster: both single clusters -> 1 (sklearn)
        ([1, 1, 1], [0, 1, 2], 0.0),  # one object split into singletons -> 0
        ([1, 2, 3], [5, 5, 5], 0.0),  # three objects merged into one cluster -> 0
        ([1, 2, 3], [0, 1, 2], 1.0),  # all singletons on both sides -> identical partition -> 1
        ([3], [7], 1.0),  # one foreground pixel -> 1
        ([1, 1, 2, 2], [0, 1, 0, 1], -0.5),  # sklearn's documented discordant example
    ],
)
def test_degenerate_cases_follow_sklearn(true, pred, expected):
    t, p = torch.tensor([[true]]), torch.tensor([[pred]])
    assert fg_ari(t, p).item() == expected
    assert adjusted_rand_score(true, pred) == expected


def test_empty_foreground_convention():
    true = torch.zeros(2, 3, 3, dtype=torch.int64)
    true[1, 0, 0] = 1
    pred = torch.arange(18).reshape(2, 3, 3)
    # sklearn returns 1.0 on empty input; that is the default ("one"), as in the release
    assert fg_ari(true, pred).tolist() == [1.0, 1.0]
    assert adjusted_rand_score([], []) == 1.0
    out = fg_ari(true, pred, empty_foreground="nan")
    assert math.isnan(out[0].item()) and out[1].item() == 1.0


def test_background_ignored_and_large_image_float64():
    gen = torch.Generator().manual_seed(0)
    true = torch.randint(0, 12, (1, 256, 256), generator=gen)
    pred = torch.randint(0, 24, (1, 256, 256), generator=gen)
    pred_bg_changed = torch.where(true == 0, torch.randint(0, 24, true.shape, generator=gen), pred)
    value = fg_ari(true, pred)
    assert value.dtype == torch.float64
    assert value.item() == pytest.approx(sklearn_fg_ari(true, pred)[0], abs=1e-12)
    assert torch.equal(fg_ari(true, pred_bg_changed), value)
    # a whole 256x256 foreground (pair counts ~4e9, products ~1e19) against sklearn's exact integers
    everything = true + 1
    assert fg_ari(everything, pred).item() == pytest.approx(sklearn_fg_ari(everything, pred)[0], abs=1e-12)


def test_uint8_and_numpy_inputs():
    true = np.array([[[0, 1, 1, 2]]], dtype=np.uint8)
    pred = np.array([[[3, 0, 0, 1]]], dtype=np.uint8)
    assert fg_ari(true, pred).item() == 1.0


@pytest.mark.parametrize(
    "true, pred, error, match",
    [
        (torch.zeros(2, 3, 3), torch.zeros(2, 3, 3, dtype=torch.long), TypeError, "`true` must be an integer"),
        (torch.zeros(2, 3, 3, dtype=torch.long), torch.zeros(2, 3, 3), TypeError, "`pred` must be an integer"),
        (
            torch.zeros(3, 3, dtype=torch.long),
            torch.zeros(3, 3, dtype=torch.long),
            ValueError,
            "`true` must have shape",
        ),
        (torch.zeros(2, 3, 3, dtype=torch.long), torch.zeros(2, 3, 4, dtype=torch.long), ValueError, "same shape"),
        (-torch.ones(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long), ValueError, ">= 0"),
        ([[[0]]], torch.zeros(1, 1, 1, dtype=torch.long), TypeError, "`true` must be a torch.Tensor"),
    ],
)
def test_bad_inputs(true, pred, error, match):
    with pytest.raises(error, match=match):
        fg_ari(true, pred)
    with pytest.raises(ValueError, match="empty_foreground"):
        fg_ari(torch.zeros(1, 1, 1, dtype=torch.long), torch.zeros(1, 1, 1, dtype=torch.long), empty_foreground="x")
