"""Fused slot-attention read-out: logits, joint softmax over heads x slots, +eps, normalisation
over inputs and the weighted mean of the values, forward and backward, in one pass over k and v.

Conventions (as :func:`lsd_kernels.reference.slot_attention_updates_ref`, re-exported here):
``q`` ``(B, H, S, d)``, ``k`` and ``v`` ``(B, H, N, d)`` (``k`` pre-scaled), any strides. Per batch ``b`` and input ``n`` the joint column ``j = h * S + s``
runs over heads x slots::

    L[n, j]  = k[b, h, n] . q[b, h, s]
    A[n, :]  = softmax_j L[n, :]                  -> attn[b, h, n, s]        (returned)
    C[j]     = sum_n (A[n, j] + eps)
    U[j]     = sum_n (A[n, j] + eps) / C[j] * v[b, h, n]   -> updates[b, h, s]  (returned)

Kernel design. All heads are handled at once by one block-diagonal product: a tile of ``k`` is
read as a ``(BLOCK_N, H*d)`` matrix (column ``c = h * d + i``) and multiplied with the
block-diagonal ``(H*d, H*S)`` matrix holding ``q[b, h]^T`` in block ``h``, so the joint softmax is a
plain row softmax over ``H*S`` columns. That costs ``H`` times the necessary FLOPs, which is
free for the release's ``H = 1`` and cheap for small ``H`` (the op is memory-bound).

- Forward, grid ``(chunks of N, B, column blocks of H*d)``: each program walks its N-tiles once,
  writes ``attn`` and the row log-sum-exp, and accumulates the column sums ``C`` and the
  unnormalised ``(A + eps)^T v`` in fp32 registers; per-chunk partials go to small fp32 buffers
  that the host sums (deterministic, no atomics) and divides.
- Backward, same grid: with ``r[j] = dU[j] . U[j]`` (host, tiny), the gradient through the
  normalisation over N needs no reduction over N (``d(A+eps)[n, j] = (dU[j] . v[n] - r[j]) / C[j]``),
  so one pass over k, v and dattn recomputes ``A`` from the saved log-sum-exp, applies the joint
  softmax backward, writes ``dk``, ``dv`` and accumulates per-chunk partials of ``dq``.
- k and v are each read once per column block; for ``H*d <= 256`` (MOVi-E: 192) there is one
  block, i.e. one pass.
- Blocks: ``BLOCK_N`` = 64 inputs per tile, ``BLOCK_HS`` = H*S rounded up to a power of two
  >= 16 (S = 7, 11, 24 are padded and masked), ``BLOCK_K`` <= 64 for the reduction over H*d,
  ``BLOCK_C`` <= 256 output columns of H*d (odd d padded and masked); no power-of-two shapes assumed.
  Per dtype and GPU target, :data:`TUNED` replaces these (fp32: 16-row tiles), chosen with the AOT
  compile check so that no shipped shape spills registers (docs/perf.md, "Compiled for A100 and
  H100/H200"); :func:`plan_forward` / :func:`plan_backward` compute every launch, for the op and
  for that check alike.
- All softmax/normalisation arithmetic is fp32. ``tl.dot`` operands are fp32 ("ieee") for fp32
  inputs and for bf16 inputs in the interpreter (whose bf16 dot is wrong), native 16-bit with fp32
  accumulation otherwise (the softmax weights are rounded to the input dtype before ``w^T v``, as
  flash-attention does).
"""

from typing import NamedTuple

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
from .reference import slot_attention_updates_ref

__all__ = ["slot_attention_updates", "slot_attention_updates_ref"]

#: Rows (inputs n) per tile. 64 keeps the (BLOCK_N, 256) k/v tiles of MOVi-E at 64 fp32 registers
#: per thread with 8 warps; not tuned on hardware (kernels/bench_gpu.py sweeps it).
BLOCK_N = 64
#: Width of the chunks the logits' reduction over H*d walks in (register pressure vs loop trips).
BLOCK_K_MAX = 64
#: Widest column block of H*d per program: 256 covers MOVi-E's d = 192 in one block, so k and v
#: are read exactly once; wider slot sizes (COCO: 768) take several blocks, re-reading k.
BLOCK_C_MAX = 256
#: Largest H*S handled: all joint columns live in registers (the softmax is over all of them).
MAX_JOINT_SLOTS = 256


