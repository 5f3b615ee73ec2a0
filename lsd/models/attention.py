"""diffusers attention processors of the slot-conditioned denoiser.

- :class:`PositionalAttnProcessor` adds a layer's positional embedding (``attn.pos_emb``) to the
  query-side hidden states, then delegates to the processor it wraps (docs/model.md, "Denoiser").
- :class:`SlotCrossAttnProcessor` runs cross-attention to the slots with the fused Triton op of
  ``lsd_kernels`` (the ``triton`` kernel backend); its torch counterpart is diffusers'
  ``AttnProcessor2_0``.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention

__all__ = ["PositionalAttnProcessor", "SlotCrossAttnProcessor"]


class PositionalAttnProcessor:
    """Adds ``attn.pos_emb`` to the query-side hidden states ``(B, N, C)``, then runs ``inner``."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        hidden_states = attn.pos_emb(hidden_states)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)

    def __repr__(self) -> str:
        return f"PositionalAttnProcessor({type(self.inner).__name__})"


class SlotCrossAttnProcessor:
    """diffusers attention processor for cross-attention to a few tokens (slots), using
    :func:`lsd_kernels.slot_cross_attention.slot_cross_attention`. Same call signature and semantics as diffusers'
    ``AttnProcessor2_0`` (4-D inputs, ``to_out``, ``residual_connection``,
    ``rescale_output_factor``) except that the logits are scaled by ``attn.scale`` (as diffusers'
    ``AttnProcessor``; equal to SDPA's default ``head_dim ** -0.5`` unless the layer was built
    with ``scale_qk=False`` or an explicit ``scale``).

    Not supported (raises): attention masks, self-attention (``encoder_hidden_states=None``),
    and the optional norms ``spatial_norm``, ``group_norm``, ``norm_cross``, ``norm_q``/``norm_k``
    (none is used by the UNets' cross-attention layers in LSD).

    Building one imports the Triton op (``lsd_kernels.slot_cross_attention``); the kernel needs CUDA
    tensors, or ``TRITON_INTERPRET=1`` set before that import to run on CPU.
    """

    def __init__(self) -> None:
        from lsd_kernels.slot_cross_attention import slot_cross_attention

        self._attend = slot_cross_attention

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        # A positional ``scale`` / ``scale=`` kwarg is deprecated and ignored by AttnProcessor2_0 too.
        if attention_mask is not None:
            raise NotImplementedError("SlotCrossAttnProcessor does not support attention_mask; use AttnProcessor2_0")
        if encoder_hidden_states is None:
            raise NotImplementedError(
                "SlotCrossAttnProcessor is for cross-attention (encoder_hidden_states given); use AttnProcessor2_0 "
                "for self-attention"
            )
        unsupported = [
            name for name in ("spatial_norm", "group_norm", "norm_q", "norm_k") if getattr(attn, name, None) is not None
        ]
        if getattr(attn, "norm_cross", None):
            unsupported.append("norm_cross")
        if unsupported:
            raise NotImplementedError(
                f"SlotCrossAttnProcessor does not support attention layers with {', '.join(unsupported)}; "
                "use AttnProcessor2_0"
            )

        residual = hidden_states
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size = hidden_states.shape[0]

        query = attn.to_q(hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        # (B, L, H*d) -> (B, H, L, d) views: the kernel takes strides, nothing is copied.
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)

        hidden_states = self._attend(query, key, value, attn.scale)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)

        hidden_states = attn.to_out[0](hidden_states)  # linear projection
        hidden_states = attn.to_out[1](hidden_states)  # dropout
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor
