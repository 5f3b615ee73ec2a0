"""Kernel variants the AOT check (``lsd_kernels.aot``) must reject, compiled in a child process
with ``TRITON_INTERPRET`` unset (tests/kernels/test_aot.py): prints its rows as JSON.

- ``dot-k8`` / ``dot-k16``: a 16-bit ``tl.dot`` with K = 8, which the interpreter runs and the
  NVIDIA compiler rejects (K >= 16 is needed), and the same dot with K = 16, which compiles.
- ``smem-8-stages``: a pipelined fp16 matmul (128 x 128 tiles, 64-wide K steps) with 8 stages,
  whose operand buffers need 224 KiB (sm_80) / 256 KiB (sm_90) of shared memory: over both limits.
"""

from __future__ import annotations

import json
import sys
import warnings
from dataclasses import asdict

import torch
import triton
import triton.language as tl
from lsd_kernels._common import KernelCall
from lsd_kernels.aot import TARGETS, Case, check


@triton.jit
def _small_dot(x_ptr, y_ptr, out_ptr, K: tl.constexpr):
    rows = tl.arange(0, 16)
    ks = tl.arange(0, K)
    a = tl.load(x_ptr + rows[:, None] * K + ks[None, :])
    b = tl.load(y_ptr + ks[:, None] * 16 + rows[None, :])
    tl.store(out_ptr + rows[:, None] * 16 + rows[None, :], tl.dot(a, b))


@triton.jit
def _pipelined_matmul(x_ptr, y_ptr, out_ptr, K, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr):
    rows = tl.arange(0, BLOCK)
    ks = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK, BLOCK), tl.float32)
    for k0 in range(0, K, BLOCK_K):
        a = tl.load(x_ptr + rows[:, None] * K + k0 + ks[None, :])
        b = tl.load(y_ptr + (k0 + ks[:, None]) * BLOCK + rows[None, :])
        acc = tl.dot(a, b, acc)
    tl.store(out_ptr + rows[:, None] * BLOCK + rows[None, :], acc)


def _meta(n: int, dtype=torch.float16) -> torch.Tensor:
    return torch.empty(n, device="meta", dtype=dtype)


def _dot(k: int):
    return lambda target: KernelCall(
        _small_dot, (1,), (_meta(16 * k), _meta(16 * k), _meta(256, torch.float32)), {"K": k, "num_warps": 4}
    )


def _matmul(target):
    args = (_meta(128 * 1024), _meta(128 * 1024), _meta(128 * 128, torch.float32), 1024)
    return KernelCall(_pipelined_matmul, (1,), args, {"BLOCK": 128, "BLOCK_K": 64, "num_warps": 4, "num_stages": 8})


CASES = [
    Case("dot-k8", "16x8 @ 8x16", torch.float16, _dot(8)),
    Case("dot-k16", "16x16 @ 16x16", torch.float16, _dot(16)),
    Case("smem-8-stages", "128x1024 @ 1024x128", torch.float16, _matmul),
]

if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    rows = check(CASES, list(TARGETS.values()))
    json.dump([asdict(r) for r in rows], sys.stdout)
