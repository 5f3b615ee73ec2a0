import pytest
import torch

from lsd.metrics import collect_matched, fit_property_probes, match_slots, normalize_minmax, probe_split

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/metrics/conftest.py


def synthetic(num=400, dim=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    classes = torch.randint(0, 3, (num,), generator=gen)
    centres = 2 * torch.randn(3, dim, generator=gen)
    slots = centres[classes] + 0.3 * torch.randn(num, dim, generator=gen)  # separable clusters
    linear = slots @ torch.randn(dim, 2, generator=gen)  # a linear continuous label (M, 2)
    return slots, classes, linear


def test_learns_separable_discrete_and_linear_continuous_labels():
    slots, classes, linear = synthetic()
    result = fit_property_probes(
        slots,
        {"shape": classes, "bbox.3d": linear},  # any name, dots included
        {"shape": "discrete", "bbox.3d": "continuous"},
        steps=150,
        lr=1e-2,
    )
    assert result["shape"] == 1.0
    assert result["bbox.3d"] < 0.01  # labels normalised to [-1, 1]: variance ~0.2, so >95% explained


def test_deterministic_for_a_seed_and_leaves_global_rng_alone():
    slots, classes, linear = synthetic(num=120)
    kw = dict(labels={"c": classes, "r": linear}, kinds={"c": "discrete", "r": "continuous"}, steps=20, seed=3)
    torch.manual_seed(123)
    first = fit_property_probes(slots, **kw)
    after = torch.rand(1)
    torch.manual_seed(123)
    assert fit_property_probes(slots, **kw) == first
    assert torch.equal(torch.rand(1), after)  # the global RNG stream is untouched


def test_split_is_deterministic_and_matches_the_release_shuffle():
    train, test = probe_split(100, seed=666)
    assert train.numel() == 83 and test.numel() == 17  # int(0.83 * 100)
    assert sorted(torch.cat([train, test]).tolist()) == list(range(100))
    again = probe_split(100, seed=666)
    assert torch.equal(train, again[0]) and torch.equal(test, again[1])
    assert not torch.equal(probe_split(100, seed=1)[0], train)
    with torch.random.fork_rng(devices=[]):  # the release: torch.manual_seed(seed); torch.randperm(M)
        torch.manual_seed(666)
        assert torch.equal(torch.randperm(100)[:83], train)
    assert probe_split(10, seed=0, train_fraction=0.5)[0].numel() == 5


def test_normalize_minmax():
    values = torch.tensor([[0.0, 5.0, 2.0], [10.0, 5.0, 4.0], [5.0, 5.0, 3.0]])
    # column 0: (v - 0) / 10 * 2 - 1 -> -1, 1, 0; column 1 constant -> 0; column 2: (v - 2) / 2 * 2 - 1
    expected = torch.tensor([[-1.0, 0.0, -1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert torch.equal(normalize_minmax(values), expected)


def test_normalisation_is_optional():
    slots, _, linear = synthetic(num=100)
    raw = fit_property_probes(slots, {"r": 100 * linear}, {"r": "continuous"}, steps=5, normalize=None)
    scaled = fit_property_probes(slots, {"r": 100 * linear}, {"r": "continuous"}, steps=5)
    assert raw["r"] > 100 * scaled["r"]  # raw labels have ~1e4 times the variance


def test_collect_matched_pairs_slots_with_labels():
    # image 0: objects 1 and 2 fill the top row, slot 2 covers object 1, slot 0 object 2;
    # image 1: object 1 only, in slot 1. Label row j belongs to segment id j + 1 (MOVi).
    true = torch.tensor([[[1, 2], [0, 0]], [[1, 0], [0, 0]]])
    pred = torch.tensor([[[2, 0], [1, 1]], [[1, 0], [0, 0]]])
    pairs = match_slots(true, pred, num_slots=3)
    assert [(g.tolist(), s.tolist()) for g, s in pairs] == [([1, 2], [2, 0]), ([1], [1])]
    slots = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    labels = {"category": torch.tensor([[7, 8, 9], [4, 5, 6]]), "position": torch.arange(12.0).reshape(2, 3, 2)}
    x, y = collect_matched(slots, pairs, labels)
    assert torch.equal(x, torch.stack([slots[0, 2], slots[0, 0], slots[1, 1]]))
    assert y["category"].tolist() == [7, 8, 4]
    assert y["position"].tolist() == [[0.0, 1.0], [2.0, 3.0], [6.0, 7.0]]
    # label arrays that include the background at row 0 (CLEVR with masks): no shift
    x0, y0 = collect_matched(slots, pairs, labels, label_offset=0)
    assert y0["category"].tolist() == [8, 9, 5]
    with pytest.raises(ValueError, match="fall outside"):
        collect_matched(slots, pairs, {"c": torch.zeros(2, 1)})


@pytest.mark.parametrize(
    "labels, kinds, match",
    [
        ({"a": torch.zeros(50)}, {"b": "discrete"}, "same properties"),
        ({"a": torch.zeros(50)}, {"a": "ordinal"}, "must be 'discrete' or 'continuous'"),
        ({"a": torch.zeros(49)}, {"a": "discrete"}, "49 rows"),
        ({"a": torch.full((50,), 0.5)}, {"a": "discrete"}, "integer class ids"),
        ({"a": -torch.ones(50, dtype=torch.long)}, {"a": "discrete"}, ">= 0"),
        ({}, {}, "nothing to probe"),
    ],
)
def test_bad_labels(labels, kinds, match):
    with pytest.raises(ValueError, match=match):
        fit_property_probes(torch.zeros(50, 4), labels, kinds, steps=1)


def test_bad_split_and_slots():
    with pytest.raises(ValueError, match="empty train or test"):
        fit_property_probes(torch.zeros(1, 4), {"a": torch.zeros(1, dtype=torch.long)}, {"a": "discrete"}, steps=1)
    with pytest.raises(ValueError, match=r"`slots` must have shape \(M, D\)"):
        fit_property_probes(torch.zeros(2, 5, 4), {"a": torch.zeros(2)}, {"a": "discrete"}, steps=1)
    with pytest.raises(ValueError, match="train_fraction"):
        probe_split(10, train_fraction=1.0)


def test_probe_training_shows_progress_only_when_asked_and_it_changes_nothing(capfd):
    slots = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))
    labels, kinds = {"c": (slots[:, 0] > 0).long()}, {"c": "discrete"}
    quiet = fit_property_probes(slots, labels, kinds, steps=20)
    assert "property probes" not in capfd.readouterr().err
    shown = fit_property_probes(slots, labels, kinds, steps=20, progress=True)
    assert "property probes" in capfd.readouterr().err and shown == quiet
