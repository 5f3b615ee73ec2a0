"""Ahead-of-time compile check of the fused kernels for real GPU targets, on a machine without one.

Every kernel is compiled exactly as a launch would compile it: the op modules' own planners
(``plan_forward`` / ``plan_backward`` of :mod:`lsd_kernels.slot_attention` and
:mod:`lsd_kernels.slot_cross_attention`) build the :class:`~lsd_kernels._common.KernelCall` (grid,
arguments, constexprs, warps, stages) from meta-device tensors and a :class:`Target`, and the
call goes through Triton's own binder (the divisibility and ``== 1`` specialisations of its
integer and pointer arguments included) into ``triton.compile`` for ``GPUTarget("cuda", arch,
32)``. The triton wheel ships ``ptxas``, so this yields real cubins; ptxas's ``-v`` log gives
registers and spills, Triton's metadata the shared memory. Needs ``TRITON_INTERPRET`` unset when
``lsd_kernels`` is imported. Written against triton 3.9 (``JITFunction._pack_args``).

A row fails on a compile error (for example a 16-bit ``tl.dot`` with K < 16, which the
interpreter runs and the compiler rejects) or on shared memory over the target's per-block
limit (a launch would raise ``OutOfResources``). Spills are reported, not failed on; docs/perf.md
("Compiled for A100 and H100/H200") has the table.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from ._common import KernelCall, LaunchTarget, is_interpreted


class Target(NamedTuple):
    """A GPU to compile for. Limits from NVIDIA's CUDA C++ Programming Guide, "Technical
    Specifications per Compute Capability" (8.0 and 9.0), and the A100 / H100 SXM data sheets."""

    name: str
    arch: int  # compute capability as an int
    num_sms: int  # the planner splits rows for this many SMs (PROGRAMS_PER_SM each)
    max_shared_per_block: int  # bytes, opt-in dynamic shared memory
    shared_per_sm: int  # bytes usable by blocks on one SM
    registers_per_sm: int = 65536
    max_warps_per_sm: int = 64
    max_blocks_per_sm: int = 32

    def launch_target(self) -> LaunchTarget:
        return LaunchTarget(self.arch, self.num_sms)


#: The targets the project compiles for: A100 (sm_80) and H100/H200 (sm_90: same SM, same limits).
TARGETS = {
    "sm_80": Target("A100", 80, 108, 166_912, 167_936),
    "sm_90": Target("H100/H200", 90, 132, 232_448, 233_472),
}

#: Shared memory each block reserves for the system on sm_80+ (CUDA Programming Guide), and the
#: allocation granularities of shared memory (bytes) and registers (per warp).
_RESERVED_SHARED_PER_BLOCK = 1024
_SHARED_GRANULE = 128
_REGISTER_GRANULE_PER_WARP = 256


