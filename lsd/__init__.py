"""lsd: Latent Slot Diffusion (Jiang et al., NeurIPS 2023), faithful and fast.

Public names are imported on first use (PEP 562), so ``import lsd`` stays fast and imports no
diffusers, Triton or CUDA until a model is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsd._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "LatentSlotDiffusion": "lsd.models.lsd",
    "DiffusionObjective": "lsd.models.objective_options",
    "TrainingLossOutput": "lsd.training.objective",
    "LSDObjective": "lsd.training.objective",
    "training_loss": "lsd.training.objective",
    "LSDPipeline": "lsd.pipelines",
    "LSDPipelineOutput": "lsd.pipelines",
    "attention_to_segmentation": "lsd.models.lsd",
    "SlotAttention": "lsd.models.slot_attention",
    "SlotAttentionOutput": "lsd.models.slot_attention",
    "slot_attention_updates_ref": "lsd.models.slot_attention",
    "CNNBackbone": "lsd.models.backbone",
    "DINOv2Backbone": "lsd.models.dinov2",
    "SlotConditionedUNet": "lsd.models.denoiser",
    "PixelUnshuffleAutoencoder": "lsd.models.autoencoder",
    "load_pretrained_vae": "lsd.models.pretrained",
    "load_pretrained_unet": "lsd.models.pretrained",
    "PretrainedNotFound": "lsd.models.pretrained",
    "load_official_checkpoint": "lsd.official",
    "build_model": "lsd.configs",
    "load_config": "lsd.configs",
    "available_configs": "lsd.configs",
    "KernelBackendUnavailable": "lsd.backends",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:  # for type checkers and IDEs
    from lsd.backends import KernelBackendUnavailable
    from lsd.configs import available_configs, build_model, load_config
    from lsd.models.autoencoder import PixelUnshuffleAutoencoder
    from lsd.models.backbone import CNNBackbone
    from lsd.models.denoiser import SlotConditionedUNet
    from lsd.models.dinov2 import DINOv2Backbone
    from lsd.models.lsd import LatentSlotDiffusion, attention_to_segmentation
    from lsd.models.objective_options import DiffusionObjective
    from lsd.models.pretrained import PretrainedNotFound, load_pretrained_unet, load_pretrained_vae
    from lsd.models.slot_attention import SlotAttention, SlotAttentionOutput, slot_attention_updates_ref
    from lsd.official import load_official_checkpoint
    from lsd.pipelines import LSDPipeline, LSDPipelineOutput
    from lsd.training.objective import LSDObjective, TrainingLossOutput, training_loss
