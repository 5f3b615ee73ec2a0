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

#: (op module, its test module, the fused function, the reference, the small shape), per op.
OPS = {
    "slot_attention": (sa, sa_tests, "slot_attention_updates", (2, 2, 7, 300, 13)),
    "cross_attention": (xa, xa_tests, "slot_cross_attention", (2, 3, 300, 7, 13)),
}
CASES = [
    pytest.param(name, config, id=f"{name}-{config}")
    for name, (module, *_) in OPS.items()
    for config in sorted(set(module.TUNED.values()))
]


@pytest.mark.parametrize("name, config", CASES)
def test_tuned_configs_match_reference(monkeypatch, name, config):
    module, tests, fused, shape = OPS[name]
    monkeypatch.setattr(module, "CONFIG_OVERRIDE", config)
    inputs, grads = tests.make_inputs(*shape)
    ours = tests.run(getattr(module, fused), inputs, grads, torch.float32)
    ref = tests.run(getattr(module, f"{fused}_ref"), inputs, grads, torch.float32)
    for out_name, a, e in zip(tests.NAMES, ours, ref, strict=True):
        assert_close(a, e, out_name, atol=FP32_ATOL, rtol=FP32_RTOL)
