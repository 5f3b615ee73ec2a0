"""Frechet distance between Gaussian fits of feature sets (FID when the features are Inception pool3).

    FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

computed in float64 with ``scipy.linalg.sqrtm``. ``S1 S2`` is not symmetric, and for nearly
singular covariances (fewer samples than dimensions) its square root can come back with tiny
imaginary parts or non-finite entries; like the reference FID code, a non-finite result is
retried with ``eps * I`` added to both covariances, and an imaginary part is dropped when it is
negligible (``|imag| <= 1e-3`` on the diagonal) and reported as an error otherwise.

Features come from :class:`lsd.metrics.InceptionFeatureExtractor` (2048-d pool3); the statistics
are the sample mean and the unbiased (``N - 1``) covariance, like ``np.cov(features, rowvar=False)``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

__all__ = ["frechet_distance", "feature_statistics", "FeatureStatistics", "fid_from_features", "kid_from_features"]

ArrayLike = np.ndarray | torch.Tensor


def _float64(value: ArrayLike) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().to(torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def frechet_distance(
    mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike, *, eps: float = 1e-6
) -> float:
    """Frechet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    Args:
        mu1, mu2: ``(D,)`` means.
        sigma1, sigma2: ``(D, D)`` covariances (symmetric positive semi-definite).
        eps: diagonal offset used only if ``sqrtm(sigma1 @ sigma2)`` is not finite.

    Returns:
        The distance as a Python float (>= 0 up to rounding).
    """
    m1, m2 = _float64(mu1).reshape(-1), _float64(mu2).reshape(-1)
    s1, s2 = _float64(sigma1), _float64(sigma2)
    dim = m1.shape[0]
    if m2.shape != (dim,):
        raise ValueError(f"`mu1` and `mu2` must have the same length, got {m1.shape[0]} and {m2.shape[0]}")
    for name, s in (("sigma1", s1), ("sigma2", s2)):
        if s.shape != (dim, dim):
            raise ValueError(f"`{name}` must have shape ({dim}, {dim}), got {s.shape}")
    diff = m1 - m2
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(dim) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > 1e-3:
            raise ValueError(
                f"sqrtm(sigma1 @ sigma2) has a significant imaginary part ({imag:.3g}); check the covariances"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def feature_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(N, D)`` features -> ``(mu (D,), sigma (D, D))`` float64, unbiased covariance (N >= 2)."""
    x = _float64(features)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"`features` must have shape (N, D) with N >= 2, got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


class FeatureStatistics:
    """Streaming mean and covariance of features, batch by batch, in float64.

    Batches are merged with Chan et al.'s pairwise update (centred sums, no ``E[x x^T] - mu mu^T``
    cancellation), so the result equals :func:`feature_statistics` on all features at once to
    rounding.
    """

    def __init__(self) -> None:
        self.count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None  # sum of centred outer products, (D, D)

    def update(self, features: ArrayLike) -> None:
        """Add a ``(N, D)`` batch."""
        x = _float64(features)
        if x.ndim != 2:
            raise ValueError(f"`features` must have shape (N, D), got {x.shape}")
        if x.shape[0] == 0:
            return
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        m2_b = centred.T @ centred
        n_b = x.shape[0]
        if self._mean is None:
            self.count, self._mean, self._m2 = n_b, mean_b, m2_b
            return
        if mean_b.shape != self._mean.shape:
            raise ValueError(f"`features` has {x.shape[1]} dims, earlier batches had {self._mean.shape[0]}")
        total = self.count + n_b
        delta = mean_b - self._mean
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (self.count * n_b / total)
        self._mean = self._mean + delta * (n_b / total)
        self.count = total

    def compute(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mu (D,), sigma (D, D))`` of everything added (needs >= 2 samples)."""
        if self._mean is None or self.count < 2:
            raise ValueError(f"need at least 2 samples, have {self.count}")
        return self._mean.copy(), self._m2 / (self.count - 1)


def fid_from_features(features1: ArrayLike, features2: ArrayLike) -> float:
    """Frechet distance between the Gaussian fits of two ``(N, D)`` feature sets.

    With fewer samples than dimensions (``N1 + N2 <= D``; e.g. 64 images, 2048-d Inception) the
    covariances are ``S = A A^T`` with ``A = X_c^T / sqrt(N - 1)`` (``D x N``), and
    ``Tr (S1 S2)^(1/2)`` equals the nuclear norm of the small ``A1^T A2`` (the eigenvalues of
    ``S1 S2`` are those of ``(A1^T A2)(A1^T A2)^T``): exact, and with no ``D x D`` matrix square root
    (which is slow and, on such singular covariances, inaccurate). Otherwise :func:`frechet_distance`.
    """
    x1, x2 = _float64(features1), _float64(features2)
    for name, x in (("features1", x1), ("features2", x2)):
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"`{name}` must have shape (N, D) with N >= 2, got {x.shape}")
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"`features1` has {x1.shape[1]} dims, `features2` {x2.shape[1]}")
    if x1.shape[0] + x2.shape[0] > x1.shape[1]:
        return frechet_distance(*feature_statistics(x1), *feature_statistics(x2))
    a1 = (x1 - x1.mean(axis=0)) / np.sqrt(x1.shape[0] - 1)  # (N1, D), S1 = a1^T a1
    a2 = (x2 - x2.mean(axis=0)) / np.sqrt(x2.shape[0] - 1)
    diff = x1.mean(axis=0) - x2.mean(axis=0)
    nuclear = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2.0 * nuclear)


def kid_from_features(features1: ArrayLike, features2: ArrayLike) -> float:
    """Kernel Inception Distance (Binkowski et al. 2018) between two ``(N, D)`` feature sets: the
    unbiased estimate of the squared MMD with the cubic polynomial kernel
    ``k(x, y) = (x . y / D + 1)^3``,

        sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
        - 2 sum_{i, j} k(x_i, y_j) / (m n),

    over all samples at once (the reference averages this over random subsets of 1,000; with fewer
    images than that, one subset holds them all). Unbiased, so it can be slightly negative.
    """
    x, y = _float64(features1), _float64(features2)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(x.shape[0], y.shape[0]) < 2:
        raise ValueError(f"`features1` and `features2` must be (N, D) with the same D and N >= 2, "
                         f"got {x.shape} and {y.shape}")  # fmt: skip
    dim, m, n = x.shape[1], x.shape[0], y.shape[0]
    kxx, kyy, kxy = ((a @ b.T / dim + 1.0) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * kxy.mean())
