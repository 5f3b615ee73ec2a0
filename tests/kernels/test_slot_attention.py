"""Fused slot-attention read-out (lsd_kernels.slot_attention) against the torch reference.

Runs on CPU under TRITON_INTERPRET=1 (set in tests/conftest.py). In the interpreter, bf16 inputs
take the kernels' fp32-dot path (the interpreter's bf16 tl.dot is wrong); the native bf16
tensor-core path is checked by the GPU-marked test at the end.
"""

from __future__ import annotations

import pytest
import torch
from lsd_kernels.reference import slot_attention_updates_ref
from lsd_kernels.slot_attention import slot_attention_updates

from ._compare import FP32_ATOL, FP32_RTOL, assert_close, assert_within_2x_of_torch

EPS = 1e-6

# (B, H, S, N, d): the release's shapes scaled down, and odd ones (S = 7, 11, 24; N = 1000; odd d).
SHAPES = [
    pytest.param((2, 1, 7, 1000, 13), id="B2-H1-S7-N1000-d13"),
    pytest.param((1, 4, 11, 1000, 5), id="B1-H4-S11-N1000-d5"),
    pytest.param((1, 1, 24, 1000, 33), id="B1-H1-S24-N1000-d33"),
    pytest.param((2, 2, 24, 64, 16), id="B2-H2-S24-N64-d16"),
    pytest.param((3, 4, 7, 50, 3), id="B3-H4-S7-N50-d3"),
]
NAMES = ("updates", "attn", "dq", "dk", "dv")


