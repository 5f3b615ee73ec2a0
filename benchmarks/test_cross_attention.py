"""The denoiser's cross-attention to the slots (many queries, few keys), forward and
forward+backward, at the MOVi-E UNet's largest attention resolution: 32x32 latent positions,
24 heads of dimension 8, 24 slots.

Providers (reference first): ``sdpa`` (``F.scaled_dot_product_attention``, what diffusers'
``AttnProcessor2_0`` calls), ``einsum`` (:func:`slot_cross_attention_ref`, the readable reference)
and ``triton`` (the fused kernel, CUDA only). fp32 on CPU, bf16 on a GPU.

FLOPs: ``FlopCounterMode`` does not see SDPA's CPU kernel, so they are counted on the einsum
reference (the same math): ``4*B*H*N*S*d`` forward, 3x that forward+backward.

Bytes (memory-bound: ``d = 8``): the least any implementation must move, each tensor read or
written once, with ``e`` bytes per element, ``Q = B*H*N*d`` and ``K = B*H*S*d``:
forward ``e * (2Q + 2K)`` (read q, k, v; write out); forward+backward adds
``e * (3Q + 4K)`` (read q, k, v, dout; write dq, dk, dv).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from lsd_kernels.reference import slot_cross_attention_ref

from ._perf import Work, count_flops, max_rel_diff, measure, skip_unless_runnable, sync

PROVIDERS = ("sdpa", "einsum", "triton")
REFERENCE = "sdpa"
#: (batch on CPU, batch on GPU, heads, latent side, head dim, slots): MOVi-E's 32x32 cross-attention.
SHAPE = {"cpu": (8, 24, 32, 8, 24), "cuda": (32, 24, 32, 8, 24)}
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2}


def _fn(provider: str):
    if provider == "sdpa":
        return lambda q, k, v: F.scaled_dot_product_attention(q, k, v)
    if provider == "einsum":
        return lambda q, k, v: slot_cross_attention_ref(q, k, v, q.shape[-1] ** -0.5)
    from lsd_kernels.slot_cross_attention import slot_cross_attention

    return lambda q, k, v: slot_cross_attention(q, k, v)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("backward", [False, True], ids=["fwd", "fwd+bwd"])
def test_cross_attention(benchmark, device: torch.device, backward: bool, provider: str) -> None:
    """q ``(B, H, N, d)``, k and v ``(B, H, S, d)`` -> ``(B, H, N, d)`` (and dq, dk, dv)."""
    skip_unless_runnable(provider, device)
    batch, heads, side, dim, slots = SHAPE[device.type]
    num_queries = side * side
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    gen = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(batch, heads, n, dim, generator=gen).to(device, dtype).requires_grad_(backward)
        for n in (num_queries, slots, slots)
    )
    grad_out = torch.randn(batch, heads, num_queries, dim, generator=gen).to(device, dtype)

    def make_call(fn):
        def call() -> torch.Tensor:
            """Forward -> out; forward + backward -> dq."""
            if not backward:
                with torch.no_grad():
                    out = fn(q, k, v)
                sync(device)
                return out
            q.grad = k.grad = v.grad = None
            fn(q, k, v).backward(grad_out)
            sync(device)
            return q.grad

        return call

    flops = count_flops(make_call(_fn("einsum")))
    expected = make_call(_fn(REFERENCE))().clone()
    call = make_call(_fn(provider))
    err = max_rel_diff(call(), expected)
    assert err <= TOLERANCE[dtype], f"{provider} differs from {REFERENCE} by {err:.3g} (relative)"

    size = torch.finfo(dtype).bits // 8
    qo, kv = batch * heads * num_queries * dim, batch * heads * slots * dim
    nbytes = size * (2 * qo + 2 * kv) + (size * (3 * qo + 4 * kv) if backward else 0)
    measure(
        benchmark,
        call,
        group=f"cross_attention {'fwd+bwd' if backward else 'fwd'} movi-e 32x32",
        provider=provider,
        reference=REFERENCE,
        device=device,
        work=Work(
            flops=flops,
            bytes=nbytes,
            bytes_formula="e*(2Q+2K)" + (" + e*(3Q+4K)" if backward else "") + ", Q=B*H*N*d, K=B*H*S*d",
            shapes={"q": [batch, heads, num_queries, dim], "k,v": [batch, heads, slots, dim]},
            dtype=str(dtype).removeprefix("torch."),
            extra={"batch": batch},
        ),
        max_rel_err=err,
    )
