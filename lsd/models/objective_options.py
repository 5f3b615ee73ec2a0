"""The training-objective options a model carries in ``lsd_config.json`` (the math lives in
:mod:`lsd.training.objective`; the options live here so that configs and model folders load
without importing the training package)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DiffusionObjective:
    """Training-objective options (not architecture); saved in ``lsd_config.json`` as ``objective``.

    Attributes:
        noise_offset: offset-noise scale: ``eps += noise_offset * N(0, 1)`` per (sample, channel).
        snr_gamma: min-SNR-gamma loss weighting (Hang et al. 2023) when set; ``None`` = plain MSE.
        min_timestep, max_timestep: training timesteps are drawn uniformly from this inclusive range
            (release: 0 .. num_train_timesteps - 1; ``None`` means that upper end). Samplers stop
            early at ``min_timestep`` (see :class:`lsd.pipelines.LSDPipeline`).
    """

    noise_offset: float = 0.0
    snr_gamma: float | None = None
    min_timestep: int = 0
    max_timestep: int | None = None


__all__ = ["DiffusionObjective"]
