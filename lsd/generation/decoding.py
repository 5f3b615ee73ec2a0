"""Encoding images to slots and decoding slots to images, seeded per image.

Every generation and editing routine decodes through one :data:`SlotDecoder`, built by
:func:`slot_decoder`: the one place that says how slots become images: :class:`lsd.pipelines.LSDPipeline` with
``slots=`` (the release's validation sampler: DPM-Solver++ multistep from the training
scheduler's config, no guidance).

Seeds: image ``index`` gets its slot-initialisation noise from
:func:`lsd.evaluation.evaluate.slot_noise` ``(seed, index)`` (what ``lsd evaluate`` uses) and its
sampler noise from a generator seeded by ``SeedSequence((seed, index))``; so an image's
reconstruction and its edits start from the same noise, and do not depend on the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from lsd.models.lsd import attention_to_segmentation
from lsd.models.slot_attention import SlotAttentionOutput

__all__ = ["SlotDecoder", "encode_images", "image_generators", "segment_images", "slot_decoder"]

SlotDecoder = Callable[[torch.Tensor, list[torch.Generator]], torch.Tensor]
"""``decode(slots (B, S, D), generators (one per image)) -> images (B, 3, R, R)`` in ``[-1, 1]``."""


def slot_decoder(model, num_inference_steps: int = 25, sampler: str = "dpm") -> SlotDecoder:
    """The decoder of ``model`` (an :class:`~lsd.LatentSlotDiffusion`) as a :data:`SlotDecoder`."""
    if num_inference_steps < 1:
        raise ValueError(f"`num_inference_steps` must be >= 1, got {num_inference_steps}")

    from lsd.pipelines import LSDPipeline

    pipe = LSDPipeline.from_model(model)
    pipe.set_progress_bar_config(disable=True)

    def decode(slots: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        out = pipe(
            slots=slots,
            num_inference_steps=num_inference_steps,
            generator=generators,
            sampler=sampler,
            output_type="pt",
        )
        return out.images * 2 - 1  # the pipeline's [0, 1] -> [-1, 1]

    return decode


def image_generators(seed: int, indices: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per image, seeded by ``SeedSequence((seed, index))`` (an offset keeps them
    apart from the slot-initialisation noise of the same ``(seed, index)``)."""
    generators = []
    for index in indices:
        state = int(np.random.SeedSequence((seed, int(index), 1)).generate_state(1, dtype=np.uint64)[0] >> 1)
        generators.append(torch.Generator(device=device).manual_seed(state))
    return generators


def encode_images(model, pixel_values: torch.Tensor, seed: int, indices: Sequence[int]) -> SlotAttentionOutput:
    """Slots and attention of ``pixel_values`` ``(B, 3, R, R)`` in ``[-1, 1]``, with image ``indices[b]``'s
    slot noise (``slot_noise(seed, ...)``; none for a learnable slot init)."""
    from lsd.evaluation.evaluate import backbone_view, slot_noise

    config = model.slot_attention.config
    noise = None
    if not config.learnable_slot_init:
        noise = slot_noise(seed, indices, config.num_slots, config.slot_size)
        noise = noise.to(device=model.device, dtype=model.slot_attention.slot_mu.dtype)
    pixels = pixel_values.to(model.device)
    with torch.no_grad():
        return model.encode(pixels, noise=noise, backbone_pixel_values=backbone_view(model, pixels))


def segment_images(model, pixel_values: torch.Tensor, seed: int, indices: Sequence[int]) -> torch.Tensor:
    """Slot id per pixel at the images' size, ``(B, R, R)`` (the release's argmax rule)."""
    attn = encode_images(model, pixel_values, seed, indices).attn
    return attention_to_segmentation(attn, tuple(pixel_values.shape[-2:])).cpu()
