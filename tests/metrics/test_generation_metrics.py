import math

import pytest
import torch

from lsd.metrics import fid_from_features
from lsd.metrics.generation import FALLBACK_FEATURE_DIM, FallbackFeatures, neighbour_difference, psnr


def scenes(n=160, seed=0):
    """Smooth random scenes: a colour gradient plus two coloured rectangles, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    out = []
    for _ in range(n):
        base = torch.rand(3, 1, 1, generator=g) * 0.6 - 0.3 + 0.3 * (torch.rand(3, 1, 1, generator=g) - 0.5) * xs
        image = base.expand(3, 64, 64).clone()
        for _ in range(2):
            y, x, h, w = torch.randint(0, 40, (4,), generator=g).tolist()
            image[:, y : y + 4 + h // 2, x : x + 4 + w // 2] = torch.rand(3, 1, 1, generator=g) * 2 - 1
        out.append(image)
    return torch.stack(out).clamp(-1, 1)


def test_psnr_matches_its_definition_and_orders_noise():
    x = torch.zeros(2, 3, 8, 8)
    assert psnr(x + 0.2, x).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)  # 10 log10(4 / 0.04)
    assert math.isinf(psnr(x, x)[0].item())
    g = torch.Generator().manual_seed(0)
    real = scenes(8)
    small = psnr(real + 0.05 * torch.randn(real.shape, generator=g), real).mean()
    large = psnr(real + 0.2 * torch.randn(real.shape, generator=g), real).mean()
    assert small > large
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(x, x[:1])


def test_neighbour_difference_of_known_patterns():
    stripes = torch.ones(1, 3, 4, 6)
    stripes[..., 1::2] = -1
    assert neighbour_difference(stripes).item() == pytest.approx(2.0)
    assert neighbour_difference(torch.full((1, 3, 4, 6), 0.3)).item() == 0.0
    real = scenes(4)
    noisy = real + 0.1 * torch.randn(real.shape, generator=torch.Generator().manual_seed(1))
    assert neighbour_difference(noisy).mean() > neighbour_difference(real).mean()


def test_fallback_frechet_distance_is_zero_on_identical_sets_and_grows_with_the_shift():
    features = FallbackFeatures()
    real, other = scenes(160, seed=0), scenes(160, seed=1)
    f_real = features(real)
    assert f_real.shape == (160, FALLBACK_FEATURE_DIM)
    assert fid_from_features(f_real, features(real.clone())) == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(2)
    distances = [fid_from_features(features(other), f_real)]
    for sigma in (0.05, 0.15, 0.4):  # pixel noise of growing strength on an independent sample
        distances.append(
            fid_from_features(features((other + sigma * torch.randn(other.shape, generator=g)).clamp(-1, 1)), f_real)
        )
    assert distances == sorted(distances), distances
    darker = fid_from_features(features(other * 0.5 - 0.4), f_real)  # a global colour shift
    assert darker > distances[0]
    # any input size maps to the same 64 px descriptor
    assert features(torch.nn.functional.interpolate(real[:2], size=128, mode="nearest")).shape == (
        2,
        FALLBACK_FEATURE_DIM,
    )
