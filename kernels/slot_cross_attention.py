"""Fused cross-attention of many queries over a few keys (the denoiser's attention to the slots),
forward and backward (the diffusers processor using it is ``lsd.models.attention.SlotCrossAttnProcessor``).

Conventions: ``q`` ``(B, H, N, d)`` (N = h * w latent positions, many), ``k`` and ``v``
``(B, H, S, d)`` (S = slots, few: all keys of a head fit in one tile), any strides::

    out[b, h, n] = sum_s softmax_s(scale * q[b, h, n] . k[b, h, s]) v[b, h, s]

Kernel design: all S keys and values of one (b, h) are loaded once per program and stay in
registers (S and d padded to >= 16 for the tensor cores); queries stream through in tiles of
``BLOCK_N`` rows.

- Forward, grid ``(N-tiles, B*H)``: ``logits = q k^T`` for a query tile, row softmax in fp32,
  ``out = p v``; the row log-sum-exp is kept for the backward.
- Backward, grid ``(chunks of N, B*H)``: per query tile recompute ``p`` from the log-sum-exp,
  ``dp = dout v^T``, ``ds = p * (dp - rowsum(p * dp))``, write ``dq = scale * ds k``, and
  accumulate ``dk = scale * ds^T q`` and ``dv = p^T dout`` in fp32 registers; per-chunk partials
  are summed by the host (deterministic, no atomics).
- Blocks: ``BLOCK_N`` = 64 queries per tile; ``BLOCK_S`` and ``BLOCK_D``: S and d rounded up to
  powers of two >= 16, masked (no power-of-two shapes assumed). Per dtype, GPU target and
  ``BLOCK_D``, :data:`TUNED` replaces ``BLOCK_N`` and the warps (fp32 backward: 16 rows), chosen
  with the AOT compile check so that no shipped shape spills registers (docs/perf.md, "Compiled
  for A100 and H100/H200"); :func:`plan_forward` / :func:`plan_backward` compute every launch, for
  the op and for that check alike.
- ``tl.dot`` operands are fp32 ("ieee") for fp32 inputs and bf16 inputs in the interpreter, native
  16-bit with fp32 accumulation otherwise.
"""

import torch
import triton
import triton.language as tl

from ._common import (
    KernelCall,
    KernelConfig,
    LaunchTarget,
    check_launchable,
    chunk_tiles,
    dot_block,
    dot_config,
    split_rows,
)
from .reference import slot_cross_attention_ref

__all__ = ["slot_cross_attention", "slot_cross_attention_ref"]

#: Query rows per tile. 64 rows x (d <= 256) keeps a tile at <= 64 fp32 registers per thread with
#: 8 warps; not tuned on hardware (kernels/bench_gpu.py sweeps it).
BLOCK_N = 64
#: Most keys (slots) per head: all of them sit in registers. LSD uses 7-24 slots; text encoders'
#: 77 tokens also fit.
MAX_KEYS = 256
#: Widest head dimension: one tile holds a whole head (diffusers UNets use <= 160).
MAX_HEAD_DIM = 256


@triton.jit
def _head_prologue(k_ptr, v_ptr, k_strides, v_strides, scale, H, S, D, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr):
    """What every program of both kernels starts from, on grid ``(tiles or chunks of N, B*H)``:
    its head ``bh = b * H + h`` (int64: no offset overflow on large tensors, and no per-op int32
    overflow checks in the interpreter), ``scale`` in fp32 (it may arrive as fp64 from
    torch.compile), and all keys and values of the head as zero-padded ``(BLOCK_S, BLOCK_D)`` tiles
    with their slot / dim offsets and validity. Strides are ``(b, h, s, d)`` tuples."""
    bh = tl.program_id(1).to(tl.int64)
    b = bh // H
    h = bh % H
    offs_s = tl.arange(0, BLOCK_S).to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D).to(tl.int64)
    s_valid = offs_s < S
    d_valid = offs_d < D
    kv_mask = s_valid[:, None] & d_valid[None, :]
    k = tl.load(
        k_ptr + b * k_strides[0] + h * k_strides[1] + offs_s[:, None] * k_strides[2] + offs_d[None, :] * k_strides[3],
        mask=kv_mask,
        other=0.0,
    )
    v = tl.load(
        v_ptr + b * v_strides[0] + h * v_strides[1] + offs_s[:, None] * v_strides[2] + offs_d[None, :] * v_strides[3],
        mask=kv_mask,
        other=0.0,
    )
    return bh, b, h, tl.cast(scale, tl.float32), k, v, offs_s, offs_d, s_valid, d_valid


