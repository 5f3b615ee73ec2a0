"""Stable-LSD samples under classifier-free guidance at the release's scales (docs/generation.md).

The release's Stable-LSD sampling script (``src/eval/eval_stable_lsd_generation.py``) decodes each
image's slots with DPM-Solver++ multistep, 100 steps, at guidance scales
:data:`RELEASE_GUIDANCE_SCALES`, seeds 0..9 per image, the sampler's generator for seed ``s`` being
``torch.Generator().manual_seed(s)``. :func:`guidance_samples` does the same through
:class:`~lsd.pipelines.LSDPipeline` (guidance ``uncond + s * (cond - uncond)`` with the null
embedding as the unconditional branch).

Conventions: ``pixel_values`` ``(N, 3, R, R)`` in ``[-1, 1]``; samples returned in ``[0, 1]``
(the pipeline's ``output_type="pt"``), shape ``(N, len(scales), len(seeds), 3, R, R)``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from numbers import Real

import torch
from tqdm.auto import tqdm

from lsd.generation.decoding import encode_images

__all__ = ["RELEASE_GUIDANCE_SCALES", "guidance_samples", "plot_guidance_grid"]

#: The guidance scales of the release's Stable-LSD sampling script (and the paper's figures).
RELEASE_GUIDANCE_SCALES = (1.0, 1.1, 1.3, 1.5, 2.0, 3.0)


def _check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    values = tuple(scales)
    if not values:
        raise ValueError("`scales` is empty: give at least one guidance scale (1.0 = no guidance)")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 1.0:
            raise ValueError(f"`scales` must be finite numbers >= 1.0 (1.0 = no guidance), got {value!r} in {values}")
    return tuple(float(v) for v in values)


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    values = tuple(seeds)
    if not values:
        raise ValueError("`seeds` is empty: give at least one sampler seed")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
            raise ValueError(f"`seeds` must be ints in [0, 2**63), got {value!r} in {values}")
    if len(set(values)) != len(values):
        raise ValueError(f"`seeds` repeats a seed (each would give the same samples): {values}")
    return values


def guidance_samples(
    pipe,
    pixel_values: torch.Tensor,
    *,
    scales: Sequence[float] = RELEASE_GUIDANCE_SCALES,
    seeds: Sequence[int] = range(10),
    num_inference_steps: int = 100,
    seed_for_slots: int = 0,
    batch_size: int | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Decode each image's slots at every guidance scale and sampler seed.

    Args:
        pipe: an :class:`~lsd.pipelines.LSDPipeline` with a null embedding (Stable-LSD's, set by
            ``pipe.set_null_embedding``) when any scale is above 1.
        pixel_values: ``(N, 3, R, R)`` in ``[-1, 1]``, ``R`` the pipeline's resolution.
        scales: guidance scales, finite and >= 1 (default: the release's six).
        seeds: sampler seeds, distinct ints >= 0 (default: 0..9, the release's).
        num_inference_steps: DPM-Solver++ steps (the release: 100).
        seed_for_slots: the slots are encoded ONCE per image, image ``i`` with the slot noise
            ``slot_noise(seed_for_slots, i)`` (:func:`~lsd.generation.decoding.encode_images`);
            every scale and seed decodes those same slots.
        batch_size: images per denoising batch (default: all ``N``).
        progress: a progress bar over the ``len(scales) * len(seeds)`` sampling calls.

    Sampler noise: for seed ``s`` every image gets its own ``torch.Generator().manual_seed(s)``, as
    the release seeds its generator per sample, so image ``i`` at seed ``s`` starts from the same
    latents at every scale, and does not depend on the other images.

    Returns ``(N, len(scales), len(seeds), 3, R, R)`` float32 on the CPU, in ``[0, 1]``.

    Raises ValueError before any compute for bad ``scales`` / ``seeds`` / ``pixel_values``, and for
    a scale above 1 on a pipeline without a null embedding (plain LSD) or with one for another slot count.
    """
    scales, seeds = _check_scales(scales), _check_seeds(seeds)
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"`num_inference_steps` must be a positive int, got {num_inference_steps!r}")
    side = pipe.resolution
    if (
        not isinstance(pixel_values, torch.Tensor)
        or pixel_values.ndim != 4
        or pixel_values.shape[1:] != (3, side, side)
    ):
        shape = tuple(pixel_values.shape) if isinstance(pixel_values, torch.Tensor) else type(pixel_values).__name__
        raise ValueError(f"`pixel_values` must be (N, 3, {side}, {side}) (the pipeline's resolution), got {shape}")
    if not pixel_values.is_floating_point() or pixel_values.min() < -1 or pixel_values.max() > 1:
        raise ValueError("`pixel_values` must be floating point in [-1, 1]")
    pipe.check_guidance(max(scales), pipe.slot_attention.config.num_slots)  # before any compute

    count = pixel_values.shape[0]
    slots = encode_images(pipe.model, pixel_values, seed_for_slots, list(range(count))).slots  # once per image
    out = torch.empty(count, len(scales), len(seeds), 3, side, side)
    saved = dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.set_progress_bar_config(disable=True)  # one bar here instead of one per call
    try:
        with tqdm(total=len(scales) * len(seeds), desc="guidance samples", disable=not progress) as bar:
            for j, scale in enumerate(scales):
                for k, seed in enumerate(seeds):
                    images = pipe(
                        slots=slots,
                        num_inference_steps=num_inference_steps,
                        guidance_scale=scale,
                        generator=[torch.Generator().manual_seed(seed) for _ in range(count)],
                        sampler="dpm",
                        output_type="pt",
                        batch_size=batch_size,
                    ).images
                    out[:, j, k] = images.float().cpu()
                    bar.update()
    finally:
        pipe._progress_bar_config = saved
    return out


def plot_guidance_grid(
    samples: torch.Tensor,
    path: str | os.PathLike,
    scales: Sequence[float],
    seeds_shown: Sequence[int] = (0, 1),
    seeds: Sequence[int] | None = None,
) -> None:
    """Figure of :func:`guidance_samples`: rows image x seed, columns the guidance scales.

    ``samples`` ``(N, len(scales), K, 3, R, R)`` in ``[0, 1]``; ``seeds_shown``: positions along
    the seed axis to draw (default the first two); ``seeds``: the seed values, for the row labels
    (default: the positions).
    """
    from lsd.figures import plot_image_grid

    scales = tuple(scales)
    if samples.ndim != 6 or samples.shape[1] != len(scales) or samples.shape[3] != 3:
        raise ValueError(
            f"`samples` must be (N, {len(scales)} scales, seeds, 3, R, R) for `scales` {scales}, got {tuple(samples.shape)}"
        )
    shown = list(seeds_shown)
    if not shown or any(not 0 <= k < samples.shape[2] for k in shown):
        raise ValueError(f"`seeds_shown` must be positions in [0, {samples.shape[2]}), got {shown}")
    values = list(range(samples.shape[2])) if seeds is None else list(seeds)
    if len(values) != samples.shape[2]:
        raise ValueError(f"`seeds`: {len(values)} values for {samples.shape[2]} seeds in `samples`")
    rows = samples[:, :, shown].permute(0, 2, 1, 3, 4, 5).flatten(0, 1)  # (N * shown, scales, 3, R, R)
    labels = [f"image {i}, seed {values[k]}" for i in range(samples.shape[0]) for k in shown]
    plot_image_grid(rows.float() * 2 - 1, path, [f"scale {s:g}" for s in scales], labels)
