"""Shared test setup: CPU only, no network, Triton kernels interpreted."""

from __future__ import annotations

import os

# Read when a @triton.jit kernel is decorated: must be set before lsd_kernels ops are imported.
os.environ.setdefault("TRITON_INTERPRET", "1")
# Tests never reach the network: pretrained weights come only from local folders / caches.
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests draw the same examples on every run: CI is deterministic; explore locally with
# `pytest --hypothesis-seed=<n>` or HYPOTHESIS_PROFILE=explore.
settings.register_profile("lsd", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "lsd"))


@pytest.fixture
def tiny_model():
    """The shipped tiny config, deterministically initialised."""
    from lsd.configs import build_model

    torch.manual_seed(0)
    return build_model("tiny")


@pytest.fixture
def images():
    """Two 32x32 images in [-1, 1] matching the tiny config."""
    gen = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; none is visible")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
