"""Segmentation baselines that need no learning: colour k-means and a fixed grid.

They put the stand-in's numbers in context: a scene that colour clustering already segments
says nothing about object discovery, and a fixed grid is what FG-ARI gives for "no objects at
all" (FG-ARI rewards splitting the foreground into any coherent parts).

Both return per-pixel segment ids ``(B, H, W)`` int64 in ``[0, num_segments)``, the format of
:func:`lsd.models.lsd.attention_to_segmentation`, so :mod:`lsd.metrics` scores them like slots.
"""

from __future__ import annotations

import torch


def grid_segmentation(batch: int, height: int, width: int, rows: int = 3, cols: int = 3) -> torch.Tensor:
    """A fixed ``rows x cols`` grid: ``(B, H, W)`` int64, id ``r * cols + c`` in row-major order."""
    if min(batch, height, width, rows, cols) < 1:
        raise ValueError(f"grid_segmentation needs positive sizes, got {(batch, height, width, rows, cols)}")
    row = torch.arange(height) * rows // height  # (H,)
    col = torch.arange(width) * cols // width  # (W,)
    ids = row[:, None] * cols + col[None, :]
    return ids.expand(batch, height, width).clone()


def _kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: ``points`` ``(N, C)`` -> ``k`` centres ``(k, C)``."""
    first = int(torch.randint(points.shape[0], (1,), generator=generator))
    centres = [points[first]]
    dist = ((points - centres[0]) ** 2).sum(dim=1)
    for _ in range(1, k):
        total = dist.sum()
        if total <= 0:  # fewer distinct points than k: repeat one (its cluster stays empty)
            centres.append(centres[-1])
            continue
        index = int(torch.multinomial(dist / total, 1, generator=generator))
        centres.append(points[index])
        dist = torch.minimum(dist, ((points - points[index]) ** 2).sum(dim=1))
    return torch.stack(centres)


def _lloyd(points: torch.Tensor, centres: torch.Tensor, iterations: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batched Lloyd iterations: ``points`` ``(B, N, C)``, ``centres`` ``(B, K, C)`` ->
    (labels ``(B, N)``, inertia ``(B,)``). Stops early once no centre moves in any image."""
    k = centres.shape[1]
    for _ in range(iterations):
        labels = torch.cdist(points, centres).argmin(dim=2)  # (B, N)
        one_hot = torch.nn.functional.one_hot(labels, k).to(points.dtype)  # (B, N, K)
        sums = one_hot.transpose(1, 2) @ points  # (B, K, C)
        counts = one_hot.sum(dim=1)[..., None]  # (B, K, 1)
        updated = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
        if torch.equal(updated, centres):
            break
        centres = updated
    labels = torch.cdist(points, centres).argmin(dim=2)
    inertia = ((points - torch.gather(centres, 1, labels[..., None].expand_as(points))) ** 2).sum(dim=(1, 2))
    return labels, inertia


def kmeans_segmentation(
    images: torch.Tensor,
    num_segments: int,
    *,
    position_weight: float = 0.0,
    restarts: int = 3,
    iterations: int = 50,
    seed: int = 0,
    indices: list[int] | range | None = None,
) -> torch.Tensor:
    """Cluster each image's pixels by colour (and optionally position) with k-means.

    Args:
        images: ``(B, 3, H, W)``, any fixed range (pixels are clustered as given, in float64).
        num_segments: clusters per image (use the model's slot count for a like-for-like table).
        position_weight: weight of the pixel's ``(y, x)`` in ``[0, 1]`` appended to its colour;
            0 clusters colour alone.
        restarts: k-means++ restarts per image; the lowest inertia wins.
        iterations: Lloyd iterations at most per restart.
        seed, indices: image ``b`` is seeded by ``(seed, indices[b])`` (default ``indices``:
            ``0..B-1``), so an image's segmentation does not depend on its batch.

    Returns:
        ``(B, H, W)`` int64 cluster ids in ``[0, num_segments)``.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"kmeans_segmentation expects (B, 3, H, W) images, got {tuple(images.shape)}")
    if num_segments < 1 or restarts < 1 or iterations < 1:
        raise ValueError(
            f"num_segments, restarts and iterations must be >= 1, got {num_segments}, {restarts}, {iterations}"
        )
    batch, _, height, width = images.shape
    indices = list(range(batch)) if indices is None else list(indices)
    if len(indices) != batch:
        raise ValueError(f"{len(indices)} indices for {batch} images")
    pixels = images.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).reshape(batch, -1, 3)
    if position_weight:
        yy, xx = torch.meshgrid(
            (torch.arange(height, dtype=torch.float64) + 0.5) / height,
            (torch.arange(width, dtype=torch.float64) + 0.5) / width,
            indexing="ij",
        )
        position = position_weight * torch.stack([yy, xx], dim=-1).reshape(1, -1, 2).expand(batch, -1, -1)
        pixels = torch.cat([pixels, position], dim=-1)
    seeds = []
    for b in range(batch):  # k-means++ is sequential per image; Lloyd below runs all restarts at once
        generator = torch.Generator().manual_seed(seed * 1_000_003 + indices[b])
        seeds.extend(_kmeans_plus_plus(pixels[b], num_segments, generator) for _ in range(restarts))
    repeated = pixels.repeat_interleave(restarts, dim=0)  # (B * restarts, N, C), image-major
    labels, inertia = _lloyd(repeated, torch.stack(seeds), iterations)
    best = inertia.view(batch, restarts).argmin(dim=1)  # first restart wins exact ties
    out = labels.view(batch, restarts, -1)[torch.arange(batch), best]
    return out.reshape(batch, height, width)


__all__ = ["grid_segmentation", "kmeans_segmentation"]
