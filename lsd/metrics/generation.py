"""Image-quality measures for generated images: PSNR, neighbouring-pixel difference and a fixed
fallback feature extractor for Frechet distances when the FID Inception weights are absent.

Conventions (docs/generation.md):

- Images are ``(N, 3, H, W)`` floats in ``[-1, 1]`` (the model's range) unless a function says
  otherwise.
- :func:`psnr`: per image, ``10 log10(range^2 / MSE)`` with ``range = 2`` (peak to peak of
  ``[-1, 1]``); ``(N,)``. Averages over images are the mean of these per-image values.
- :func:`neighbour_difference`: per image, the mean absolute difference between horizontally
  adjacent pixels (over channels and positions); ``(N,)``. Pixel noise raises it, blur lowers it.
- :class:`FallbackFeatures`: a fixed, hand-written 128-d descriptor (no learned weights, nothing
  to download). Frechet distances over it are **not** comparable with published FID values; they
  only rank image sets against each other at the same ``N``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["FALLBACK_FEATURE_DIM", "FALLBACK_FEATURES_NAME", "FallbackFeatures", "neighbour_difference", "psnr"]

FALLBACK_FEATURES_NAME = "lsd-fallback-v1 (4x4 colour means and stds, 2-scale gradient energy; not FID)"
FALLBACK_FEATURE_DIM = 128
_GRID = 4  # cells per side
_SIZE = 64  # images are resized to this side first


def _check_images(images: torch.Tensor, name: str) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"`{name}` must have shape (N, 3, H, W), got {tuple(images.shape)}")


def psnr(images: torch.Tensor, targets: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Per-image PSNR in dB, ``(N,)``, of ``images`` against ``targets`` (both ``(N, 3, H, W)``).

    ``data_range`` is the peak-to-peak range of the pixels (2 for ``[-1, 1]``); identical images
    give ``inf``.
    """
    _check_images(images, "images")
    if images.shape != targets.shape:
        raise ValueError(f"`images` {tuple(images.shape)} and `targets` {tuple(targets.shape)} differ in shape")
    mse = (images.double() - targets.double()).pow(2).flatten(1).mean(dim=1)
    return (10 * torch.log10(data_range**2 / mse)).float()


def neighbour_difference(images: torch.Tensor) -> torch.Tensor:
    """Per-image mean ``|x[..., j + 1] - x[..., j]|`` over channels, rows and columns, ``(N,)``."""
    _check_images(images, "images")
    return (images[..., 1:] - images[..., :-1]).abs().flatten(1).mean(dim=1)


class FallbackFeatures(torch.nn.Module):
    """The fixed descriptor Frechet distances use here when no Inception weights are given.

    Input: ``(N, 3, H, W)`` in ``[-1, 1]``. Each image is mapped to ``[0, 1]``, resized to 64x64
    (bilinear, antialiased) and split into a 4x4 grid of 16x16 cells. Output ``(N, 128)``:

    - 48: per cell and channel, the mean colour (layout and colour);
    - 48: per cell and channel, the standard deviation (edges and texture inside a cell);
    - 32: per cell, the mean gradient magnitude ``|dx| + |dy|`` of the grey image at two scales
      (full 64 px and average-pooled to 32 px): sharpness and pixel noise.

    Nothing is learned, so the features are the same on every machine and torch version (up to
    float rounding). Named :data:`FALLBACK_FEATURES_NAME` in results files.
    """

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images, "images")
        x = ((images.float() + 1) / 2).clamp(0, 1)
        if x.shape[-2:] != (_SIZE, _SIZE):
            x = F.interpolate(x, size=(_SIZE, _SIZE), mode="bilinear", align_corners=False, antialias=True)
        cell = _SIZE // _GRID
        means = F.avg_pool2d(x, cell)
        stds = (F.avg_pool2d(x * x, cell) - means * means).clamp_min(0).sqrt()
        grey = x.mean(dim=1, keepdim=True)
        energies = []
        for level in (grey, F.avg_pool2d(grey, 2)):
            dx = (level[..., :, 1:] - level[..., :, :-1]).abs()
            dy = (level[..., 1:, :] - level[..., :-1, :]).abs()
            magnitude = dx[..., :-1, :] + dy[..., :, :-1]  # (N, 1, s - 1, s - 1)
            energies.append(F.adaptive_avg_pool2d(magnitude, _GRID))
        return torch.cat([means.flatten(1), stds.flatten(1), torch.cat(energies, dim=1).flatten(1)], dim=1)
