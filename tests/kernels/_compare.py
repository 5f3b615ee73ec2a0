"""Comparisons for kernel tests: failures say how many elements differ, by how much, and where."""

from __future__ import annotations

import torch

#: fp32 kernels against the fp32 reference: summation order only (N = 1000 terms, fp32 accumulation).
FP32_ATOL = 1e-5
FP32_RTOL = 1e-4


def _report(name: str, bad: torch.Tensor, actual: torch.Tensor, expected: torch.Tensor, bound: str) -> str:
    where = bad.nonzero()[:5].tolist()
    diff = (actual.double() - expected.double()).abs()
    return (
        f"{name}: {int(bad.sum())} of {bad.numel()} elements differ beyond {bound} "
        f"(max |diff| {diff.max().item():.3e} at {list(divmod_index(diff.argmax().item(), diff.shape))}); "
        f"first offending indices {where}"
    )


def divmod_index(flat: int, shape: torch.Size) -> tuple[int, ...]:
    index = []
    for size in reversed(shape):
        flat, rem = divmod(flat, size)
        index.append(rem)
    return tuple(reversed(index))


def assert_close(actual: torch.Tensor, expected: torch.Tensor, name: str, atol: float, rtol: float) -> None:
    """Elementwise ``|actual - expected| <= atol + rtol * |expected|``, both upcast to fp64."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    a, e = actual.double(), expected.double()
    bad = (a - e).abs() > atol + rtol * e.abs()
    bad |= a.isnan() != e.isnan()
    assert not bad.any(), _report(name, bad, a, e, f"atol={atol:g} + rtol={rtol:g} * |expected|")


def assert_within_2x_of_torch(
    actual: torch.Tensor, ref32: torch.Tensor, same_dtype: torch.Tensor, name: str, atol_ulps: float = 1.0
) -> None:
    """flash-attention's low-precision rule: every element of the kernel's error against the fp32
    reference is at most twice the same-dtype torch implementation's largest error, plus ``atol``
    = ``atol_ulps`` units of the dtype's machine epsilon at the output's scale (max |ref32|)."""
    assert actual.shape == ref32.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(ref32.shape)}"
    assert actual.dtype == same_dtype.dtype, f"{name}: dtype {actual.dtype} != {same_dtype.dtype}"
    a, r, s = actual.double(), ref32.double(), same_dtype.double()
    atol = atol_ulps * torch.finfo(actual.dtype).eps * r.abs().max().item()
    bound = 2 * (s - r).abs().max().item() + atol
    bad = ((a - r).abs() > bound) | a.isnan()
    assert not bad.any(), _report(name, bad, a, r, f"2 * max|torch {actual.dtype} - fp32| + atol = {bound:.3e}")
