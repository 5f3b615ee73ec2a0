"""Frozen DINOv2 object encoder of Stable-LSD (COCO): ViT-B/14 patch tokens as a feature map."""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

from lsd.models.pretrained import DINOV2_BASE_REPO, resolve_pretrained


def _transformers():
    try:
        import transformers
    except ImportError as err:  # pragma: no cover - exercised only without the extra installed
        raise ImportError(
            "the DINOv2 backbone needs `transformers`: pip install 'latent-slot-diffusion[dinov2]'"
        ) from err
    return transformers


#: transformers ``model_type`` -> (config class, model class) names; both share the token layout
#: ``[CLS, registers..., patches...]``.
DINOV2_KINDS = {
    "dinov2": ("Dinov2Config", "Dinov2Model"),
    "dinov2_with_registers": ("Dinov2WithRegistersConfig", "Dinov2WithRegistersModel"),
}


def _dinov2_classes(model_type: str | None, where: str):
    """The transformers config and model classes for ``model_type`` (default plain DINOv2).

    Loading a with-registers checkpoint into a plain ``Dinov2Model`` would silently drop its
    register tokens, so the kind is always taken from the checkpoint's own config."""
    kind = model_type or "dinov2"
    if kind not in DINOV2_KINDS:
        raise ValueError(f"{where} describes a {kind!r} model; DINOv2Backbone wraps {sorted(DINOV2_KINDS)}")
    tf = _transformers()
    config_name, model_name = DINOV2_KINDS[kind]
    if not hasattr(tf, model_name):
        raise ImportError(f"{where} needs transformers.{model_name}, which this transformers lacks; upgrade it")
    return getattr(tf, config_name), getattr(tf, model_name)


class DINOv2Backbone(ModelMixin, ConfigMixin):
    """``(B, 3, R, R)`` ImageNet-normalised pixels -> ``(B, hidden, R/14, R/14)`` patch features.

    Features are the last hidden state (after DINOv2's final LayerNorm) without the CLS and
    register tokens, reshaped row-major to a map. Stable-LSD feeds it 448 px inputs (32x32 map).

    Args:
        dinov2_config: a ``transformers.Dinov2Config`` (or ``Dinov2WithRegistersConfig``) as a dict.
        input_resolution: side of the expected input.
    """

    @register_to_config
    def __init__(self, dinov2_config: dict[str, Any] | None = None, input_resolution: int = 448) -> None:
        super().__init__()
        config_cls, model_cls = _dinov2_classes((dinov2_config or {}).get("model_type"), "dinov2_config")
        config = config_cls(**(dinov2_config or {}))
        if input_resolution % config.patch_size != 0:
            raise ValueError(f"input_resolution {input_resolution} is not a multiple of patch_size {config.patch_size}")
        self.model = model_cls(config)

    @classmethod
    def from_dinov2(cls, name_or_path: str | os.PathLike = DINOV2_BASE_REPO, input_resolution: int = 448):
        """Wrap pretrained DINOv2 weights from a local folder or the local HF cache."""
        folder = resolve_pretrained(name_or_path, None, "pretrained DINOv2")
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
        _, model_cls = _dinov2_classes(model_type, str(folder / "config.json"))
        pretrained = model_cls.from_pretrained(folder, local_files_only=True)
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
