"""Fused slot cross-attention (lsd_kernels.slot_cross_attention) against the torch reference, and
SlotCrossAttnProcessor against diffusers' AttnProcessor2_0.

Runs on CPU under TRITON_INTERPRET=1 (tests/conftest.py); bf16 takes the kernels' fp32-dot path
there (the interpreter's bf16 tl.dot is wrong); the native path is covered by the GPU test.
"""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from lsd_kernels.reference import slot_cross_attention_ref
from lsd_kernels.slot_cross_attention import slot_cross_attention

from lsd.models.attention import SlotCrossAttnProcessor

from ._compare import FP32_ATOL, FP32_RTOL, assert_close, assert_within_2x_of_torch

# (B, H, N, S, d): many queries, few keys (slots); odd S and d, N not a multiple of the tile.
SHAPES = [
    pytest.param((2, 4, 300, 7, 13), id="B2-H4-N300-S7-d13"),
    pytest.param((1, 2, 1000, 24, 8), id="B1-H2-N1000-S24-d8"),
    pytest.param((2, 1, 64, 11, 40), id="B2-H1-N64-S11-d40"),
    pytest.param((1, 3, 100, 5, 3), id="B1-H3-N100-S5-d3"),
]
NAMES = ("out", "dq", "dk", "dv")


def make_inputs(batch, heads, num_queries, num_keys, dim, seed=0):
    """q, k, v as diffusers builds them (head views of (B, L, H*d) projections), and dout."""
    gen = torch.Generator().manual_seed(seed)

    def heads_view(length):
        x = torch.randn(batch, length, heads * dim, generator=gen)
        return x.view(batch, length, heads, dim).transpose(1, 2)

    q, k, v = heads_view(num_queries), heads_view(num_keys), heads_view(num_keys)
    return (q, k, v), torch.randn(batch, heads, num_queries, dim, generator=gen)


def run(fn, inputs, grad_out, dtype):
    q, k, v = (x.detach().to(dtype).requires_grad_() for x in inputs)
    out = fn(q, k, v, q.shape[-1] ** -0.5)
    assert out.dtype == dtype
    return (out.detach(), *torch.autograd.grad(out, (q, k, v), grad_out.to(dtype)))


@pytest.mark.parametrize("shape", SHAPES)
def test_fp32_forward_and_gradients_match_reference(shape):
    inputs, grad_out = make_inputs(*shape)
    ours = run(slot_cross_attention, inputs, grad_out, torch.float32)
    ref = run(slot_cross_attention_ref, inputs, grad_out, torch.float32)
    for name, a, e in zip(NAMES, ours, ref, strict=True):
        assert_close(a, e, name, atol=FP32_ATOL, rtol=FP32_RTOL)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("shape", SHAPES[:3])
def test_low_precision_within_twice_the_error_of_torch(shape, dtype):
    inputs, grad_out = make_inputs(*shape)
    ours = run(slot_cross_attention, inputs, grad_out, dtype)
    ref32 = run(slot_cross_attention_ref, inputs, grad_out, torch.float32)
    same = run(slot_cross_attention_ref, inputs, grad_out, dtype)
    for name, a, r, s in zip(NAMES, ours, ref32, same, strict=True):
        assert_within_2x_of_torch(a, r, s, f"{name} ({dtype})")


def test_stride_zero_gradient_and_default_scale():
    (q, k, v), _ = make_inputs(2, 2, 70, 5, 6)
    results = []
    for fn in (
        lambda q, k, v: slot_cross_attention(q, k, v),
        lambda q, k, v: slot_cross_attention_ref(q, k, v, 6**-0.5),
    ):
        leaves = [x.detach().contiguous().requires_grad_() for x in (q, k, v)]
        out = fn(*leaves)
        out.sum().backward()  # upstream gradient of stride 0
        results.append([out.detach(), *(x.grad for x in leaves)])
    for name, a, e in zip(NAMES, *results, strict=True):
        assert_close(a, e, name, atol=FP32_ATOL, rtol=FP32_RTOL)


def test_repeated_runs_are_bitwise_identical():
    """No atomics: per-chunk partials of dk, dv are reduced in a fixed order."""
    inputs, grad_out = make_inputs(1, 2, 1000, 7, 8)
    first = run(slot_cross_attention, inputs, grad_out, torch.float32)
    second = run(slot_cross_attention, inputs, grad_out, torch.float32)
    for name, a, b in zip(NAMES, first, second, strict=True):
        assert torch.equal(a, b), f"{name} differs between two identical runs"


