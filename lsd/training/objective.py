"""The LSD training objective (Jiang et al. 2023; the release's ``train_lsd.py``).

Data flow of one training step:

    pixels (B, 3, R, R) in [-1, 1] --frozen VAE--> z (B, c, R/f, R/f)
    z_t = scheduler.add_noise(z, eps, t),  eps ~ N(0, I) (+ offset noise),  t ~ U{t_min..t_max}
    pixels --backbone--> features (B, C, h, w) --slot attention--> slots (B, S, D_out), attn
    pred = unet(z_t, t, encoder_hidden_states=slots).sample
    loss = mean MSE(pred, eps or v) in float32   (optionally min-SNR-gamma weighted)

:func:`training_loss` computes it for a :class:`~lsd.models.lsd.LatentSlotDiffusion`;
:class:`LSDObjective` is the same as an ``nn.Module`` holding the model, so that the trainer can
hand it to ``accelerate.prepare`` (DDP synchronises gradients of modules whose ``forward`` is
called). The options (offset noise, min-SNR-gamma, timestep range) are the model's
:class:`~lsd.models.objective_options.DiffusionObjective`, saved in its ``lsd_config.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from lsd.models.lsd import LatentSlotDiffusion
from lsd.models.objective_options import DiffusionObjective
from lsd.models.slot_attention import SlotAttentionOutput, sample_slot_noise


@dataclass
class TrainingLossOutput:
    """Attributes:
    loss: scalar, what to backpropagate.
    mse: ``(B,)`` unweighted per-sample MSE (float32).
    timesteps: ``(B,)`` the sampled timesteps.
    encoding: the slot-attention output used to condition the denoiser.
    """

    loss: torch.Tensor
    mse: torch.Tensor
    timesteps: torch.Tensor
    encoding: SlotAttentionOutput


def training_loss(
    model: LatentSlotDiffusion,
    pixel_values: torch.Tensor | None,
    *,
    backbone_pixel_values: torch.Tensor | None = None,
    generator: torch.Generator | list[torch.Generator] | None = None,
    noise: torch.Tensor | None = None,
    timesteps: torch.Tensor | None = None,
    slot_noise: torch.Tensor | None = None,
    slot_permutation: torch.Tensor | None = None,
    posterior: torch.Tensor | None = None,
    backbone_features: torch.Tensor | None = None,
) -> TrainingLossOutput:
    """The LSD denoising loss of a batch ``pixel_values`` ``(B, 3, R, R)`` in [-1, 1].

    Every random draw comes from ``generator`` (or the global RNG) unless given explicitly:
    ``noise`` (latent-shaped), ``timesteps`` ``(B,)``, ``slot_noise`` ``(B, S, slot_size)``.
    ``generator`` may be a list with one generator per sample; sample ``i`` then draws, in this
    order, its VAE posterior sample, noise, offset noise, timestep and slot noise from
    ``generator[i]`` alone, so a sample's loss does not depend on the rest of the batch (how
    multi-process training reproduces single-process training).
    ``backbone_pixel_values``: a separately preprocessed view for the backbone (Stable-LSD's DINOv2).
    ``slot_permutation`` ``(B,)``: condition image ``i`` on the slots of image
    ``slot_permutation[i]`` (the "does the decoder use its slots" diagnostic).

    Cached inputs (:mod:`lsd.cache`, docs/perf.md) replace the frozen parts' forward passes with
    the same random draws in the same order:
    ``posterior`` ``(B, 2c, h, w)``: the VAE posterior's mean then log-variance; the latents are
    drawn from it instead of encoding ``pixel_values``. ``backbone_features`` ``(B, C, h, w)``: a
    frozen backbone's output, fed to slot attention. With both, ``pixel_values`` may be ``None``.
    """
    obj, sched = model.objective, model.scheduler
    if posterior is not None:
        latents = model.latents_from_posterior(posterior, generator)
    elif pixel_values is None:
        raise ValueError("training_loss needs pixel_values unless a cached posterior is given")
    else:
        latents = model.encode_latents(pixel_values, generator)
    batch, device = latents.shape[0], latents.device
    if noise is None:
        noise = randn_tensor(latents.shape, generator=generator, device=device, dtype=latents.dtype)
    if obj.noise_offset:
        offset_shape = (batch, latents.shape[1], 1, 1)
        noise = noise + obj.noise_offset * randn_tensor(
            offset_shape, generator=generator, device=device, dtype=latents.dtype
        )
    if timesteps is None:
        high = (obj.max_timestep if obj.max_timestep is not None else sched.config.num_train_timesteps - 1) + 1
        timesteps = _randint(obj.min_timestep, high, batch, generator, device)
    timesteps = timesteps.to(device=device, dtype=torch.long)
    if slot_noise is None and not model.slot_attention.config.learnable_slot_init:
        sa = model.slot_attention.config
        slot_noise = sample_slot_noise(
            sa.num_slots, sa.slot_size, batch, generator, device=device, dtype=model.slot_attention.dtype
        )

    noisy = sched.add_noise(latents, noise, timesteps)
    if backbone_features is not None:
        encoding = model.encode_features(backbone_features, noise=slot_noise)
    elif pixel_values is None:
        raise ValueError("training_loss needs pixel_values unless cached backbone features are given")
    else:
        encoding = model.encode(pixel_values, noise=slot_noise, backbone_pixel_values=backbone_pixel_values)
    slots = encoding.slots if slot_permutation is None else encoding.slots[slot_permutation.to(device)]
    pred = model.unet(noisy, timesteps, encoder_hidden_states=slots).sample
    if sched.config.prediction_type == "epsilon":
        target = noise
    else:
        target = sched.get_velocity(latents, noise, timesteps)
    mse = F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(dim=1)  # (B,)
    if obj.snr_gamma is None:
        loss = mse.mean()
    else:
        loss = (mse * min_snr_weights(model, timesteps)).mean()
    return TrainingLossOutput(loss=loss, mse=mse, timesteps=timesteps, encoding=encoding)


def min_snr_weights(model: LatentSlotDiffusion, timesteps: torch.Tensor) -> torch.Tensor:
    """min-SNR-gamma weights ``(B,)`` for ``timesteps`` ``(B,)``: ``min(snr, gamma) / snr`` for
    epsilon targets, ``min(snr, gamma) / (snr + 1)`` for v-prediction (Hang et al. 2023), with
    ``gamma = model.objective.snr_gamma`` and the SNR of ``model.scheduler``."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(model.scheduler, timesteps).float()
    clipped = torch.clamp(snr, max=model.objective.snr_gamma)
    if model.scheduler.config.prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped / snr


class LSDObjective(nn.Module):
    """:func:`training_loss` as a module: ``LSDObjective(model)(pixel_values, **kwargs)``.

    The trainer prepares this module (not the bare model) with accelerate, so that DDP wraps a
    module whose ``forward`` computes the loss and synchronises the model's gradients. ``.model``
    is the :class:`~lsd.models.lsd.LatentSlotDiffusion`; the module has no parameters of its own.
    """

    def __init__(self, model: LatentSlotDiffusion) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor | None, **kwargs) -> TrainingLossOutput:
        """Same arguments as :func:`training_loss` (after ``model``)."""
        return training_loss(self.model, pixel_values, **kwargs)


def _randint(
    low: int, high: int, batch: int, generator: torch.Generator | list[torch.Generator] | None, device: torch.device
) -> torch.Tensor:
    """``(batch,)`` integers in ``[low, high)``; one draw per generator when given a list."""
    if isinstance(generator, list):
        if len(generator) != batch:
            raise ValueError(f"got {len(generator)} generators for a batch of {batch}")
        draws = [torch.randint(low, high, (1,), generator=g, device=g.device) for g in generator]
        return torch.cat(draws).to(device)
    gen_device = generator.device if generator is not None else device
    return torch.randint(low, high, (batch,), generator=generator, device=gen_device).to(device)


__all__ = ["DiffusionObjective", "LSDObjective", "TrainingLossOutput", "min_snr_weights", "training_loss"]