@triton.jit
def _joint_columns(S, HS, BLOCK_HS: tl.constexpr):
    """Joint columns ``j = h * S + s`` of one program: offsets, validity, head and slot of each."""
    offs_j = tl.arange(0, BLOCK_HS).to(tl.int64)
    return offs_j, offs_j < HS, offs_j // S, offs_j % S


@triton.jit
def _value_columns(cblk, D, HD, BLOCK_C: tl.constexpr):
    """Columns ``c = h * d + i`` of v in column block ``cblk``: offsets, validity, head, dim."""
    offs_c = cblk * BLOCK_C + tl.arange(0, BLOCK_C).to(tl.int64)
    return offs_c, offs_c < HD, offs_c // D, offs_c % D


@triton.jit
def _program_prologue(
    q_ptr, k_ptr, v_ptr, q_strides, k_strides, v_strides, eps, S, D, HS, HD,
    BLOCK_N: tl.constexpr, BLOCK_HS: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """What every program of both kernels starts from, on grid ``(chunks of N, B, column blocks)``:
    its batch ``b`` (int64: no offset overflow on large tensors, and no per-op int32 overflow
    checks in the interpreter), column block, ``eps`` in fp32 (it may arrive as fp64 from
    torch.compile), the joint columns ``j`` and value columns ``c`` it covers, the row arange,
    and the batch's base pointers into q, k and v. Strides are ``(b, h, n or s, d)`` tuples."""
    b = tl.program_id(1).to(tl.int64)
    cblk = tl.program_id(2)
    offs_j, j_valid, j_head, j_slot = _joint_columns(S, HS, BLOCK_HS)
    offs_c, c_valid, c_head, c_dim = _value_columns(cblk, D, HD, BLOCK_C)
    return (
        b, cblk, tl.cast(eps, tl.float32), offs_j, j_valid, j_head, j_slot, offs_c, c_valid, c_head, c_dim,
        tl.arange(0, BLOCK_N).to(tl.int64), q_ptr + b * q_strides[0], k_ptr + b * k_strides[0],
        v_ptr + b * v_strides[0],
    )  # fmt: skip


@triton.jit
def _block_diag_dot(
    x_base,
    x_stride_h,
    x_stride_n,
    x_stride_d,
    y_base,
    y_stride_h,
    y_stride_s,
    y_stride_d,
    offs_n,
    n_valid,
    j_valid,
    j_head,
    j_slot,
    D,
    HD,
    BLOCK_N: tl.constexpr,
    BLOCK_HS: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_DTYPE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    """``out[n, j] = x[h(j), n] . y[h(j), s(j)]`` for a tile of inputs, all heads at once: the
    ``(BLOCK_N, H*d)`` tile of ``x`` (a ``(H, N, d)`` tensor) times the block-diagonal
    ``(H*d, H*S)`` matrix holding ``y[h]^T`` (``y`` a ``(H, S, d)`` tensor) in block ``h``,
    reduced over ``H*d`` in chunks of ``BLOCK_K``; fp32 accumulation."""
    out = tl.zeros((BLOCK_N, BLOCK_HS), dtype=tl.float32)
    arange_k = tl.arange(0, BLOCK_K).to(tl.int64)
    for k0 in range(0, HD, BLOCK_K):
        offs_k = k0 + arange_k
        k_valid = offs_k < HD
        k_head = offs_k // D
        k_dim = offs_k % D
        xt = tl.load(
            x_base + k_head[None, :] * x_stride_h + offs_n[:, None] * x_stride_n + k_dim[None, :] * x_stride_d,
            mask=n_valid[:, None] & k_valid[None, :],
            other=0.0,
        )
        ybd = tl.load(  # (BLOCK_K, BLOCK_HS): y[h(j), s(j), i(c)] where h(c) == h(j), else 0
            y_base + j_head[None, :] * y_stride_h + j_slot[None, :] * y_stride_s + k_dim[:, None] * y_stride_d,
            mask=k_valid[:, None] & j_valid[None, :] & (k_head[:, None] == j_head[None, :]),
            other=0.0,
        )
        out = tl.dot(xt.to(DOT_DTYPE), ybd.to(DOT_DTYPE), out, input_precision=DOT_PRECISION)
    return out


@triton.jit
def _joint_logits(
    tile, arange_n, N, k_base, k_strides, q_base, q_strides, j_valid, j_head, j_slot, D, HD,
    BLOCK_N: tl.constexpr, BLOCK_HS: tl.constexpr, BLOCK_K: tl.constexpr, DOT_DTYPE: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    """Row tile ``tile`` of the inputs: its offsets ``n``, their validity, the valid ``(n, j)``
    mask and the logits ``L[n, j] = k[h(j), n] . q[h(j), s(j)]`` (fp32), as the forward computes
    them and the backward recomputes them."""
    offs_n = tile * BLOCK_N + arange_n
    n_valid = offs_n < N
    logits = _block_diag_dot(
        k_base, k_strides[1], k_strides[2], k_strides[3], q_base, q_strides[1], q_strides[2], q_strides[3],
        offs_n, n_valid, j_valid, j_head, j_slot, D, HD, BLOCK_N, BLOCK_HS, BLOCK_K, DOT_DTYPE, DOT_PRECISION,
    )  # fmt: skip
    return offs_n, n_valid, n_valid[:, None] & j_valid[None, :], logits


@triton.jit
def _slot_attention_fwd_kernel(
    q_ptr, k_ptr, v_ptr, attn_ptr, lse_ptr, upd_part_ptr, col_part_ptr,
    eps, B, N, S, D, HS, HD, tiles_per_chunk,
    q_strides, k_strides, v_strides,
    BLOCK_N: tl.constexpr, BLOCK_HS: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_C: tl.constexpr,
    DOT_DTYPE: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    chunk = tl.program_id(0)
    b, cblk, eps, offs_j, j_valid, j_head, j_slot, offs_c, c_valid, c_head, c_dim, arange_n, q_base, k_base, v_base = (
        _program_prologue(
            q_ptr, k_ptr, v_ptr, q_strides, k_strides, v_strides, eps, S, D, HS, HD, BLOCK_N, BLOCK_HS, BLOCK_C
        )
    )
    attn_base = attn_ptr + b * HS * N  # attn is contiguous (B, H, N, S)

    colsum = tl.zeros((BLOCK_HS,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_HS, BLOCK_C), dtype=tl.float32)
    tile_start, tile_end = chunk_tiles(chunk, tiles_per_chunk, N, BLOCK_N)
    for tile in range(tile_start, tile_end):
        offs_n, n_valid, valid, logits = _joint_logits(tile, arange_n, N, k_base, k_strides, q_base, q_strides,
            j_valid, j_head, j_slot, D, HD, BLOCK_N, BLOCK_HS, BLOCK_K, DOT_DTYPE, DOT_PRECISION)  # fmt: skip
        logits = tl.where(j_valid[None, :], logits, float("-inf"))
        row_max = tl.max(logits, axis=1)
        p = tl.exp(logits - row_max[:, None])
        row_sum = tl.sum(p, axis=1)
        p = p / row_sum[:, None]  # joint softmax over heads x slots
        if cblk == 0:  # one column block writes attn and the log-sum-exp
            tl.store(
                attn_base + j_head[None, :] * (N * S) + offs_n[:, None] * S + j_slot[None, :],
                p.to(attn_ptr.dtype.element_ty),
                mask=valid,
            )
            tl.store(lse_ptr + b * N + offs_n, row_max + tl.log(row_sum), mask=n_valid)

        w = tl.where(valid, p + eps, 0.0)
        colsum += tl.sum(w, axis=0)
        vt = tl.load(
            v_base + c_head[None, :] * v_strides[1] + offs_n[:, None] * v_strides[2] + c_dim[None, :] * v_strides[3],
            mask=n_valid[:, None] & c_valid[None, :],
            other=0.0,
        )
        # w rounded to the input dtype first, as the native 16-bit dot needs (a no-op for fp32).
        w = w.to(v_ptr.dtype.element_ty).to(DOT_DTYPE)
        acc = tl.dot(tl.trans(w), vt.to(DOT_DTYPE), acc, input_precision=DOT_PRECISION)

    # Keep the diagonal blocks (head of slot == head of column): a (H*S, d) = (H, S, d) partial.
    part = chunk * B + b
    tl.store(
        upd_part_ptr + part * HS * D + offs_j[:, None] * D + c_dim[None, :],
        acc,
        mask=j_valid[:, None] & c_valid[None, :] & (j_head[:, None] == c_head[None, :]),
    )
    if cblk == 0:
        tl.store(col_part_ptr + part * HS + offs_j, colsum, mask=j_valid)


@triton.jit
def _slot_attention_bwd_kernel(
    q_ptr, k_ptr, v_ptr, dupd_ptr, dattn_ptr, lse_ptr, colsum_ptr, r_ptr, dq_part_ptr, dk_ptr, dv_ptr,
    eps, B, N, S, D, HS, HD, tiles_per_chunk,
    q_strides, k_strides, v_strides, a_strides,
    HAS_DATTN: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_HS: tl.constexpr, BLOCK_K: tl.constexpr,
    BLOCK_C: tl.constexpr, DOT_DTYPE: tl.constexpr, DOT_PRECISION: tl.constexpr,
):  # fmt: skip
    chunk = tl.program_id(0)
    b, cblk, eps, offs_j, j_valid, j_head, j_slot, offs_c, c_valid, c_head, c_dim, arange_n, q_base, k_base, v_base = (
        _program_prologue(
            q_ptr, k_ptr, v_ptr, q_strides, k_strides, v_strides, eps, S, D, HS, HD, BLOCK_N, BLOCK_HS, BLOCK_C
        )
    )
    dupd_base = dupd_ptr + b * HS * D  # dU is contiguous fp32 (B, H, S, d): row j = h * S + s
    colsum = tl.load(colsum_ptr + b * HS + offs_j, mask=j_valid, other=1.0)
    r = tl.load(r_ptr + b * HS + offs_j, mask=j_valid, other=0.0)

    # Loop-invariant block-diagonal (H*S, column block) slices of q and dU for this program.
    diag = j_valid[:, None] & c_valid[None, :] & (j_head[:, None] == c_head[None, :])
    q_blk = tl.load(
        q_base + j_head[:, None] * q_strides[1] + j_slot[:, None] * q_strides[2] + c_dim[None, :] * q_strides[3],
        mask=diag,
        other=0.0,
    ).to(DOT_DTYPE)
    du_blk = tl.load(dupd_base + offs_j[:, None] * D + c_dim[None, :], mask=diag, other=0.0).to(DOT_DTYPE)

    dq_acc = tl.zeros((BLOCK_HS, BLOCK_C), dtype=tl.float32)
    tile_start, tile_end = chunk_tiles(chunk, tiles_per_chunk, N, BLOCK_N)
    for tile in range(tile_start, tile_end):
        # Logits (as in the forward) and dW[n, j] = v[n] . dU[j] (same head; dU strides (S*d, d, 1)).
        offs_n, n_valid, valid, logits = _joint_logits(tile, arange_n, N, k_base, k_strides, q_base, q_strides,
            j_valid, j_head, j_slot, D, HD, BLOCK_N, BLOCK_HS, BLOCK_K, DOT_DTYPE, DOT_PRECISION)  # fmt: skip
        dw = _block_diag_dot(
            v_base, v_strides[1], v_strides[2], v_strides[3], dupd_base, S * D, D, 1,
            offs_n, n_valid, j_valid, j_head, j_slot, D, HD, BLOCK_N, BLOCK_HS, BLOCK_K, DOT_DTYPE, DOT_PRECISION,
        )  # fmt: skip

        lse = tl.load(lse_ptr + b * N + offs_n, mask=n_valid, other=0.0)
        a = tl.where(valid, tl.exp(logits - lse[:, None]), 0.0)  # attn, recomputed in fp32
        w = tl.where(valid, (a + eps) / colsum[None, :], 0.0)  # normalised weights
        da = tl.where(valid, (dw - r[None, :]) / colsum[None, :], 0.0)  # through the normalisation over N
        if HAS_DATTN:
            da += tl.load(
                dattn_ptr + b * a_strides[0] + j_head[None, :] * a_strides[1] + offs_n[:, None] * a_strides[2]
                + j_slot[None, :] * a_strides[3],
                mask=valid,
                other=0.0,
            ).to(tl.float32)  # fmt: skip
        dlogits = a * (da - tl.sum(a * da, axis=1)[:, None])  # joint softmax backward
        # Rounded to the input dtype first, as the native 16-bit dots need (no-ops for fp32).
        dlogits = dlogits.to(q_ptr.dtype.element_ty).to(DOT_DTYPE)
        w = w.to(v_ptr.dtype.element_ty).to(DOT_DTYPE)

        out_mask = n_valid[:, None] & c_valid[None, :]
        out_offs = b * N * HD + c_head[None, :] * (N * D) + offs_n[:, None] * D + c_dim[None, :]  # contiguous dk, dv
        dk = tl.dot(dlogits, q_blk, input_precision=DOT_PRECISION)
        tl.store(dk_ptr + out_offs, dk.to(dk_ptr.dtype.element_ty), mask=out_mask)
        dv = tl.dot(w, du_blk, input_precision=DOT_PRECISION)
        tl.store(dv_ptr + out_offs, dv.to(dv_ptr.dtype.element_ty), mask=out_mask)
        kt = tl.load(
            k_base + c_head[None, :] * k_strides[1] + offs_n[:, None] * k_strides[2] + c_dim[None, :] * k_strides[3],
            mask=out_mask,
            other=0.0,
        )
        dq_acc = tl.dot(tl.trans(dlogits), kt.to(DOT_DTYPE), dq_acc, input_precision=DOT_PRECISION)

    part = chunk * B + b
    tl.store(dq_part_ptr + part * HS * D + offs_j[:, None] * D + c_dim[None, :], dq_acc, mask=diag)


def _blocks(num_slots_joint: int, hd: int, block_c_max: int = BLOCK_C_MAX) -> tuple[int, int, int]:
    if num_slots_joint > MAX_JOINT_SLOTS:
        raise ValueError(
            f"slot_attention_updates: heads x slots = {num_slots_joint} > {MAX_JOINT_SLOTS} is not supported"
        )
    return dot_block(num_slots_joint), dot_block(hd, BLOCK_K_MAX), dot_block(hd, block_c_max)


def _num_warps(block_c: int) -> int:
    return 8 if block_c >= 128 else 4


#: Per (kernel, dtype, compute capability): ``(KernelConfig, widest column block)`` replacing the
#: default (``BLOCK_N``, :func:`_num_warps`, Triton's 3 stages, ``BLOCK_C_MAX``), chosen with the
#: AOT check (docs/perf.md, "Compiled for A100 and H100/H200") so that no shipped shape spills
#: registers. Anything not listed (the interpreter among it) takes the default.
TUNED: dict[tuple[str, torch.dtype, int], tuple[KernelConfig, int]] = {
    # fp32 dots run on FMA units ("ieee"), whose operand layouts take far more registers than
    # the tensor cores': 64-row tiles spill 1.7 KB (forward) and 1.8-3.0 KB (backward) per thread.
    **{(kind, torch.float32, arch): (KernelConfig(16, 8), 256) for kind in ("fwd", "bwd") for arch in (80, 90)},
    # 16-bit backward with the gradient of attn on sm_90: 255 registers and 40 B spilled at 64 rows.
    **{("bwd", dtype, 90): (KernelConfig(32, 8), 256) for dtype in (torch.float16, torch.bfloat16)},
}

#: Replaces every config when set (kernels/bench_gpu.py's sweep; tests of the AOT check).
CONFIG_OVERRIDE: tuple[KernelConfig, int] | None = None


def select_config(kernel_name: str, dtype: torch.dtype, target: LaunchTarget, hd: int) -> tuple[KernelConfig, int]:
    """The ``(KernelConfig, widest column block)`` of a launch of ``kernel_name`` ("fwd" or
    "bwd") for inputs of ``dtype`` on ``target`` (see :data:`TUNED`)."""
    if CONFIG_OVERRIDE is not None:
        return CONFIG_OVERRIDE
    tuned = TUNED.get((kernel_name, dtype, target.arch))
    if tuned is not None:
        return tuned
    return KernelConfig(BLOCK_N, _num_warps(dot_block(hd, BLOCK_C_MAX))), BLOCK_C_MAX


def _check_shapes(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.ndim != 4 or k.ndim != 4 or k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3]:
        raise ValueError(
            "slot_attention_updates expects q (B, H, S, d) and k, v (B, H, N, d); got "
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
        )


class _Launch(NamedTuple):
    """Sizes and launch geometry shared by the forward and backward launches."""

    batch: int
    heads: int
    num_slots: int
    dim: int
    num_inputs: int
    hs: int  # H * S joint columns
    hd: int  # H * d value columns
    block_hs: int
    block_k: int
    block_c: int
    grid: tuple[int, int, int]  # (chunks of N, B, column blocks of H*d)
    tiles_per_chunk: int
    config: KernelConfig


def _launch(kernel_name: str, q: torch.Tensor, k: torch.Tensor, target: LaunchTarget) -> _Launch:
    batch, heads, num_slots, dim = q.shape
    num_inputs = k.shape[2]
    hs, hd = heads * num_slots, heads * dim
    config, block_c_max = select_config(kernel_name, q.dtype, target, hd)
    block_hs, block_k, block_c = _blocks(hs, hd, block_c_max)
    num_cblocks = triton.cdiv(hd, block_c)
    chunks, tiles_per_chunk = split_rows(target, triton.cdiv(num_inputs, config.block_n), batch * num_cblocks)
    return _Launch(
        batch, heads, num_slots, dim, num_inputs, hs, hd, block_hs, block_k, block_c,
        (chunks, batch, num_cblocks), tiles_per_chunk, config,
    )  # fmt: skip


def _meta(g: _Launch, kernel, dtype: torch.dtype) -> dict:
    return dict(
        BLOCK_N=g.config.block_n, BLOCK_HS=g.block_hs, BLOCK_K=g.block_k, BLOCK_C=g.block_c,
        **dot_config(kernel, dtype), **g.config.meta(),
    )  # fmt: skip


def plan_forward(q, k, v, epsilon: float, target: LaunchTarget | None = None):
    """The forward launch for ``q``, ``k``, ``v`` (checked) on ``target`` (default: their device):
    ``(call, attn, lse, upd_part, col_part)``, the outputs allocated on the inputs' device (the
    meta device in the AOT check); ``call`` is ``None`` when there is nothing to launch."""
    _check_shapes(q, k, v)
    check_launchable(_slot_attention_fwd_kernel, "slot_attention_updates", q, k, v)
    target = target or LaunchTarget.of(_slot_attention_fwd_kernel, q.device)
    g = _launch("fwd", q, k, target)
    chunks = g.grid[0]
    attn = torch.empty((g.batch, g.heads, g.num_inputs, g.num_slots), device=q.device, dtype=q.dtype)
    lse = torch.empty((g.batch, g.num_inputs), device=q.device, dtype=torch.float32)
    upd_part = torch.zeros((chunks, g.batch, g.heads, g.num_slots, g.dim), device=q.device, dtype=torch.float32)
    col_part = torch.zeros((chunks, g.batch, g.heads, g.num_slots), device=q.device, dtype=torch.float32)
    call = None
    if g.num_inputs > 0 and g.batch > 0:
        args = (
            q, k, v, attn, lse, upd_part, col_part, float(epsilon),
            g.batch, g.num_inputs, g.num_slots, g.dim, g.hs, g.hd, g.tiles_per_chunk,
            q.stride(), k.stride(), v.stride(),
        )  # fmt: skip
        call = KernelCall(_slot_attention_fwd_kernel, g.grid, args, _meta(g, _slot_attention_fwd_kernel, q.dtype))
    return call, attn, lse, upd_part, col_part


def _forward(q, k, v, epsilon):
    call, attn, lse, upd_part, col_part = plan_forward(q, k, v, epsilon)
    if call is not None:
        call.run()
    colsum = col_part.sum(0)  # (B, H, S): sum_n (attn + eps)
    updates = upd_part.sum(0) / colsum[..., None]
    return updates, attn, lse, colsum


def plan_backward(q, k, v, updates, lse, colsum, grad_updates, grad_attn, epsilon, target: LaunchTarget | None = None):
    """The backward launch on ``target`` (default: the inputs' device): ``(call, dq_part, dk, dv)``
    (``call`` ``None`` when there is nothing to launch); see :func:`plan_forward`."""
    target = target or LaunchTarget.of(_slot_attention_bwd_kernel, q.device)
    g = _launch("bwd", q, k, target)
    grad_updates = grad_updates.float().contiguous()
    r = (grad_updates * updates).sum(-1).contiguous()  # (B, H, S): dU . U
    dq_part = torch.zeros((g.grid[0], g.batch, g.heads, g.num_slots, g.dim), device=q.device, dtype=torch.float32)
    dk = torch.empty((g.batch, g.heads, g.num_inputs, g.dim), device=k.device, dtype=k.dtype)
    dv = torch.empty((g.batch, g.heads, g.num_inputs, g.dim), device=v.device, dtype=v.dtype)
    has_dattn = grad_attn is not None
    dattn = grad_attn if has_dattn else grad_updates  # any pointer when unused
    dattn_strides = grad_attn.stride() if has_dattn else (0, 0, 0, 0)
    call = None
    if g.num_inputs > 0 and g.batch > 0:
        args = (
            q, k, v, grad_updates, dattn, lse, colsum, r, dq_part, dk, dv, float(epsilon),
            g.batch, g.num_inputs, g.num_slots, g.dim, g.hs, g.hd, g.tiles_per_chunk,
            q.stride(), k.stride(), v.stride(), dattn_strides,
        )  # fmt: skip
        meta = {"HAS_DATTN": int(has_dattn), **_meta(g, _slot_attention_bwd_kernel, q.dtype)}
        call = KernelCall(_slot_attention_bwd_kernel, g.grid, args, meta)
    return call, dq_part, dk, dv


def _backward(q, k, v, updates, lse, colsum, grad_updates, grad_attn, epsilon):
    call, dq_part, dk, dv = plan_backward(q, k, v, updates, lse, colsum, grad_updates, grad_attn, epsilon)
    if call is not None:
        call.run()
    return dq_part.sum(0).to(q.dtype), dk, dv


# -- torch.library ops ------------------------------------------------------------------------------


@torch.library.custom_op(
    "lsd::slot_attention_updates",
    mutates_args=(),
    schema="(Tensor q, Tensor k, Tensor v, float epsilon) -> (Tensor, Tensor, Tensor, Tensor)",
)
def _slot_attention_updates_op(q, k, v, epsilon):
    """Returns ``updates`` (B, H, S, d) in fp32, ``attn`` (B, H, N, S) in q's dtype, and, kept for
    the backward, the row log-sum-exp (B, N) and column sums (B, H, S) in fp32."""
    return _forward(q, k, v, epsilon)


@_slot_attention_updates_op.register_fake
def _(q, k, v, epsilon):
    batch, heads, num_slots, dim = q.shape
    num_inputs = k.shape[2]
    return (
        q.new_empty((batch, heads, num_slots, dim), dtype=torch.float32),
        q.new_empty((batch, heads, num_inputs, num_slots)),
        q.new_empty((batch, num_inputs), dtype=torch.float32),
        q.new_empty((batch, heads, num_slots), dtype=torch.float32),
    )


@torch.library.custom_op(
    "lsd::slot_attention_updates_backward",
    mutates_args=(),
    schema=(
        "(Tensor q, Tensor k, Tensor v, Tensor updates, Tensor lse, Tensor colsum, Tensor grad_updates, "
        "Tensor? grad_attn, float epsilon) -> (Tensor, Tensor, Tensor)"
    ),
)
def _slot_attention_updates_backward_op(q, k, v, updates, lse, colsum, grad_updates, grad_attn, epsilon):
    """Gradients ``(dq, dk, dv)`` of :func:`_slot_attention_updates_op` (dk, dv contiguous)."""
    return _backward(q, k, v, updates, lse, colsum, grad_updates, grad_attn, epsilon)


@_slot_attention_updates_backward_op.register_fake
def _(q, k, v, updates, lse, colsum, grad_updates, grad_attn, epsilon):
    return torch.empty_like(q, memory_format=torch.contiguous_format), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, epsilon = inputs
    updates, _, lse, colsum = output
    ctx.save_for_backward(q, k, v, updates, lse, colsum)
    ctx.epsilon = epsilon


def _backward_rule(ctx, grad_updates, grad_attn, grad_lse, grad_colsum):
    # lse and colsum are internal outputs (saved for this rule); their gradients are ignored.
    q, k, v, updates, lse, colsum = ctx.saved_tensors
    if grad_updates is None:
        grad_updates = torch.zeros_like(updates)
    dq, dk, dv = _slot_attention_updates_backward_op(
        q, k, v, updates, lse, colsum, grad_updates, grad_attn, ctx.epsilon
    )
    return dq, dk, dv, None


_slot_attention_updates_op.register_autograd(_backward_rule, setup_context=_setup_context)


def slot_attention_updates(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused :func:`slot_attention_updates_ref`: same arguments (``q`` ``(B, H, S, d)``, pre-scaled
    ``k`` and ``v`` ``(B, H, N, d)``, ``epsilon``), results (``updates`` ``(B, H, S, d)``, ``attn``
    ``(B, H, N, S)``) and gradients. Any strides; fp32/fp16/bf16 inputs, promoted to a common dtype,
    which both results have; arithmetic in fp32."""
    dtype = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    updates, attn, _, _ = torch.ops.lsd.slot_attention_updates(q, k, v, float(epsilon))
    return updates.to(dtype), attn