def test_opcheck():
    (q, k, v), _ = make_inputs(1, 2, 50, 5, 6)
    args = tuple(x.detach().requires_grad_() for x in (q, k, v))
    torch.library.opcheck(torch.ops.lsd.slot_cross_attention.default, (*args, 0.3))
    torch.library.opcheck(torch.ops.lsd.slot_cross_attention.default, (*(x.detach().contiguous() for x in args), 0.3))


def test_too_many_keys_is_a_clear_error():
    (q, k, v), _ = make_inputs(1, 1, 4, 300, 4)
    with pytest.raises(ValueError, match="at most 256 keys"):
        slot_cross_attention(q, k, v)


# -- the diffusers processor ----------------------------------------------------------------------


def attention_layer(seed=0, **kwargs) -> Attention:
    torch.manual_seed(seed)
    return Attention(query_dim=32, cross_attention_dim=16, heads=4, dim_head=8, bias=True, **kwargs)


def processor_outputs(layer, processor, hidden, context):
    layer.set_processor(processor)
    layer.zero_grad()
    hidden = hidden.detach().requires_grad_()
    context = context.detach().requires_grad_()
    out = layer(hidden, encoder_hidden_states=context)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(5)))
    grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
    return out.detach(), hidden.grad, context.grad, grads


@pytest.mark.parametrize(
    "kwargs, hidden_shape",
    [
        pytest.param({}, (2, 37, 32), id="3d"),
        pytest.param({"residual_connection": True, "rescale_output_factor": 2.0}, (2, 32, 6, 7), id="4d-residual"),
    ],
)
def test_processor_matches_attn_processor_2_0(kwargs, hidden_shape):
    layer = attention_layer(**kwargs)
    gen = torch.Generator().manual_seed(1)
    hidden, context = torch.randn(hidden_shape, generator=gen), torch.randn(2, 7, 16, generator=gen)
    ours = processor_outputs(layer, SlotCrossAttnProcessor(), hidden, context)
    ref = processor_outputs(layer, AttnProcessor2_0(), hidden, context)
    for name, a, e in zip(("out", "d hidden", "d context"), ours[:3], ref[:3], strict=True):
        assert_close(a, e, name, atol=FP32_ATOL, rtol=FP32_RTOL)
    for name in ref[3]:
        assert_close(ours[3][name], ref[3][name], f"d {name}", atol=FP32_ATOL, rtol=FP32_RTOL)


def test_processor_refuses_what_it_does_not_support():
    layer = attention_layer()
    layer.set_processor(SlotCrossAttnProcessor())
    hidden, context = torch.randn(1, 5, 32), torch.randn(1, 3, 16)
    with pytest.raises(NotImplementedError, match="attention_mask"):
        layer(hidden, encoder_hidden_states=context, attention_mask=torch.ones(1, 3))
    with pytest.raises(NotImplementedError, match="self-attention"):
        layer(hidden)
    normed = attention_layer(cross_attention_norm="layer_norm")
    normed.set_processor(SlotCrossAttnProcessor())
    with pytest.raises(NotImplementedError, match="norm_cross"):
        normed(hidden, encoder_hidden_states=context)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("num_queries, dim", [(1024, 8), (256, 16), (64, 32)], ids=["32px", "16px", "8px"])
def test_gpu_movi_e_denoiser_shapes(num_queries, dim, dtype):
    """The MOVi-E denoiser's cross-attention: B = 32, 24 heads, 24 slots, per resolution."""
    inputs, grad_out = make_inputs(32, 24, num_queries, 24, dim)
    inputs, grad_out = [x.cuda() for x in inputs], grad_out.cuda()
    ours = run(slot_cross_attention, inputs, grad_out, dtype)
    ref32 = run(slot_cross_attention_ref, inputs, grad_out, torch.float32)
    same = run(slot_cross_attention_ref, inputs, grad_out, dtype)
    for name, a, r, s in zip(NAMES, ours, ref32, same, strict=True):
        if dtype == torch.float32:
            assert_close(a, r, name, atol=FP32_ATOL, rtol=FP32_RTOL)
        else:
            assert_within_2x_of_torch(a, r, s, f"{name} ({dtype})")
