"""Validation figures: input | segmentation overlay | reconstruction | sample, one row per image."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from lsd._atomic import atomic_write
from lsd.models.slot_attention import sample_slot_noise


def slot_colours(num_slots: int) -> np.ndarray:
    """``(S, 3)`` distinct colours in [0, 1] (matplotlib's tab20, cycled)."""
    from matplotlib import colormaps

    table = colormaps["tab20"].colors
    return np.array([table[i % len(table)] for i in range(num_slots)], dtype=np.float32)


def overlay(images: torch.Tensor, masks: torch.Tensor, num_slots: int, alpha: float = 0.5) -> torch.Tensor:
    """Blend slot colours into images. images ``(B, 3, H, W)`` in [-1, 1], masks ``(B, H, W)`` ids."""
    colours = torch.from_numpy(slot_colours(num_slots)).to(images.device) * 2 - 1  # (S, 3)
    painted = colours[masks].permute(0, 3, 1, 2)  # (B, 3, H, W)
    return (1 - alpha) * images + alpha * painted


def grid_png(columns: list[torch.Tensor], path: str | os.PathLike) -> np.ndarray:
    """Write a grid (rows = images, columns = the given ``(B, 3, H, W)`` tensors in [-1, 1]) as PNG,
    written to a temporary name then renamed. Returns the ``(H_total, W_total, 3)`` uint8 array."""
    rows = torch.cat([torch.cat(list(col.float().cpu()), dim=1) for col in columns], dim=2)  # (3, B*H, C*W)
    array = ((rows.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))
    return array


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
