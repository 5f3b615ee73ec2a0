"""Every launch config of the ops' ``TUNED`` tables (chosen with the AOT check for A100 and
H100/H200, which the interpreter never selects by itself) gives the reference's results within
the same tolerances as the default launch: each config is forced with ``CONFIG_OVERRIDE`` and run
in the interpreter (tests/conftest.py) at shapes whose rows span several tiles and chunks."""

from __future__ import annotations

import lsd_kernels.slot_attention as sa
import lsd_kernels.slot_cross_attention as xa
import pytest
import torch

from . import test_slot_attention as sa_tests
from . import test_slot_cross_attention as xa_tests
from ._compare import FP32_ATOL, FP32_RTOL, assert_close

SA_CONFIGS = sorted(set(sa.TUNED.values()))
XA_CONFIGS = sorted(set(xa.TUNED.values()))


@pytest.mark.parametrize("config", SA_CONFIGS, ids=str)
def test_slot_attention_tuned_configs_match_reference(monkeypatch, config):
    monkeypatch.setattr(sa, "CONFIG_OVERRIDE", config)
    inputs, grads = sa_tests.make_inputs(2, 2, 7, 300, 13)
    ours = sa_tests.run(sa.slot_attention_updates, inputs, grads, torch.float32)
    ref = sa_tests.run(sa.slot_attention_updates_ref, inputs, grads, torch.float32)
    for name, a, e in zip(sa_tests.NAMES, ours, ref, strict=True):
        assert_close(a, e, name, atol=FP32_ATOL, rtol=FP32_RTOL)


@pytest.mark.parametrize("config", XA_CONFIGS, ids=str)
def test_cross_attention_tuned_configs_match_reference(monkeypatch, config):
    monkeypatch.setattr(xa, "CONFIG_OVERRIDE", config)
    inputs, grad_out = xa_tests.make_inputs(2, 3, 300, 7, 13)
    ours = xa_tests.run(xa.slot_cross_attention, inputs, grad_out, torch.float32)
    ref = xa_tests.run(xa.slot_cross_attention_ref, inputs, grad_out, torch.float32)
    for name, a, e in zip(xa_tests.NAMES, ours, ref, strict=True):
        assert_close(a, e, name, atol=FP32_ATOL, rtol=FP32_RTOL)
