"""GPU timings (kernels/bench_gpu.py) as a test: the point of the fused ops is speed on a GPU."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_fused_ops_beat_the_eager_reference_at_movi_e_shapes(dtype):
    from lsd_kernels.bench_gpu import cross_attention_cases, slot_attention_cases

    rows = slot_attention_cases(dtype, compile_ref=False) + cross_attention_cases(dtype, compile_ref=False)
    by_case = {}
    for row in rows:
        print(row)  # the timings are the useful output: run with -s
        by_case.setdefault((row.op, row.shape), {})[row.impl] = row
    for (op, shape), impls in by_case.items():
        eager, fused = impls["eager"], impls["fused"]
        assert fused.fwd_bwd_ms < eager.fwd_bwd_ms, (
            f"{op} {shape} {dtype}: fused fwd+bwd {fused.fwd_bwd_ms:.3f} ms is not faster than eager "
            f"{eager.fwd_bwd_ms:.3f} ms"
        )
