"""Frozen DINOv2 object encoder of Stable-LSD (COCO): ViT-B/14 patch tokens as a feature map."""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from lsd.models.pretrained import DINOV2_BASE_REPO, resolve_pretrained

#: DINOv2 expects ImageNet-normalised pixels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _transformers():
    try:
        import transformers
    except ImportError as err:  # pragma: no cover - exercised only without the extra installed
        raise ImportError("the DINOv2 backbone needs `transformers`: pip install 'lsd[dinov2]'") from err
    return transformers


def _check_plain_dinov2(model_type: str | None, where: str) -> None:
    """Only plain DINOv2 is wrapped: loading e.g. a with-registers checkpoint into ``Dinov2Model``
    silently drops its register tokens and gives wrong features."""
    if model_type not in (None, "dinov2"):
        raise ValueError(
            f"{where} describes a {model_type!r} model; DINOv2Backbone wraps plain DINOv2 (model_type 'dinov2', "
            f"e.g. {DINOV2_BASE_REPO})"
        )


class DINOv2Backbone(ModelMixin, ConfigMixin):
    """``(B, 3, R, R)`` ImageNet-normalised pixels -> ``(B, hidden, R/14, R/14)`` patch features.

    Features are the last hidden state (after DINOv2's final LayerNorm) without the CLS and
    register tokens, reshaped row-major to a map. Stable-LSD feeds it 448 px inputs (32x32 map).

    Args:
        dinov2_config: a ``transformers.Dinov2Config`` as a dict (``Dinov2Config.to_dict()``).
        input_resolution: side of the expected input.
    """

    @register_to_config
    def __init__(self, dinov2_config: dict[str, Any] | None = None, input_resolution: int = 448) -> None:
        super().__init__()
        tf = _transformers()
        _check_plain_dinov2((dinov2_config or {}).get("model_type"), "dinov2_config")
        config = tf.Dinov2Config(**(dinov2_config or {}))
        if input_resolution % config.patch_size != 0:
            raise ValueError(f"input_resolution {input_resolution} is not a multiple of patch_size {config.patch_size}")
        self.model = tf.Dinov2Model(config)

    @classmethod
    def from_dinov2(cls, name_or_path: str | os.PathLike = DINOV2_BASE_REPO, input_resolution: int = 448):
        """Wrap pretrained DINOv2 weights from a local folder or the local HF cache."""
        tf = _transformers()
        folder = resolve_pretrained(name_or_path, None, "pretrained DINOv2")
        _check_plain_dinov2(json.loads((folder / "config.json").read_text()).get("model_type"), str(folder))
        pretrained = tf.Dinov2Model.from_pretrained(folder, local_files_only=True)
        backbone = cls(dinov2_config=pretrained.config.to_dict(), input_resolution=input_resolution)
        backbone.model.load_state_dict(pretrained.state_dict())
        return backbone

    @property
    def feature_channels(self) -> int:
        return self.model.config.hidden_size

    @property
    def feature_resolution(self) -> int:
        return self.config.input_resolution // self.model.config.patch_size

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3, R, R)`` -> ``(B, hidden, R/14, R/14)``."""
        res = self.config.input_resolution
        if pixel_values.ndim != 4 or pixel_values.shape[-2:] != (res, res):
            raise ValueError(f"DINOv2Backbone expects (B, 3, {res}, {res}) inputs, got {tuple(pixel_values.shape)}")
        hidden = self.model(pixel_values=pixel_values).last_hidden_state  # (B, 1 + R + N, C)
        side = self.feature_resolution
        patches = hidden[:, hidden.shape[1] - side * side :]  # drop CLS and register tokens
        return patches.transpose(1, 2).reshape(hidden.shape[0], -1, side, side)
