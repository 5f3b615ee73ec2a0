"""Kernel backend selection: ``"torch"`` (reference), ``"triton"`` (fused kernels), ``"auto"``.

``auto`` picks ``triton`` when the fused ops can run on the given device (CUDA with Triton
installed, or CPU under ``TRITON_INTERPRET=1``) and ``torch`` otherwise. Asking for ``triton``
where it cannot run raises :class:`KernelBackendUnavailable` naming the reason; nothing falls back
silently. Switching backend never changes results beyond float tolerance.
"""

from __future__ import annotations

import importlib.util
import os

import torch

KERNEL_BACKENDS = ("torch", "triton", "auto")


class KernelBackendUnavailable(RuntimeError):
    """The requested kernel backend cannot run here; the message says why."""


def triton_unavailable_reason(device: torch.device | str) -> str | None:
    """Why the Triton backend cannot run on ``device``, or ``None`` when it can."""
    device = torch.device(device)
    if importlib.util.find_spec("triton") is None:
        return "the `triton` package is not installed"
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        return f"Triton kernels need a CUDA device (got {device}) or TRITON_INTERPRET=1 on CPU"
    from lsd_kernels import missing_ops  # deferred: imports nothing heavy, but keep `import lsd` lean

    missing = missing_ops()
    if missing:
        return f"lsd_kernels does not provide the fused op(s) {', '.join(missing)} in this version"
    return None


def resolve_kernel_backend(name: str, device: torch.device | str) -> str:
    """Resolve ``name`` to the concrete backend (``"torch"`` or ``"triton"``) used on ``device``."""
    if name not in KERNEL_BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}; expected one of {KERNEL_BACKENDS}")
    if name == "torch":
        return "torch"
    reason = triton_unavailable_reason(device)
    if name == "triton":
        if reason is not None:
            raise KernelBackendUnavailable(f"kernel backend 'triton' is unavailable: {reason}")
        return "triton"
    return "torch" if reason is not None else "triton"
