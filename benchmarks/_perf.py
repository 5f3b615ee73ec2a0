"""Measurement helpers shared by the benchmarks: providers, FLOP counting, limits and recording.

Every benchmark goes through :func:`measure`, which times one provider of one group with
pytest-benchmark and fills ``benchmark.extra_info`` with what the report needs:

- ``provider`` / ``reference_provider``: ``lsd bench-report`` recomputes every ratio from these and
  the group, so the table never depends on the in-run bookkeeping below.
- ``speedup_vs_reference``: reference median / this provider's median (> 1: faster than the
  reference), taken in the same run. The reference of each group is parametrised first, so it has
  run when the others are measured; if it was deselected or skipped the field is ``None``.
- ``flops``: counted once with :class:`torch.utils.flop_counter.FlopCounterMode` on the reference
  path (the same math for every provider of a group: matmuls, convolutions and attention; no
  elementwise ops), and ``achieved_gflop_s`` from it.
- ``bytes`` for memory-bound ops (the formula is in each benchmark's docstring) and
  ``achieved_gb_s`` from it.
- ``fraction_of_matmul_peak`` / ``fraction_of_copy_bandwidth``: achieved rates over the physical
  limit as measured on this device at the start of the session (:func:`device_limits`: the best of
  a few large matmuls and large copies), not a datasheet number.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

#: Reference medians (seconds) of the groups measured so far in this session, keyed by group.
REFERENCE_MEDIANS: dict[str, float] = {}

#: Time one benchmark aims to spend in its timed rounds on CPU (seconds): keeps the whole suite
#: under ten minutes on two shared cores; GPU rounds are cheap, so GPUs get more rounds.
ROUND_BUDGET_S = {"cpu": 2.0, "cuda": 1.0}
#: Shortest timed round: faster calls are repeated ``iterations`` times per round so the timer's
#: resolution and Python overhead stay small against the measured time.
MIN_ROUND_S = 0.02
MIN_ROUNDS, MAX_ROUNDS = 3, 50

TRITON_ON_CPU = "Triton needs a CUDA GPU (the CPU interpreter is not a timing)"


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that a timed call includes it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """Human-readable device, e.g. ``"AMD EPYC (2 cores, 1 torch threads)"`` or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def environment(device: torch.device) -> dict[str, Any]:
    """Device and library versions recorded with every benchmark."""
    import diffusers

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    return {
        "device": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "triton": triton_version,
        "diffusers": diffusers.__version__,
        "cuda": torch.version.cuda,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` as counted by ``FlopCounterMode`` (forward and, if ``fn`` calls
    ``backward``, backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class Limits:
    """Physical limits measured on one device: dense-matmul FLOP/s and copy bandwidth."""

    matmul_flop_s: float
    copy_bytes_s: float
    matmul_dtype: str


_LIMITS: dict[tuple[str, torch.dtype], Limits] = {}


def device_limits(device: torch.device, dtype: torch.dtype) -> Limits:
    """Best of 5 square matmuls (``2 n^3`` FLOPs) and of 5 clones of a large tensor (read + write:
    ``2 * nbytes``), measured once per session and device."""
    key = (str(device), dtype)
    if key not in _LIMITS:
        n, copy_numel = (8192, 2**28) if device.type == "cuda" else (1024, 2**23)
        a = torch.randn(n, n, device=device).to(dtype)
        big = torch.empty(copy_numel, device=device, dtype=torch.float32)
        mm, cp = math.inf, math.inf
        for _ in range(6):  # the first of each is a warm-up, kept out by taking the best
            sync(device)
            start = time.perf_counter()
            a @ a
            sync(device)
            mm = min(mm, time.perf_counter() - start)
            start = time.perf_counter()
            big.clone()
            sync(device)
            cp = min(cp, time.perf_counter() - start)
        _LIMITS[key] = Limits(2 * n**3 / mm, 2 * big.nbytes / cp, str(dtype).removeprefix("torch."))
    return _LIMITS[key]


def triton_skip_reason(device: torch.device) -> str | None:
    """Why the Triton providers cannot be timed on ``device``, or ``None``."""
    if device.type != "cuda":
        return TRITON_ON_CPU
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "TRITON_INTERPRET=1 is set: interpreted kernels are not a timing"
    from lsd.backends import triton_unavailable_reason

    return triton_unavailable_reason(device)


def compile_skip_reason(device: torch.device) -> str | None:
    """Why ``torch.compile`` (inductor) cannot run on ``device``, or ``None``."""
    if device.type == "cpu" and not any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        return "torch.compile (inductor) on CPU needs a C++ compiler; none is on PATH"
    return None


def compile_backend(benchmark) -> str:
    """``inductor`` when timing; with ``--benchmark-disable`` (one untimed call, as a test),
    ``aot_eager``: the same graph capture and autograd, without minutes of C++ compilation."""
    return "aot_eager" if benchmark.disabled else "inductor"


def skip_unless_runnable(provider: str, device: torch.device) -> None:
    """Skip the current test, with the reason, when ``provider`` cannot run on ``device``."""
    reasons = []
    if "triton" in provider:
        reasons.append(triton_skip_reason(device))
    if "compile" in provider:
        reasons.append(compile_skip_reason(device))
    reason = next((r for r in reasons if r), None)
    if reason:
        pytest.skip(reason)


@dataclass
class Work:
    """What one call of a benchmarked function does, for the derived rates.

    Attributes:
        flops: FLOPs per call (from :func:`count_flops` on the reference path).
        bytes: bytes a call must move at least (memory-bound ops), or ``None``.
        bytes_formula: how ``bytes`` was computed.
        items: images (or samples) per call, for ``items_per_s``; ``None`` when meaningless.
        shapes: named shapes, e.g. ``{"q": [B, H, S, d]}``.
        dtype: compute dtype as a string (``"fp32"``, ``"bf16 autocast"``).
        extra: anything else worth recording (batch, config name, steps, ...).
    """

    flops: int
    bytes: int | None = None
    bytes_formula: str | None = None
    items: int | None = None
    shapes: dict[str, Any] = field(default_factory=dict)
    dtype: str = "fp32"
    extra: dict[str, Any] = field(default_factory=dict)


def _calibrate(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one warm call (after one warm-up call)."""
    fn()
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def measure(
    benchmark,
    fn: Callable[[], object],
    *,
    group: str,
    provider: str,
    reference: str,
    device: torch.device,
    work: Work,
    compile_s: float | None = None,
    max_rel_err: float | None = None,
) -> None:
    """Time ``fn`` (which must leave no GPU work queued: wrap it with :func:`sync`) as
    ``provider`` of ``group`` and record everything in ``benchmark.extra_info``.

    Rounds and iterations adapt to the call's duration: one round lasts at least
    :data:`MIN_ROUND_S`, and the timed rounds about :data:`ROUND_BUDGET_S` in all. One warm-up
    call runs outside the timed rounds (compilation belongs in the test body, before this).
    """
    benchmark.group = group  # read when pytest-benchmark creates its stats: set it first
    info = benchmark.extra_info
    info.update(environment(device))
    info.update(
        provider=provider,
        reference_provider=reference,
        is_reference=provider == reference,
        shapes=work.shapes,
        dtype=work.dtype,
        flops=work.flops,
        flops_source="torch.utils.flop_counter.FlopCounterMode on the reference path",
        bytes=work.bytes,
        bytes_formula=work.bytes_formula,
        items_per_call=work.items,
        compile_s=compile_s,
        max_rel_err_vs_reference=max_rel_err,
        **work.extra,
    )
    if benchmark.disabled:  # --benchmark-disable: one call, as a test
        benchmark.pedantic(fn)
        sync(device)
        return

    once = max(_calibrate(fn, device), 1e-7)
    iterations = max(1, math.ceil(MIN_ROUND_S / once))
    rounds = int(min(MAX_ROUNDS, max(MIN_ROUNDS, ROUND_BUDGET_S.get(device.type, 1.0) // (once * iterations))))
    benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=0)

    median = benchmark.stats.stats.median
    if provider == reference:
        REFERENCE_MEDIANS[group] = median
    ref = REFERENCE_MEDIANS.get(group)
    info["speedup_vs_reference"] = ref / median if ref is not None else None
    info["median_s"] = median
    info["achieved_gflop_s"] = work.flops / median / 1e9
    if work.bytes is not None:
        info["achieved_gb_s"] = work.bytes / median / 1e9
    if work.items is not None:
        info["items_per_s"] = work.items / median
    limits = device_limits(device, torch.bfloat16 if "bf16" in work.dtype else torch.float32)
    info["peak_matmul_gflop_s_measured"] = limits.matmul_flop_s / 1e9
    info["peak_copy_gb_s_measured"] = limits.copy_bytes_s / 1e9
    info["fraction_of_matmul_peak"] = work.flops / median / limits.matmul_flop_s
    if work.bytes is not None:
        info["fraction_of_copy_bandwidth"] = work.bytes / median / limits.copy_bytes_s


def max_rel_diff(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |actual - expected| / max |expected|`` in fp32: the error relative to the output's scale."""
    expected = expected.detach().float()
    scale = expected.abs().max().clamp_min(torch.finfo(torch.float32).tiny)
    return ((actual.detach().float() - expected).abs().max() / scale).item()
