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

#: The terminal table's columns (pytest-benchmark's default, ten of them, is ~220 characters wide):
#: with short names these fit 100. ``--benchmark-columns`` / ``--benchmark-name`` still choose others;
#: the JSON (``--benchmark-json``, read by ``lsd bench-report``) keeps every statistic.
TERMINAL_COLUMNS = ["min", "median", "rounds"]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Before pytest-benchmark reads them: the narrow columns and short names, unless given."""
    if getattr(config.option, "benchmark_columns", "absent") is None:
        config.option.benchmark_columns = TERMINAL_COLUMNS
    if not any(str(arg).startswith("--benchmark-name") for arg in config.invocation_params.args):
        config.option.benchmark_name = "short"


@pytest.fixture(scope="session")
def device() -> torch.device:
    """``cuda`` when a GPU is visible (the GPU configs and providers), else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
