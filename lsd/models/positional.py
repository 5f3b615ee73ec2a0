"""Positional embeddings added to token sequences laid out on a square grid.

Every module here maps tokens ``(B, N, C)`` with ``N = resolution**2`` (row-major, i.e. the
flattening of a ``(B, C, h, w)`` map as ``b c h w -> b (h w) c``) to tokens of the same shape.
Parameter and buffer names follow the LSD release so its checkpoints load: the release wraps the
cartesian and sin-cos kinds in ``nn.Sequential(Rearrange, <embedding>, Rearrange)`` (hence its keys
``pos_emb.1.projection.weight``); ours hold the embedding directly and the checkpoint loader drops
the ``.1`` (see :mod:`lsd.official`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

POS_TYPES = ("cartesian", "sincos", "learned", "none")


def cartesian_grid(resolution: int) -> torch.Tensor:
    """The release's 4-channel coordinate grid, shape ``(1, 4, R, R)``.

    Cell centres ``c_i = (i + 0.5) / R``; channel order ``(x, y, 1 - x, 1 - y)`` where ``x`` varies
    along the width (last) axis and ``y`` along the height axis.
    """
    edges = torch.linspace(0.0, 1.0, resolution + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    # indexing="xy": the first output varies along the last axis (width) -> x.
    grid_x, grid_y = torch.meshgrid(centres, centres, indexing="xy")
    return torch.stack((grid_x, grid_y, 1 - grid_x, 1 - grid_y), dim=0).unsqueeze(0)


def _tokens_to_check(tokens: torch.Tensor, num_tokens: int, owner: str) -> None:
    if tokens.ndim != 3 or tokens.shape[-2] != num_tokens:
        side = math.isqrt(num_tokens)
        raise ValueError(
            f"{owner} expects tokens of shape (B, {num_tokens}, C) laid out on a {side}x{side} grid; "
            f"got {tuple(tokens.shape)}. Check that the input resolution matches the config's "
            "sample_size / input_resolution."
        )


class CartesianPositionalEmbedding(nn.Module):
    """``tokens + projection(grid)``: a learned 1x1 conv of the coordinate grid (release: same name).

    Args:
        channels: token width ``C``.
        resolution: grid side ``R``; tokens must have ``N = R * R``.
    """

    def __init__(self, channels: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.projection = nn.Conv2d(4, channels, kernel_size=1)
        # Persistent, as in the release: its checkpoints carry `pe`.
        self.register_buffer("pe", cartesian_grid(resolution))

    def table(self) -> torch.Tensor:
        """The embedding as tokens, ``(1, N, C)``."""
        return F.conv2d(self.pe, self.projection.weight, self.projection.bias).flatten(2).transpose(1, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _tokens_to_check(tokens, self.resolution**2, type(self).__name__)
        return tokens + self.table().to(tokens.dtype)


def sincos_table(channels: int, resolution: int) -> torch.Tensor:
    """Fixed 2-D sin-cos table, ``(1, C, R, R)``, computed in float64 as the release does.

    The first ``C/2`` channels encode the column index, the last ``C/2`` the row index; each half is
    ``[sin(p * w_k), cos(p * w_k)]`` with ``w_k = 10000 ** (-k / (C/4))``, ``k < C/4``.
    """
    if channels % 4 != 0:
        raise ValueError(f"sincos positional embedding needs channels divisible by 4, got {channels}")
    positions = np.arange(resolution, dtype=np.float64)
    cols, rows = np.meshgrid(positions, positions, indexing="xy")  # cols varies along width

    def one_axis(dim: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
        angles = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    table = np.concatenate([one_axis(channels // 2, cols), one_axis(channels // 2, rows)], axis=1)  # (R*R, C)
    table = table.T.reshape(1, channels, resolution, resolution)
    return torch.from_numpy(table).float()


class SinCosPositionalEmbedding2D(nn.Module):
    """``tokens + gamma * table`` with a fixed sin-cos table and a learnable scalar ``gamma``."""

    def __init__(self, channels: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.gamma = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("pos_embed", sincos_table(channels, resolution))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _tokens_to_check(tokens, self.resolution**2, type(self).__name__)
        table = (self.gamma * self.pos_embed).flatten(2).transpose(1, 2)
        return tokens + table.to(tokens.dtype)


class LearnedPositionalEmbedding1D(nn.Module):
    """``tokens + pe`` with a trainable ``(1, N, C)`` table, trunc-normal(std 0.02) initialised."""

    def __init__(self, channels: int, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.pe = nn.Parameter(torch.zeros(1, resolution**2, channels))
        nn.init.trunc_normal_(self.pe, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _tokens_to_check(tokens, self.resolution**2, type(self).__name__)
        return tokens + self.pe.to(tokens.dtype)


def build_positional_embedding(pos_type: str, channels: int, resolution: int) -> nn.Module | None:
    """The embedding of kind ``pos_type`` (one of :data:`POS_TYPES`), or ``None`` for ``"none"``."""
    kinds = {
        "cartesian": CartesianPositionalEmbedding,
        "sincos": SinCosPositionalEmbedding2D,
        "learned": LearnedPositionalEmbedding1D,
    }
    if pos_type == "none":
        return None
    if pos_type not in kinds:
        raise ValueError(f"pos_type must be one of {POS_TYPES}, got {pos_type!r}")
    return kinds[pos_type](channels, resolution)
