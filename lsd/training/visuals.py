"""Validation figures: input | segmentation overlay | reconstruction | sample, one row per image."""

from __future__ import annotations

import os

import numpy as np
import torch

from lsd.figures import grid_png, overlay
from lsd.models.slot_attention import sample_slot_noise


@torch.no_grad()
def validation_grid(model, images: torch.Tensor, path: str | os.PathLike, sample_steps: int, seed: int) -> np.ndarray:
    """The validation figure of ``model`` on ``images`` ``(B, 3, R, R)``."""
    gen = torch.Generator().manual_seed(seed)
    noise = None
    sa = model.slot_attention.config
    if not sa.learnable_slot_init:
        noise = sample_slot_noise(sa.num_slots, sa.slot_size, images.shape[0], gen).to(images.device)
    encoding = model.encode(images, noise=noise)
    from lsd.models.lsd import attention_to_segmentation

    masks = attention_to_segmentation(encoding.attn, images.shape[-2:])
    recon = model.decode_latents(model.encode_latents(images)).clamp(-1, 1)
    from lsd.pipelines import LSDPipeline

    pipe = LSDPipeline.from_model(model)
    pipe.set_progress_bar_config(disable=True)
    sample = pipe(slots=encoding.slots, num_inference_steps=sample_steps, generator=gen, output_type="pt").images
    sample = sample * 2 - 1  # [0, 1] -> [-1, 1]
    return grid_png([images, overlay(images, masks, sa.num_slots), recon, sample], path)
