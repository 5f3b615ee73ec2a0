"""Fused Triton kernels for LSD, installed as ``lsd_kernels`` (never as ``kernels``: that
top-level name belongs to the Hugging Face ``kernels`` package, which diffusers probes for).

Importing this package imports no Triton; each op module imports it on first use.
"""

from __future__ import annotations

import importlib.util

#: The fused ops the model's ``triton`` backend needs, as ``lsd_kernels`` submodule names.
REQUIRED_OPS = ("slot_attention", "slot_cross_attention")


def missing_ops() -> list[str]:
    """The names in :data:`REQUIRED_OPS` that this installation does not provide."""
    return [op for op in REQUIRED_OPS if importlib.util.find_spec(f"{__name__}.{op}") is None]
