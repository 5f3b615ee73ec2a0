"""The frozen autoencoder that maps pixels to the diffusion latent space, and back.

Two kinds are supported behind one pair of functions (:func:`encode_latents`,
:func:`decode_latents`):

- a diffusers ``AutoencoderKL`` (the paper: Stable Diffusion 2.1's VAE, 4 channels, x8 down):
  ``z = vae.encode(x).latent_dist.sample() * scaling_factor``;
- :class:`PixelUnshuffleAutoencoder`: a lossless, parameter-free space-to-depth latent for
  CPU-sized runs where no pretrained VAE is available (``(B, 3, R, R) -> (B, 3 f^2, R/f, R/f)``).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin


class PixelUnshuffleAutoencoder(ModelMixin, ConfigMixin):
    """``z = pixel_unshuffle(x, factor) * scaling_factor``; decoding inverts it exactly.

    Args:
        factor: spatial downsampling factor ``f``.
        in_channels: image channels.
        scaling_factor: multiplies the latents (pixels in [-1, 1] have std ~0.5; scale so the
            latents have roughly unit variance, as the diffusion schedule assumes).
    """

    @register_to_config
    def __init__(self, factor: int = 4, in_channels: int = 3, scaling_factor: float = 1.0) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")

    # It has no weights: diffusers' ModelMixin would write no weights file and then refuse to load
    # the folder, so it persists as its config alone.
    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs) -> None:
        self.save_config(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> PixelUnshuffleAutoencoder:
        return cls.from_config(cls.load_config(pretrained_model_name_or_path))

    @property
    def latent_channels(self) -> int:
        return self.config.in_channels * self.config.factor**2

    def encode_latents(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(pixel_values, self.config.factor) * self.config.scaling_factor

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(latents / self.config.scaling_factor, self.config.factor)


Autoencoder = AutoencoderKL | PixelUnshuffleAutoencoder


def encode_latents(
    vae: Autoencoder, pixel_values: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None = None
) -> torch.Tensor:
    """Pixels ``(B, 3, R, R)`` in [-1, 1] -> scaled latents ``(B, c, R/f, R/f)`` (no gradient)."""
    with torch.no_grad():
        if isinstance(vae, PixelUnshuffleAutoencoder):
            return vae.encode_latents(pixel_values)
        if isinstance(vae, AutoencoderKL):
            posterior = vae.encode(pixel_values.to(vae.dtype)).latent_dist
            return posterior.sample(generator=generator) * vae.config.scaling_factor
    raise TypeError(f"unsupported autoencoder type {type(vae).__name__}")


def posterior_moments(vae: AutoencoderKL, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE posterior of pixels ``(B, 3, R, R)`` in [-1, 1]: ``(mean, logvar)``, each
    ``(B, c, R/f, R/f)`` in the VAE's dtype, ``logvar`` clamped to [-30, 20] as diffusers'
    ``DiagonalGaussianDistribution`` clamps it (no gradient). A pure function of the image, so it
    can be cached (:mod:`lsd.cache`); only the draw from it (:func:`sample_posterior`) is random."""
    if not isinstance(vae, AutoencoderKL):
        raise TypeError(f"only an AutoencoderKL has a posterior to cache, got {type(vae).__name__}")
    with torch.no_grad():
        posterior = vae.encode(pixel_values.to(vae.dtype)).latent_dist
    return posterior.mean, posterior.logvar


def sample_posterior(
    posterior: torch.Tensor,
    scaling_factor: float,
    generator: torch.Generator | list[torch.Generator] | None = None,
) -> torch.Tensor:
    """Scaled latents drawn from a posterior given as ``(B, 2c, h, w)``: ``mean`` then ``logvar``
    along dim 1 (diffusers' ``DiagonalGaussianDistribution`` parameter layout).

    The same operations and random draws as ``vae.encode(x).latent_dist.sample(generator) *
    scaling_factor`` (:func:`encode_latents`): bitwise equal for the same ``mean``/``logvar``, since
    the clamp of an already clamped ``logvar`` is the identity."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    return DiagonalGaussianDistribution(posterior).sample(generator=generator) * scaling_factor


def decode_latents(vae: Autoencoder, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents -> pixels in [-1, 1] (not clamped)."""
    if isinstance(vae, PixelUnshuffleAutoencoder):
        return vae.decode_latents(latents)
    if isinstance(vae, AutoencoderKL):
        return vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor).sample
    raise TypeError(f"unsupported autoencoder type {type(vae).__name__}")
