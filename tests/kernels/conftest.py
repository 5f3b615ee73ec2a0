"""Kernel tests run Triton's interpreter (single-threaded numpy) next to small torch ops: intra-op
threads only add contention there (seen: a tiny-LSD training step 0.2 s with 1 thread, 1.5 s with
2 on a loaded 2-core machine), so these tests use one torch thread and restore the setting after."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
