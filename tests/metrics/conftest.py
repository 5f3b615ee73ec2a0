"""Shared metric-test setup."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """One intra-op thread for the test (on a busy 2-core machine two threads mostly wait for each
    other; tiny full-batch work only adds synchronisation). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
