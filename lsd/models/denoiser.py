"""The slot-conditioned denoiser of LSD (the release's ``UNet2DConditionModelWithPos``).

A diffusers ``UNet2DConditionModel`` where, in every transformer block of the cross-attention
down/mid/up blocks, a positional embedding is added to the hidden states entering ``attn1``
(self-attention: queries, keys and values all see it) and ``attn2`` (cross-attention: only the
query side; the slots are untouched). The release did this by rebinding ``forward`` on each
attention module; here each attention module holds its embedding as a child ``pos_emb`` and a
:class:`PositionalAttnProcessor` adds it before delegating to the real attention processor.
``set_attn_processor`` is overridden so that swapping processors (xformers, kernels, ...) keeps
the embedding.
"""

from __future__ import annotations

from diffusers import UNet2DConditionModel
from diffusers.configuration_utils import register_to_config
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

from lsd.backends import resolve_kernel_backend
from lsd.models._config import extends_init
from lsd.models.attention import PositionalAttnProcessor, SlotCrossAttnProcessor
from lsd.models.positional import POS_TYPES, build_positional_embedding


def _block_resolutions(unet: UNet2DConditionModel) -> dict[str, list[int]]:
    """Spatial side of the hidden states inside each down / mid / up block (release's rule)."""
    side = unet.config.sample_size
    if not isinstance(side, int):
        raise ValueError(f"positional embeddings need an int sample_size, got {side!r}")
    down = []
    for block in unet.down_blocks:
        down.append(side)
        if block.downsamplers is not None:
            side //= 2
    mid = [side]
    up = []
    for block in unet.up_blocks:
        up.append(side)
        if block.upsamplers is not None:
            side *= 2
    return {"down_blocks": down, "mid_block": mid, "up_blocks": up}


def _transformer_blocks(block):
    """The ``BasicTransformerBlock``s of a down/mid/up block (none for blocks without attention)."""
    for attention in getattr(block, "attentions", None) or []:
        if not hasattr(attention, "transformer_blocks"):
            raise ValueError(
                f"{type(block).__name__} has attention layers that are not transformer blocks; "
                "positional embeddings are only defined for CrossAttn*Block2D / UNetMidBlock2DCrossAttn"
            )
        yield from attention.transformer_blocks


def set_unet_kernel_backend(unet: UNet2DConditionModel, name: str) -> str:
    """Point every attention layer of ``unet`` at the ``torch`` (SDPA) or ``triton`` processors.

    Works on any ``UNet2DConditionModel``; on :class:`SlotConditionedUNet` the positional
    embeddings are kept. Returns the resolved backend.
    """
    resolved = resolve_kernel_backend(name, unet.device)
    if resolved == "triton":
        processors = {}
        for proc_name in unet.attn_processors:
            module = unet.get_submodule(proc_name.removesuffix(".processor"))
            processors[proc_name] = SlotCrossAttnProcessor() if module.is_cross_attention else AttnProcessor2_0()
        unet.set_attn_processor(processors)
    else:
        unet.set_attn_processor(AttnProcessor2_0())
    if isinstance(unet, SlotConditionedUNet):  # keep its record right when called directly (LSD does)
        unet.kernel_backend = resolved
    return resolved


class SlotConditionedUNet(UNet2DConditionModel):
    """``UNet2DConditionModel`` + positional embeddings in its attention layers.

    Call it as any diffusers UNet: ``unet(z_t, t, encoder_hidden_states=slots).sample`` with
    ``z_t`` ``(B, in_channels, sample_size, sample_size)`` and slots ``(B, S, cross_attention_dim)``.
    The latent side must equal ``sample_size``: each embedding is sized to its block's grid.

    Args:
        pos_type: ``"cartesian"`` (release default; a learned projection of the coordinate grid per
            attention layer), ``"sincos"`` (fixed table times a learned scalar), ``"learned"``
            (free table), or ``"none"``.
        others: every ``UNet2DConditionModel`` argument (so the release's config.json loads as is).
    """

    @register_to_config
    @extends_init(UNet2DConditionModel, pos_type="cartesian")
    def __init__(self, *args, pos_type: str = "cartesian", **kwargs) -> None:
        if pos_type not in POS_TYPES:
            raise ValueError(f"pos_type must be one of {POS_TYPES}, got {pos_type!r}")
        super().__init__(*args, **kwargs)
        if pos_type != "none":
            self._add_positional_embeddings(pos_type)
        self.kernel_backend = "torch"
        self.set_attn_processor(AttnProcessor2_0())

    def _add_positional_embeddings(self, pos_type: str) -> None:
        resolutions = _block_resolutions(self)
        groups = {
            "down_blocks": list(self.down_blocks),
            "mid_block": [self.mid_block],
            "up_blocks": list(self.up_blocks),
        }
        for group, blocks in groups.items():
            for block, side in zip(blocks, resolutions[group], strict=True):
                if block is None:
                    continue
                for transformer_block in _transformer_blocks(block):
                    for attn in (transformer_block.attn1, transformer_block.attn2):
                        if attn is not None:
                            attn.pos_emb = build_positional_embedding(pos_type, attn.to_q.in_features, side)

    def set_attn_processor(self, processor) -> None:
        """As diffusers', but attention layers with a ``pos_emb`` get their processor wrapped in
        :class:`PositionalAttnProcessor` (and layers without one are never wrapped)."""
        names = list(self.attn_processors)
        if not isinstance(processor, dict):
            processor = dict.fromkeys(names, processor)
        wrapped = {}
        for name, proc in processor.items():
            inner = proc.inner if isinstance(proc, PositionalAttnProcessor) else proc
            has_pos = hasattr(self.get_submodule(name.removesuffix(".processor")), "pos_emb")
            wrapped[name] = PositionalAttnProcessor(inner) if has_pos else inner
        super().set_attn_processor(wrapped)

    def set_default_attn_processor(self) -> None:
        """The plain (non-SDPA) diffusers processor everywhere, positional embeddings kept."""
        self.set_attn_processor(AttnProcessor())

    def set_kernel_backend(self, name: str) -> str:
        """``"torch"`` (SDPA), ``"triton"`` (fused slot cross-attention) or ``"auto"``."""
        return set_unet_kernel_backend(self, name)  # records self.kernel_backend
