"""Readable torch references of the fused ops: what each kernel computes, and what the model's
``torch`` backend runs. Imports torch only (no Triton, nothing of ``lsd``): ``lsd.models`` imports
these functions from here, and the kernel tests compare the kernels against them.

Conventions: ``B`` batch, ``H`` heads, ``S`` slots (few), ``N`` inputs or queries (many), ``d``
head dimension. Every argument may have any strides; results are in the inputs' dtype.
"""

from __future__ import annotations

import torch

__all__ = ["slot_attention_updates_ref", "slot_cross_attention_ref"]


def slot_attention_updates_ref(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One slot-attention read-out (the release's ``MultiHeadSTEVESA`` iteration body).

    Args:
        q: queries ``(B, H, S, d)``.
        k: keys ``(B, H, N, d)``, already multiplied by ``slot_size ** -0.5``.
        v: values ``(B, H, N, d)``.
        epsilon: added to the attention before normalising over inputs.

    Returns:
        ``updates`` ``(B, H, S, d)``: the attention-weighted mean of ``v`` per slot and head;
        ``attn`` ``(B, H, N, S)``: softmax over heads x slots jointly (sums to 1 over ``(H, S)``).
    """
    batch, heads, num_inputs, _ = k.shape
    num_slots = q.shape[2]
    logits = torch.einsum("bhnd,bhsd->bhns", k, q)  # (B, H, N, S)
    joint = logits.transpose(1, 2).reshape(batch, num_inputs, heads * num_slots)  # (B, N, H*S)
    attn = joint.softmax(dim=-1).reshape(batch, num_inputs, heads, num_slots).transpose(1, 2)  # (B, H, N, S)
    weights = attn + epsilon
    weights = weights / weights.sum(dim=2, keepdim=True)  # normalise over inputs N
    updates = torch.einsum("bhns,bhnd->bhsd", weights, v)  # (B, H, S, d)
    return updates, attn


def slot_cross_attention_ref(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Cross-attention of many queries over a few keys: ``softmax(scale * q k^T) v`` over the keys.

    Args:
        q: ``(B, H, N, d)``; k, v: ``(B, H, S, d)``; scale: logit multiplier (usually ``d ** -0.5``).

    Returns:
        ``(B, H, N, d)`` in q's dtype.
    """
    logits = torch.einsum("bhnd,bhsd->bhns", q, k) * scale  # (B, H, N, S)
    return torch.einsum("bhns,bhsd->bhnd", logits.softmax(dim=-1), v)  # (B, H, N, d)
