"""The component registry: the classes a saved LSD may name in a component's ``_class_name``.

A saved model (``lsd_config.json`` beside one diffusers ``save_pretrained`` folder per
component) and a config file (:mod:`lsd.configs`) name each component's class; this is the one
name -> class table both resolve against. docs/model.md lists the components.
"""

from __future__ import annotations

from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

from lsd.models.autoencoder import PixelUnshuffleAutoencoder
from lsd.models.backbone import CNNBackbone
from lsd.models.denoiser import SlotConditionedUNet
from lsd.models.slot_attention import SlotAttention

__all__ = ["component_class", "component_classes"]


def component_classes() -> dict[str, type]:
    """Class name (as written in a component's config ``_class_name``) -> class."""
    from lsd.models.dinov2 import DINOv2Backbone  # transformers is imported only when used

    classes = [
        CNNBackbone, DINOv2Backbone, SlotAttention, SlotConditionedUNet, UNet2DConditionModel,
        AutoencoderKL, PixelUnshuffleAutoencoder, DDPMScheduler,
    ]  # fmt: skip
    return {cls.__name__: cls for cls in classes}


def component_class(class_name: str | None, where: str) -> type:
    """The registered class called ``class_name``; an unknown name raises an error naming ``where``
    (the config field or file that holds it) and the known names."""
    classes = component_classes()
    if class_name not in classes:
        raise ValueError(f"{where}: _class_name {class_name!r} is not one of {sorted(classes)}")
    return classes[class_name]