def ctas_per_sm(target: Target, registers: int, num_warps: int, shared: int) -> int:
    """Resident blocks per SM for a kernel of ``registers`` per thread, ``num_warps`` warps and
    ``shared`` bytes of shared memory per block (the occupancy calculator's rule: the least of the
    register, shared-memory, warp and block limits); 0 when one block does not fit."""
    regs_per_warp = -(-max(registers, 1) * 32 // _REGISTER_GRANULE_PER_WARP) * _REGISTER_GRANULE_PER_WARP
    by_regs = (target.registers_per_sm // regs_per_warp) // num_warps
    shared_per_block = -(-shared // _SHARED_GRANULE) * _SHARED_GRANULE + _RESERVED_SHARED_PER_BLOCK
    by_shared = target.shared_per_sm // shared_per_block
    return max(0, min(by_regs, by_shared, target.max_warps_per_sm // num_warps, target.max_blocks_per_sm))


@dataclass
class Resources:
    """What one compiled kernel uses per thread (registers, spill bytes) and per block."""

    registers: int
    spill_stores: int  # bytes per thread
    spill_loads: int
    shared: int  # bytes per block
    num_warps: int
    num_stages: int


_PTXAS_USED = re.compile(r"Used (\d+) registers")
_PTXAS_SPILLS = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


def parse_ptxas_log(log: str) -> tuple[int, int, int]:
    """``(registers, spill store bytes, spill load bytes)`` from ``ptxas -v`` output."""
    used, spills = _PTXAS_USED.search(log), _PTXAS_SPILLS.search(log)
    if used is None or spills is None:
        raise ValueError(f"no register / spill lines in the ptxas log: {log[-400:]!r}")
    return int(used.group(1)), int(spills.group(1)), int(spills.group(2))


class Bound(NamedTuple):
    """A call bound by Triton's own binder for one target: what ``triton.compile`` receives."""

    kernel: object
    signature: dict
    constexprs: dict
    attrs: dict
    options: object  # the backend's options (num_warps, num_stages, ...)

    def key(self) -> tuple:
        """Equal for calls that compile to the same binary on the same target."""
        return (self.kernel, repr(self.signature), repr(self.constexprs), repr(self.attrs), repr(self.options))


def bind(call: KernelCall, target: Target) -> Bound:
    """Bind ``call`` (its tensors may be meta tensors) for ``target`` exactly as a launch does:
    Triton's binder specialises pointers and integers (divisible by 16, equal to 1), then the
    JIT's own packing turns that into the compile's signature, constexprs and attributes."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    kernel = call.kernel
    if is_interpreted(kernel):
        raise RuntimeError("the AOT check needs TRITON_INTERPRET unset when lsd_kernels is imported")
    backend = make_backend(GPUTarget("cuda", target.arch, 32))
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    meta = dict(call.meta)
    bound, specialization, options = binder(*call.args, **meta)
    options, signature, constexprs, attrs = kernel._pack_args(backend, meta, bound, specialization, options)
    return Bound(kernel, signature, constexprs, attrs, options)


def compile_bound(bound: Bound, target: Target) -> Resources:
    """Compile for ``target`` with a fresh Triton cache (so ptxas runs and its ``-v`` log can be
    read). Raises what the compiler raises."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    log = io.StringIO()
    source = ASTSource(bound.kernel, bound.signature, bound.constexprs, bound.attrs)
    with tempfile.TemporaryDirectory(prefix="lsd-aot-") as cache, knobs.cache.scope(), knobs.nvidia.scope():
        knobs.cache.dir = cache
        knobs.nvidia.dump_ptxas_log = True
        with contextlib.redirect_stdout(log):
            compiled = triton.compile(source, target=GPUTarget("cuda", target.arch, 32), options=bound.options.__dict__)
    registers, stores, loads = parse_ptxas_log(log.getvalue())
    opts = bound.options
    return Resources(registers, stores, loads, int(compiled.metadata.shared), opts.num_warps, opts.num_stages)


@dataclass
class Case:
    """One kernel launch to check: ``plan(target)`` returns the :class:`KernelCall` the op would
    launch on ``target`` (a :class:`~lsd_kernels._common.LaunchTarget`)."""

    kernel: str  # e.g. "slot_attention.bwd+dattn"
    shape: str  # e.g. "movi-e B32 H1 S24 d192 N4096"
    dtype: torch.dtype
    plan: object  # Callable[[LaunchTarget], KernelCall]


@dataclass
class Row:
    """One compiled (case, target): its resources and verdict."""

    kernel: str
    shape: str
    target: str
    dtype: str
    resources: Resources | None = None
    ctas_per_sm: int = 0
    error: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.error


DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def _error_text(err: Exception) -> str:
    first = next((line for line in str(err).splitlines() if line.strip()), "")
    return f"compile error: {type(err).__name__}: {first[:160]}"


def _compile_or_error(bound: Bound, target: Target) -> Resources | str:
    try:
        return compile_bound(bound, target)
    except Exception as err:  # noqa: BLE001 - any compiler failure is this row's verdict
        return _error_text(err)


#: The compiles a forked worker of :func:`check` picks by index (inherited, never pickled).
_PENDING: list[tuple[Bound, Target]] = []


def _compile_pending(index: int) -> Resources | str:
    return _compile_or_error(*_PENDING[index])


def check(cases: list[Case], targets: list[Target], progress=None, jobs: int = 1) -> list[Row]:
    """Compile every case for every target (identical compiles once, ``jobs`` at a time in forked
    worker processes) and return one row each: ``error`` is set on a compile error or on shared
    memory over the target's limit. ``progress`` (e.g. a tqdm bar) advances once per compile."""
    planned = []  # (row, target, key or None)
    unique: dict[tuple, tuple[Bound, Target]] = {}
    for target in targets:
        for case in cases:
            row = Row(case.kernel, case.shape, f"sm_{target.arch}", DTYPE_NAMES[case.dtype])
            try:
                bound = bind(case.plan(target.launch_target()), target)
            except Exception as err:  # noqa: BLE001 - a launch that cannot be planned or bound fails its row
                row.error = _error_text(err)
                planned.append((row, target, None))
                continue
            key = (target, bound.key())
            unique.setdefault(key, (bound, target))
            planned.append((row, target, key))
    if progress is not None:
        progress.reset(total=len(unique))
    results: dict[tuple, Resources | str] = {}
    if jobs > 1 and len(unique) > 1:
        import multiprocessing

        _PENDING[:] = list(unique.values())
        try:
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                for key, result in zip(unique, pool.imap(_compile_pending, range(len(_PENDING))), strict=True):
                    results[key] = result
                    if progress is not None:
                        progress.update(1)
        finally:
            _PENDING.clear()
    else:
        for key, (bound, target) in unique.items():
            results[key] = _compile_or_error(bound, target)
            if progress is not None:
                progress.update(1)
    for row, target, key in planned:
        if key is None:
            continue
        result = results[key]
        if isinstance(result, str):
            row.error = result
            continue
        row.resources = result
        row.ctas_per_sm = ctas_per_sm(target, result.registers, result.num_warps, result.shared)
        if result.shared > target.max_shared_per_block:
            row.error = f"shared memory {result.shared} B > {target.max_shared_per_block} B ({target.name})"
    return [row for row, _, _ in planned]


def format_table(rows: list[Row], notes: dict[str, str] | None = None) -> str:
    """Markdown table: kernel, shape, target, dtype, registers, spill bytes (stores/loads) per
    thread, shared memory per block, warps, stages, CTAs per SM and the verdict (or the note
    ``notes[kernel]`` for a row that spills)."""
    lines = [
        "| kernel | shape | target | dtype | regs | spills st/ld B | smem B | warps | stages | CTAs/SM | verdict |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        res = r.resources
        if res is None:
            lines.append(f"| {r.kernel} | {r.shape} | {r.target} | {r.dtype} | | | | | | | FAIL: {r.error} |")
            continue
        verdict = "ok" if r.ok else f"FAIL: {r.error}"
        if r.ok and res.spill_stores and notes and r.kernel in notes:
            verdict = f"spills: {notes[r.kernel]}"
        lines.append(
            f"| {r.kernel} | {r.shape} | {r.target} | {r.dtype} | {res.registers} | {res.spill_stores}/{res.spill_loads} "
            f"| {res.shared} | {res.num_warps} | {res.num_stages} | {r.ctas_per_sm} | {verdict} |"
        )
    return "\n".join(lines)


def format_summary(rows: list[Row]) -> str:
    """Markdown table, one row per (kernel, target, dtype) over all its shapes: the most registers,
    spilled bytes and shared memory, the fewest CTAs per SM, and how many shapes failed."""
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.kernel, r.target, r.dtype), []).append(r)
    lines = [
        "| kernel | target | dtype | shapes | max regs | max spill stores B | max smem B | min CTAs/SM | failed |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    dtypes = list(DTYPE_NAMES.values())
    for (kernel, target, dtype), group in sorted(groups.items(), key=lambda kv: (kv[0][1], dtypes.index(kv[0][2]))):
        res = [r.resources for r in group if r.resources is not None]
        worst = (
            f"{max(x.registers for x in res)} | {max(x.spill_stores for x in res)} | {max(x.shared for x in res)} "
            f"| {min(r.ctas_per_sm for r in group if r.resources is not None)}"
            if res
            else "| | |"
        )
        lines.append(f"| {kernel} | {target} | {dtype} | {len(group)} | {worst} | {sum(not r.ok for r in group)} |")
    return "\n".join(lines)


# -- the launches of the two ops, as the model makes them ------------------------------------------


def _meta(shape: tuple[int, ...], dtype: torch.dtype, order: tuple[int, ...] | None = None) -> torch.Tensor:
    """A meta tensor of ``shape``; ``order`` permutes a contiguous tensor of the permuted shape
    (``(0, 2, 1, 3)``: a ``(B, L, H, d)`` buffer seen as ``(B, H, L, d)``, as the model's views are)."""
    if order is None:
        return torch.empty(shape, device="meta", dtype=dtype)
    inverse = [order.index(i) for i in range(len(order))]
    return torch.empty([shape[i] for i in order], device="meta", dtype=dtype).permute(*inverse)


def _head_views(batch: int, heads: int, lengths: tuple[int, ...], dim: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """Meta tensors ``(B, H, L, d)`` for each ``L`` in ``lengths``, as the model's views of
    ``(B, L, H*d)`` projections."""
    return [_meta((batch, heads, length, dim), dtype, (0, 2, 1, 3)) for length in lengths]


def slot_attention_cases(
    label: str, batch: int, heads: int, num_slots: int, dim: int, num_inputs: int, dtype: torch.dtype
) -> list[Case]:
    """The forward and the two backward variants (without and with a gradient of ``attn``) of
    :func:`lsd_kernels.slot_attention.slot_attention_updates` as ``lsd.models.slot_attention``
    calls it: q, k, v are ``(B, L, H*d)`` projections viewed as ``(B, H, L, d)``; the gradient of
    ``attn`` is contiguous."""
    from . import slot_attention as op

    shape = f"{label} B{batch} H{heads} S{num_slots} d{dim} N{num_inputs}"

    def inputs():
        return _head_views(batch, heads, (num_slots, num_inputs, num_inputs), dim, dtype)

    def fwd(target):
        q, k, v = inputs()
        return op.plan_forward(q, k, v, 1e-6, target)[0]

    def bwd(with_dattn):
        def plan(target):
            q, k, v = inputs()
            updates = _meta((batch, heads, num_slots, dim), torch.float32)
            lse = _meta((batch, num_inputs), torch.float32)
            colsum = _meta((batch, heads, num_slots), torch.float32)
            dattn = _meta((batch, heads, num_inputs, num_slots), dtype) if with_dattn else None
            return op.plan_backward(q, k, v, updates, lse, colsum, updates, dattn, 1e-6, target)[0]

        return plan

    return [
        Case("slot_attention.fwd", shape, dtype, fwd),
        Case("slot_attention.bwd", shape, dtype, bwd(False)),
        Case("slot_attention.bwd+dattn", shape, dtype, bwd(True)),
    ]


def cross_attention_cases(
    label: str, batch: int, heads: int, num_queries: int, num_keys: int, dim: int, dtype: torch.dtype
) -> list[Case]:
    """Forward and backward of :func:`lsd_kernels.slot_cross_attention.slot_cross_attention` as
    ``lsd.models.attention.SlotCrossAttnProcessor`` calls it: q ``(B, N, H*d)`` and k, v
    ``(B, S, H*d)`` projections viewed as ``(B, H, L, d)``; the output's gradient arrives through
    the processor's transpose, in the same layout as q."""
    from . import slot_cross_attention as op

    shape = f"{label} B{batch} H{heads} N{num_queries} S{num_keys} d{dim}"
    scale = dim**-0.5

    def inputs():
        return _head_views(batch, heads, (num_queries, num_keys, num_keys), dim, dtype)

    def fwd(target):
        q, k, v = inputs()
        return op.plan_forward(q, k, v, scale, target)[0]

    def bwd(target):
        q, k, v = inputs()
        lse = _meta((batch, heads, num_queries), torch.float32)
        grad_out = _meta((batch, heads, num_queries, dim), dtype, (0, 2, 1, 3))
        return op.plan_backward(q, k, v, lse, grad_out, scale, target)[0]

    return [Case("cross_attention.fwd", shape, dtype, fwd), Case("cross_attention.bwd", shape, dtype, bwd)]