@triton.jit
def _cross_attn_fwd_kernel(
    q_ptr, k_ptr, v_ptr, out_ptr, lse_ptr,
    scale, H, N, S, D,
    q_strides, k_strides, v_strides,
    BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, DOT_DTYPE: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    tile = tl.program_id(0)
    bh, b, h, scale, k, v, offs_s, offs_d, s_valid, d_valid = _head_prologue(
        k_ptr, v_ptr, k_strides, v_strides, scale, H, S, D, BLOCK_S, BLOCK_D
    )
    offs_n = tile * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    n_valid = offs_n < N
    q = tl.load(
        q_ptr + b * q_strides[0] + h * q_strides[1] + offs_n[:, None] * q_strides[2] + offs_d[None, :] * q_strides[3],
        mask=n_valid[:, None] & d_valid[None, :],
        other=0.0,
    )

    logits = tl.dot(q.to(DOT_DTYPE), tl.trans(k.to(DOT_DTYPE)), input_precision=DOT_PRECISION) * scale
    logits = tl.where(s_valid[None, :], logits, float("-inf"))
    row_max = tl.max(logits, axis=1)
    p = tl.exp(logits - row_max[:, None])
    row_sum = tl.sum(p, axis=1)
    p = p / row_sum[:, None]
    # p rounded to the input dtype first, as the native 16-bit dot needs (a no-op for fp32).
    p = p.to(v_ptr.dtype.element_ty).to(DOT_DTYPE)
    out = tl.dot(p, v.to(DOT_DTYPE), input_precision=DOT_PRECISION)

    tl.store(  # out is contiguous (B, H, N, d)
        out_ptr + bh * N * D + offs_n[:, None] * D + offs_d[None, :],
        out.to(out_ptr.dtype.element_ty),
        mask=n_valid[:, None] & d_valid[None, :],
    )
    tl.store(lse_ptr + bh * N + offs_n, row_max + tl.log(row_sum), mask=n_valid)


@triton.jit
def _cross_attn_bwd_kernel(
    q_ptr, k_ptr, v_ptr, dout_ptr, lse_ptr, dq_ptr, dk_part_ptr, dv_part_ptr,
    scale, H, N, S, D, tiles_per_chunk,
    q_strides, k_strides, v_strides, o_strides,
    BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr, DOT_DTYPE: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    chunk = tl.program_id(0)
    bh, b, h, scale, k, v, offs_s, offs_d, s_valid, d_valid = _head_prologue(
        k_ptr, v_ptr, k_strides, v_strides, scale, H, S, D, BLOCK_S, BLOCK_D
    )
    k = k.to(DOT_DTYPE)
    v = v.to(DOT_DTYPE)
    kv_mask = s_valid[:, None] & d_valid[None, :]
    arange_n = tl.arange(0, BLOCK_N).to(tl.int64)
    q_base = q_ptr + b * q_strides[0] + h * q_strides[1]
    do_base = dout_ptr + b * o_strides[0] + h * o_strides[1]

    dk = tl.zeros((BLOCK_S, BLOCK_D), dtype=tl.float32)
    dv = tl.zeros((BLOCK_S, BLOCK_D), dtype=tl.float32)
    tile_start, tile_end = chunk_tiles(chunk, tiles_per_chunk, N, BLOCK_N)
    for tile in range(tile_start, tile_end):
        offs_n = tile * BLOCK_N + arange_n
        n_valid = offs_n < N
        row_mask = n_valid[:, None] & d_valid[None, :]
        q = tl.load(q_base + offs_n[:, None] * q_strides[2] + offs_d[None, :] * q_strides[3], mask=row_mask, other=0.0)
        do = tl.load(
            do_base + offs_n[:, None] * o_strides[2] + offs_d[None, :] * o_strides[3], mask=row_mask, other=0.0
        )
        q = q.to(DOT_DTYPE)
        do = do.to(DOT_DTYPE)
        lse = tl.load(lse_ptr + bh * N + offs_n, mask=n_valid, other=0.0)

        logits = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
        p = tl.where(n_valid[:, None] & s_valid[None, :], tl.exp(logits - lse[:, None]), 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        ds = p * (dp - tl.sum(p * dp, axis=1)[:, None])  # softmax backward, (BLOCK_N, BLOCK_S)
        # Rounded to the input dtype first, as the native 16-bit dots need (no-ops for fp32).
        ds = ds.to(q_ptr.dtype.element_ty).to(DOT_DTYPE)
        p = p.to(v_ptr.dtype.element_ty).to(DOT_DTYPE)

        dq = tl.dot(ds, k, input_precision=DOT_PRECISION) * scale
        tl.store(  # dq is contiguous (B, H, N, d)
            dq_ptr + bh * N * D + offs_n[:, None] * D + offs_d[None, :],
            dq.to(dq_ptr.dtype.element_ty),
            mask=row_mask,
        )
        dk = tl.dot(tl.trans(ds), q, dk, input_precision=DOT_PRECISION)
        dv = tl.dot(tl.trans(p), do, dv, input_precision=DOT_PRECISION)

    part = (chunk * tl.num_programs(1) + bh) * S * D  # partials are contiguous (chunks, B*H, S, d)
    tl.store(dk_part_ptr + part + offs_s[:, None] * D + offs_d[None, :], dk * scale, mask=kv_mask)
    tl.store(dv_part_ptr + part + offs_s[:, None] * D + offs_d[None, :], dv, mask=kv_mask)


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.ndim != 4 or k.ndim != 4 or k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(
            "slot_cross_attention expects q (B, H, N, d) and k, v (B, H, S, d); got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    if k.shape[2] > MAX_KEYS or q.shape[3] > MAX_HEAD_DIM:
        raise ValueError(
            f"slot_cross_attention supports at most {MAX_KEYS} keys and head dim {MAX_HEAD_DIM}; "
            f"got {k.shape[2]} keys, head dim {q.shape[3]} (use AttnProcessor2_0 for long key sequences)"
        )


def _num_warps(block_d: int) -> int:
    return 8 if block_d >= 128 else 4


#: Per (kernel, dtype, compute capability, BLOCK_D): the :class:`KernelConfig` replacing the default
#: (``BLOCK_N``, :func:`_num_warps`, Triton's 3 stages), chosen with the AOT check (docs/perf.md,
#: "Compiled for A100 and H100/H200") so that no shipped shape spills registers. Anything not
#: listed (the interpreter among it) takes the default.
TUNED: dict[tuple[str, torch.dtype, int, int], KernelConfig] = {
    # fp32 backward: five FMA dots per tile; 64-row tiles spill 0.7 KB (d <= 16) to 7 KB (d = 32,
    # where ptxas settles on 32 registers) per thread. 16 rows fit; d = 64 needs 8 warps besides.
    **{("bwd", torch.float32, arch, d): KernelConfig(16, 4) for arch in (80, 90) for d in (16, 32)},
    **{("bwd", torch.float32, arch, 64): KernelConfig(16, 8) for arch in (80, 90)},
}

#: Replaces every config when set (kernels/bench_gpu.py's sweep; tests of the AOT check).
CONFIG_OVERRIDE: KernelConfig | None = None


def select_config(kernel_name: str, dtype: torch.dtype, target: LaunchTarget, block_d: int) -> KernelConfig:
    """The :class:`KernelConfig` of a launch of ``kernel_name`` ("fwd" or "bwd") for inputs of
    ``dtype`` with head dim padded to ``block_d`` on ``target`` (see :data:`TUNED`)."""
    if CONFIG_OVERRIDE is not None:
        return CONFIG_OVERRIDE
    tuned = TUNED.get((kernel_name, dtype, target.arch, block_d))
    return tuned if tuned is not None else KernelConfig(BLOCK_N, _num_warps(block_d))


def _meta(config: KernelConfig, kernel, dtype: torch.dtype, num_keys: int, block_d: int) -> dict:
    return dict(
        BLOCK_N=config.block_n, BLOCK_S=dot_block(num_keys), BLOCK_D=block_d, **dot_config(kernel, dtype),
        **config.meta(),
    )  # fmt: skip


def plan_forward(q, k, v, scale: float, target: LaunchTarget | None = None):
    """The forward launch for ``q``, ``k``, ``v`` (checked) on ``target`` (default: their device):
    ``(call, out, lse)``, the outputs allocated on the inputs' device (the meta device in the AOT
    check); ``call`` is ``None`` when there is nothing to launch."""
    _check(q, k, v)
    check_launchable(_cross_attn_fwd_kernel, "slot_cross_attention", q, k, v)
    target = target or LaunchTarget.of(_cross_attn_fwd_kernel, q.device)
    batch, heads, num_queries, dim = q.shape
    num_keys = k.shape[2]
    out = torch.empty((batch, heads, num_queries, dim), device=q.device, dtype=q.dtype)
    lse = torch.empty((batch, heads, num_queries), device=q.device, dtype=torch.float32)
    if out.numel() == 0:
        return None, out, lse
    if num_keys == 0:
        raise ValueError("slot_cross_attention needs at least one key")
    block_d = dot_block(dim)
    config = select_config("fwd", q.dtype, target, block_d)
    args = (
        q, k, v, out, lse, float(scale), heads, num_queries, num_keys, dim, q.stride(), k.stride(), v.stride(),
    )  # fmt: skip
    grid = (triton.cdiv(num_queries, config.block_n), batch * heads)
    return (
        KernelCall(
            _cross_attn_fwd_kernel, grid, args, _meta(config, _cross_attn_fwd_kernel, q.dtype, num_keys, block_d)
        ),
        out,
        lse,
    )


def _forward(q, k, v, scale):
    call, out, lse = plan_forward(q, k, v, scale)
    if call is not None:
        call.run()
    return out, lse


def plan_backward(q, k, v, lse, grad_out, scale: float, target: LaunchTarget | None = None):
    """The backward launch on ``target`` (default: the inputs' device): ``(call, dq, dk_part,
    dv_part)``; ``call`` is ``None`` when there is nothing to launch (then ``dq`` is zeroed and the
    partials are ``None``)."""
    target = target or LaunchTarget.of(_cross_attn_bwd_kernel, q.device)
    batch, heads, num_queries, dim = q.shape
    num_keys = k.shape[2]
    dq = torch.empty((batch, heads, num_queries, dim), device=q.device, dtype=q.dtype)
    if dq.numel() == 0 or num_keys == 0:
        return None, dq.zero_(), None, None
    block_d = dot_block(dim)
    config = select_config("bwd", q.dtype, target, block_d)
    chunks, tiles_per_chunk = split_rows(target, triton.cdiv(num_queries, config.block_n), batch * heads)
    dk_part = torch.empty((chunks, batch, heads, num_keys, dim), device=q.device, dtype=torch.float32)
    dv_part = torch.empty_like(dk_part)
    args = (
        q, k, v, grad_out, lse, dq, dk_part, dv_part, float(scale), heads, num_queries, num_keys, dim,
        tiles_per_chunk, q.stride(), k.stride(), v.stride(), grad_out.stride(),
    )  # fmt: skip
    meta = _meta(config, _cross_attn_bwd_kernel, q.dtype, num_keys, block_d)
    return KernelCall(_cross_attn_bwd_kernel, (chunks, batch * heads), args, meta), dq, dk_part, dv_part


def _backward(q, k, v, lse, grad_out, scale):
    call, dq, dk_part, dv_part = plan_backward(q, k, v, lse, grad_out, scale)
    if call is None:
        return dq, k.new_zeros(k.shape), v.new_zeros(v.shape)
    call.run()
    return dq, dk_part.sum(0).to(k.dtype), dv_part.sum(0).to(v.dtype)


# -- torch.library ops ------------------------------------------------------------------------------


@torch.library.custom_op(
    "lsd::slot_cross_attention",
    mutates_args=(),
    schema="(Tensor q, Tensor k, Tensor v, float scale) -> (Tensor, Tensor)",
)
def _slot_cross_attention_op(q, k, v, scale):
    """Returns ``out`` (B, H, N, d) in q's dtype and, kept for the backward, the row
    log-sum-exp (B, H, N) in fp32."""
    return _forward(q, k, v, scale)


@_slot_cross_attention_op.register_fake
def _(q, k, v, scale):
    batch, heads, num_queries, dim = q.shape
    return (
        q.new_empty((batch, heads, num_queries, dim)),
        q.new_empty((batch, heads, num_queries), dtype=torch.float32),
    )


@torch.library.custom_op(
    "lsd::slot_cross_attention_backward",
    mutates_args=(),
    schema="(Tensor q, Tensor k, Tensor v, Tensor lse, Tensor grad_out, float scale) -> (Tensor, Tensor, Tensor)",
)
def _slot_cross_attention_backward_op(q, k, v, lse, grad_out, scale):
    """Gradients ``(dq, dk, dv)`` of :func:`_slot_cross_attention_op`, contiguous."""
    return _backward(q, k, v, lse, grad_out, scale)


@_slot_cross_attention_backward_op.register_fake
def _(q, k, v, lse, grad_out, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, scale = inputs
    _, lse = output
    ctx.save_for_backward(q, k, v, lse)
    ctx.scale = scale


def _backward_rule(ctx, grad_out, grad_lse):
    # lse is an internal output (saved for this rule); its gradient is ignored.
    q, k, v, lse = ctx.saved_tensors
    if grad_out is None:
        return None, None, None, None
    dq, dk, dv = _slot_cross_attention_backward_op(q, k, v, lse, grad_out, ctx.scale)
    return dq, dk, dv, None


_slot_cross_attention_op.register_autograd(_backward_rule, setup_context=_setup_context)


def slot_cross_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Fused :func:`slot_cross_attention_ref` (same results and gradients).

    Args:
        q: queries ``(B, H, N, d)``; k, v: keys and values ``(B, H, S, d)``; any strides;
            fp32/fp16/bf16 (promoted to a common dtype); arithmetic in fp32.
        scale: logit multiplier; ``d ** -0.5`` when ``None``.

    Returns:
        ``(B, H, N, d)``, contiguous, in the inputs' dtype.
    """
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    out, _ = torch.ops.lsd.slot_cross_attention(q.to(dtype), k.to(dtype), v.to(dtype), scale)
    return out
