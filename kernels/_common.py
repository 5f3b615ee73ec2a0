"""Helpers shared by the op modules: launch checks, block sizes, chunking of N (host side), and
the ``@triton.jit`` pieces both ops' kernels use.

Imports Triton (op modules only import this file, never ``lsd_kernels/__init__``), but touches
no driver at import time: everything here runs when a kernel is launched.
"""

import os
from typing import NamedTuple

import torch
import triton
import triton.language as tl

#: Dtypes the kernels accept; loads are upcast to fp32 for all softmax/normalisation arithmetic.
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

#: Smallest extent of a ``tl.dot`` operand dimension: the NVIDIA compiler needs K >= 16 for 16-bit
#: dots (>= 8 for fp32), and M, N >= 16; slot counts (7, 11, 24) and head dims are padded to this.
MIN_DOT_BLOCK = 16

#: Programs a launch aims for on a GPU, per streaming multiprocessor: enough to fill the machine
#: without making the per-chunk partial buffers (reduced in torch) large. Not tuned on hardware
#: (no GPU in the session that wrote this); kernels/bench_gpu.py is where to sweep it.
PROGRAMS_PER_SM = 2

#: Programs a launch aims for under TRITON_INTERPRET=1, where each program instance costs about
#: 0.5 ms of numpy simulation: small, but > 1 chunk per batch so tests exercise the reduction of
#: the partial buffers.
INTERPRETER_TARGET_PROGRAMS = 16


def is_interpreted(kernel) -> bool:
    """Whether ``kernel`` (a ``@triton.jit`` function) runs in the CPU interpreter. Decided when
    the kernel was decorated (TRITON_INTERPRET=1 at import of its module), not at call time."""
    try:
        from triton.runtime.interpreter import InterpretedFunction
    except ImportError:  # pragma: no cover - layout of older Triton releases
        return os.environ.get("TRITON_INTERPRET") == "1"
    return isinstance(kernel, InterpretedFunction)


def check_launchable(kernel, op: str, *tensors: torch.Tensor) -> None:
    """Raise a readable error where a launch would fail deep inside Triton."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"{op}: all tensors must be on one device, got {sorted(map(str, devices))}")
    device = devices.pop()
    # meta tensors: planning only (the AOT check compiles the planned launch, never runs it).
    if device.type not in ("cuda", "meta") and not is_interpreted(kernel):
        raise RuntimeError(
            f"{op}: Triton kernels need CUDA tensors, or TRITON_INTERPRET=1 set before lsd_kernels "
            f"is imported to run them on CPU (got tensors on {device})"
        )
    for t in tensors:
        if t.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"{op}: unsupported dtype {t.dtype}; expected one of {SUPPORTED_DTYPES}")


_TL_DTYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


def dot_config(kernel, dtype: torch.dtype) -> dict:
    """The ``DOT_DTYPE`` / ``DOT_PRECISION`` constexprs of a launch: ``tl.dot`` operands are fp32
    with "ieee" products for fp32 inputs, and for bf16 inputs in the interpreter (whose bf16
    ``tl.dot`` is silently wrong); otherwise native 16-bit tensor-core dots with fp32 accumulation
    (the precision string is then unused)."""
    fp32 = dtype == torch.float32 or (dtype == torch.bfloat16 and is_interpreted(kernel))
    return {"DOT_DTYPE": tl.float32 if fp32 else _TL_DTYPES[dtype], "DOT_PRECISION": "ieee" if fp32 else "tf32"}


def dot_block(n: int, cap: int | None = None) -> int:
    """Power-of-two block covering ``n`` (at least :data:`MIN_DOT_BLOCK`), optionally capped."""
    block = max(MIN_DOT_BLOCK, triton.next_power_of_2(max(int(n), 1)))
    return min(block, cap) if cap is not None else block


@triton.jit
def chunk_tiles(chunk, tiles_per_chunk, N, BLOCK_N: tl.constexpr):
    """The row tiles ``[start, end)`` of program ``chunk`` when ``cdiv(N, BLOCK_N)`` tiles are split
    into chunks of ``tiles_per_chunk`` (see :func:`split_rows`); the last chunk may be short."""
    tile_start = chunk * tiles_per_chunk
    return tile_start, tl.minimum(tile_start + tiles_per_chunk, tl.cdiv(N, BLOCK_N))


class LaunchTarget(NamedTuple):
    """What a launch plan depends on besides the tensors: the CUDA compute capability as an int
    (80 for A100, 90 for H100/H200; ``None`` in the interpreter) and the number of streaming
    multiprocessors (``None``: aim for :data:`INTERPRETER_TARGET_PROGRAMS` programs). The ops build
    it from their tensors' device (:meth:`of`); the AOT check (``lsd_kernels.aot``) builds it for a
    target it compiles for, so both plan the same launch."""

    arch: int | None
    num_sms: int | None

    @classmethod
    def of(cls, kernel, device: torch.device) -> "LaunchTarget":
        if is_interpreted(kernel) or device.type != "cuda":
            return cls(None, None)
        props = torch.cuda.get_device_properties(device)
        return cls(10 * props.major + props.minor, props.multi_processor_count)


class KernelConfig(NamedTuple):
    """Launch meta-parameters of one kernel: rows per tile, warps and software-pipelining stages
    (``None``: Triton's default, 3)."""

    block_n: int
    num_warps: int
    num_stages: int | None = None

    def meta(self) -> dict:
        """The launch keywords (``num_warps``, and ``num_stages`` when set)."""
        return {"num_warps": self.num_warps} | ({} if self.num_stages is None else {"num_stages": self.num_stages})


class KernelCall(NamedTuple):
    """One planned kernel launch: ``kernel[grid](*args, **meta)``. The ops run it; the AOT check
    compiles it for a target without running it (its tensors may be on the meta device)."""

    kernel: object
    grid: tuple[int, ...]
    args: tuple
    meta: dict

    def run(self) -> None:
        with device_guard(self.args[0]):
            self.kernel[self.grid](*self.args, **self.meta)


def split_rows(target: LaunchTarget, num_tiles: int, other_programs: int) -> tuple[int, int]:
    """Split ``num_tiles`` row tiles into chunks, one program each (times ``other_programs``
    along the other grid axes). Returns ``(num_chunks, tiles_per_chunk)``; every chunk is
    non-empty."""
    if target.num_sms is None:
        goal = INTERPRETER_TARGET_PROGRAMS
    else:
        goal = PROGRAMS_PER_SM * target.num_sms
    chunks = max(1, min(num_tiles, triton.cdiv(goal, max(other_programs, 1))))
    tiles_per_chunk = triton.cdiv(num_tiles, chunks)
    return triton.cdiv(num_tiles, tiles_per_chunk), tiles_per_chunk


class device_guard:
    """``torch.cuda.device(t.device)`` for CUDA tensors (Triton launches on the current device),
    a no-op otherwise."""

    def __init__(self, t: torch.Tensor) -> None:
        self._ctx = torch.cuda.device(t.device) if t.is_cuda else None

    def __enter__(self):
        if self._ctx is not None:
            self._ctx.__enter__()

    def __exit__(self, *exc):
        if self._ctx is not None:
            return self._ctx.__exit__(*exc)
        return False
