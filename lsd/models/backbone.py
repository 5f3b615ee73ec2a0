"""The CNN object encoder of LSD (the release's ``UNetEncoder``)."""

from __future__ import annotations

import torch
from diffusers import UNet2DModel
from diffusers.configuration_utils import register_to_config
from torch import nn

from lsd.models._config import extends_init


class CNNBackbone(UNet2DModel):
    """Strided conv then a diffusers ``UNet2DModel`` run at timestep 0: pixels -> feature map.

    ``downscale_cnn = Conv2d(input_channels, in_channels, k=s, stride=s)`` with
    ``s = input_resolution // sample_size``; parameter names equal the release's so its
    ``unetencoder/`` folders load. Input ``(B, 3, R, R)`` (or ``(B, T, 3, R, R)``) in [-1, 1];
    output ``(B, out_channels, sample_size, sample_size)`` (or with the ``T`` axis).

    Accepts every ``UNet2DModel`` argument plus ``input_resolution`` and ``input_channels``
    (configs: :mod:`lsd.configs`).
    """

    @register_to_config
    @extends_init(UNet2DModel, input_resolution=256, input_channels=3)
    def __init__(self, *args, input_resolution: int = 256, input_channels: int = 3, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        sample_size = self.config.sample_size
        if not isinstance(sample_size, int) or input_resolution % sample_size != 0:
            raise ValueError(
                f"input_resolution ({input_resolution}) must be a multiple of an int sample_size ({sample_size!r})"
            )
        stride = input_resolution // sample_size
        self.downscale_cnn = nn.Conv2d(input_channels, self.config.in_channels, kernel_size=stride, stride=stride)

    @property
    def feature_channels(self) -> int:
        return self.config.out_channels

    @property
    def feature_resolution(self) -> int:
        return self.config.sample_size

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """``(B, [T,] 3, R, R)`` -> ``(B, [T,] out_channels, sample_size, sample_size)``."""
        lead = pixel_values.shape[:-3]
        res = self.config.input_resolution
        if pixel_values.ndim not in (4, 5) or pixel_values.shape[-3:] != (self.config.input_channels, res, res):
            raise ValueError(
                f"CNNBackbone expects (B, [T,] {self.config.input_channels}, {res}, {res}) "
                f"(config input_channels, input_resolution); got {tuple(pixel_values.shape)}"
            )
        x = self.downscale_cnn(pixel_values.reshape(-1, *pixel_values.shape[-3:]))
        features = super().forward(x, timestep=0, class_labels=None).sample
        return features.reshape(*lead, *features.shape[1:])
