import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from lsd.metrics import FeatureStatistics, feature_statistics, fid_from_features, frechet_distance
from lsd.metrics.fid import kid_from_features


def closed_form_commuting(mu1, d1, mu2, d2):
    """FID for covariances Q diag(d1) Q^T and Q diag(d2) Q^T: ||dmu||^2 + sum (sqrt d1 - sqrt d2)^2."""
    return float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2))


def test_one_dimensional_gaussians():
    # N(1, 2^2) vs N(-2, 3^2): (1 - -2)^2 + (2 - 3)^2 = 9 + 1 = 10
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(10.0, abs=1e-12)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    d1, d2 = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
    expected = closed_form_commuting(mu1, d1, mu2, d2)
    assert frechet_distance(mu1, np.diag(d1), mu2, np.diag(d2)) == pytest.approx(expected, rel=1e-10)


def test_rotated_commuting_covariances_closed_form():
    rng = np.random.default_rng(1)
    q = ortho_group.rvs(12, random_state=2)
    mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
    d1, d2 = rng.uniform(0.1, 3, 12), rng.uniform(0.1, 3, 12)
    s1, s2 = q @ np.diag(d1) @ q.T, q @ np.diag(d2) @ q.T
    expected = closed_form_commuting(mu1, d1, mu2, d2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_general_covariances_against_symmetric_formulation():
    # Tr (S1 S2)^(1/2) = Tr (S1^(1/2) S2 S1^(1/2))^(1/2): the right side only needs eigh of symmetric matrices
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(20, 20)), rng.normal(size=(20, 20))
    s1, s2 = a @ a.T / 20 + 0.1 * np.eye(20), b @ b.T / 20 + 0.1 * np.eye(20)
    mu1, mu2 = rng.normal(size=20), rng.normal(size=20)
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(w)) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None)))
    assert frechet_distance(torch.tensor(mu1), torch.tensor(s1), mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_identical_and_singular_statistics():
    rng = np.random.default_rng(4)
    feats = rng.normal(size=(10, 32))  # fewer samples than dimensions: rank-deficient covariance
    mu, sigma = feature_statistics(feats)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6
    other = feature_statistics(rng.normal(size=(10, 32)) + 1.0)
    value = frechet_distance(mu, sigma, *other)
    assert np.isfinite(value) and value > 32 * 0.9  # the means differ by 1 in each of 32 dims


def test_feature_statistics_and_streaming_match_numpy():
    rng = np.random.default_rng(5)
    feats = rng.normal(loc=3.0, size=(101, 7))
    mu, sigma = feature_statistics(torch.tensor(feats))
    np.testing.assert_allclose(mu, feats.mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(feats, rowvar=False), rtol=1e-12)
    stream = FeatureStatistics()
    for lo, hi in [(0, 1), (1, 40), (40, 40), (40, 101)]:
        stream.update(feats[lo:hi])
    assert stream.count == 101
    s_mu, s_sigma = stream.compute()
    np.testing.assert_allclose(s_mu, mu, rtol=1e-12)
    np.testing.assert_allclose(s_sigma, sigma, rtol=1e-10, atol=1e-13)
    assert fid_from_features(feats, feats) == pytest.approx(0.0, abs=1e-8)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same length"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match=r"`sigma2` must have shape \(3, 3\)"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(np.zeros((1, 3)))
    stream = FeatureStatistics()
    with pytest.raises(ValueError, match="at least 2 samples"):
        stream.compute()
    stream.update(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="earlier batches had 3"):
        stream.update(np.zeros((2, 4)))


@pytest.mark.parametrize(("n1", "n2"), [(5, 7), (6, 6), (2, 9)])
def test_few_samples_use_the_exact_small_form(n1, n2):
    """With N1 + N2 <= D, fid_from_features takes the nuclear norm of A1^T A2; same value as sqrtm."""
    rng = np.random.default_rng(n1 * 10 + n2)
    mix = rng.normal(size=(16, 16))
    x1, x2 = rng.normal(size=(n1, 16)) @ mix, rng.normal(size=(n2, 16)) @ mix + 0.5
    expected = frechet_distance(*feature_statistics(x1), *feature_statistics(x2))
    assert fid_from_features(x1, x2) == pytest.approx(expected, rel=1e-7, abs=1e-9)
    assert fid_from_features(x1, x1) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="features2"):
        fid_from_features(x1, x2[:, :15])


def test_kid_equals_the_unbiased_mmd_written_out():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(5, 6)), rng.normal(size=(4, 6)) + 0.3

    def k(a, b):
        return (a @ b / 6 + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
    yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
    xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
    assert kid_from_features(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    far = kid_from_features(x, y + 3.0)
    assert far > kid_from_features(x, y)
    with pytest.raises(ValueError, match="same D"):
        kid_from_features(x, y[:, :5])