def make_inputs(batch, heads, slots, num_inputs, dim, seed=0):
    """q, k, v as the model builds them (views of (B, L, H*d) projections: non-contiguous),
    k pre-scaled, plus upstream gradients for updates and attn."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, slots, heads * dim, generator=gen).view(batch, slots, heads, dim).transpose(1, 2)
    k = torch.randn(batch, num_inputs, heads * dim, generator=gen).view(batch, num_inputs, heads, dim).transpose(1, 2)
    v = torch.randn(batch, num_inputs, heads * dim, generator=gen).view(batch, num_inputs, heads, dim).transpose(1, 2)
    k = k * (heads * dim) ** -0.5
    grad_updates = torch.randn(batch, heads, slots, dim, generator=gen)
    grad_attn = torch.randn(batch, heads, num_inputs, slots, generator=gen)
    return (q, k, v), (grad_updates, grad_attn)


def run(fn, inputs, grads, dtype):
    """Forward and (dq, dk, dv) of sum(updates * gu) + sum(attn * ga) in ``dtype``."""
    q, k, v = (x.detach().to(dtype).requires_grad_() for x in inputs)
    updates, attn = fn(q, k, v, EPS)
    assert updates.dtype == attn.dtype == dtype
    dq, dk, dv = torch.autograd.grad((updates, attn), (q, k, v), tuple(g.to(dtype) for g in grads))
    return updates.detach(), attn.detach(), dq, dk, dv


@pytest.mark.parametrize("shape", SHAPES)
def test_fp32_forward_and_gradients_match_reference(shape):
    inputs, grads = make_inputs(*shape)
    ours = run(slot_attention_updates, inputs, grads, torch.float32)
    ref = run(slot_attention_updates_ref, inputs, grads, torch.float32)
    for name, a, e in zip(NAMES, ours, ref, strict=True):
        assert_close(a, e, name, atol=FP32_ATOL, rtol=FP32_RTOL)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("shape", [SHAPES[0], SHAPES[1], SHAPES[3]])
def test_low_precision_within_twice_the_error_of_torch(shape, dtype):
    inputs, grads = make_inputs(*shape)
    ours = run(slot_attention_updates, inputs, grads, dtype)
    ref32 = run(slot_attention_updates_ref, inputs, grads, torch.float32)
    same = run(slot_attention_updates_ref, inputs, grads, dtype)
    for name, a, r, s in zip(NAMES, ours, ref32, same, strict=True):
        assert_within_2x_of_torch(a, r, s, f"{name} ({dtype})")


def test_contiguous_inputs_and_stride_zero_gradients():
    """Contiguous inputs, and the stride-0 upstream gradients ``.sum()`` produces."""
    (q, k, v), _ = make_inputs(2, 2, 7, 100, 9)
    grads = []
    for fn in (slot_attention_updates, slot_attention_updates_ref):
        leaves = [x.contiguous().requires_grad_() for x in (q, k, v)]
        updates, attn = fn(*leaves, EPS)
        (updates.sum() + (attn * torch.arange(7.0)).sum()).backward()
        grads.append([updates.detach(), attn.detach(), *(x.grad for x in leaves)])
    for name, a, e in zip(NAMES, *grads, strict=True):
        assert_close(a, e, name, atol=FP32_ATOL, rtol=FP32_RTOL)


@pytest.mark.parametrize("used", ["updates", "attn"])
def test_gradient_through_one_output_only(used):
    inputs, _ = make_inputs(1, 2, 5, 70, 6)
    grads = []
    for fn in (slot_attention_updates, slot_attention_updates_ref):
        leaves = [x.detach().requires_grad_() for x in inputs]
        updates, attn = fn(*leaves, EPS)
        out = updates if used == "updates" else attn
        weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(3))
        found = torch.autograd.grad((out * weight).sum(), leaves, allow_unused=True)  # attn does not use v
        grads.append([torch.zeros_like(x) if g is None else g for x, g in zip(leaves, found, strict=True)])
    for name, a, e in zip(("dq", "dk", "dv"), *grads, strict=True):
        assert_close(a, e, f"{name} via {used}", atol=FP32_ATOL, rtol=FP32_RTOL)


def test_attn_is_a_joint_distribution_over_heads_and_slots():
    (q, k, v), _ = make_inputs(2, 4, 7, 50, 3)
    _, attn = slot_attention_updates(q, k, v, EPS)
    assert_close(attn.sum(dim=(1, 3)), torch.ones(2, 50), "sum over heads x slots", atol=1e-6, rtol=0)


def test_repeated_runs_are_bitwise_identical():
    """No atomics: partial sums over N are reduced in a fixed order."""
    inputs, grads = make_inputs(2, 2, 11, 300, 7)
    first = run(slot_attention_updates, inputs, grads, torch.float32)
    second = run(slot_attention_updates, inputs, grads, torch.float32)
    for name, a, b in zip(NAMES, first, second, strict=True):
        assert torch.equal(a, b), f"{name} differs between two identical runs"


def test_opcheck():
    (q, k, v), _ = make_inputs(1, 2, 5, 40, 6)
    args = tuple(x.detach().requires_grad_() for x in (q, k, v))
    torch.library.opcheck(torch.ops.lsd.slot_attention_updates.default, (*args, EPS))
    torch.library.opcheck(torch.ops.lsd.slot_attention_updates.default, (*(x.detach().contiguous() for x in args), EPS))


def test_bad_inputs_are_clear_errors():
    (q, k, v), _ = make_inputs(1, 1, 3, 10, 4)
    with pytest.raises(ValueError, match=r"q \(B, H, S, d\)"):
        slot_attention_updates(q, k[..., :3], v[..., :3], EPS)
    with pytest.raises(TypeError, match="unsupported dtype"):
        slot_attention_updates(q.double(), k.double(), v.double(), EPS)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
def test_gpu_movi_e_shapes(dtype):
    """MOVi-E: B = 32, N = 64 * 64, S = 24, d = 192 (H = 1), on the native tensor-core path."""
    inputs, grads = make_inputs(32, 1, 24, 4096, 192)
    inputs, grads = [x.cuda() for x in inputs], [g.cuda() for g in grads]
    ours = run(slot_attention_updates, inputs, grads, dtype)
    ref32 = run(slot_attention_updates_ref, inputs, grads, torch.float32)
    same = run(slot_attention_updates_ref, inputs, grads, dtype)
    for name, a, r, s in zip(NAMES, ours, ref32, same, strict=True):
        if dtype == torch.float32:
            assert_close(a, r, name, atol=FP32_ATOL, rtol=FP32_RTOL)
        else:
            assert_within_2x_of_torch(a, r, s, f"{name} ({dtype})")
