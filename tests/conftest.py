"""Shared test setup: CPU only, no network, Triton kernels interpreted."""

from __future__ import annotations

import os

# Read when a @triton.jit kernel is decorated: must be set before lsd_kernels ops are imported.
os.environ.setdefault("TRITON_INTERPRET", "1")
# Tests never reach the network: pretrained weights come only from local folders / caches.
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402


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
