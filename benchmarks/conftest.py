"""Benchmark setup: the device (CUDA when visible, else CPU), offline Hugging Face, no interpreter.

Run ``pytest benchmarks --benchmark-only`` to time, ``pytest benchmarks --benchmark-disable`` to
run every benchmark body once as a test. Providers that cannot run here skip with the reason.
"""

from __future__ import annotations

import os

# Benchmarks never reach the network: every model is built from a config with random weights.
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="session")
def device() -> torch.device:
    """``cuda`` when a GPU is visible (the GPU configs and providers), else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
