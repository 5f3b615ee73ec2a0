"""Models the cache tests build in code: the tiny config, a tiny Stable-LSD, the MOVi-E architecture."""

from __future__ import annotations

import torch


def tiny_stable_lsd(seed: int = 0):
    """Stable-LSD's structure at toy size: a frozen DINOv2 (2 layers, 28 px input, 2x2 patches)
    and a frozen SD-style UNet (linear projections, upcast attention), trained slot attention,
    a tiny AutoencoderKL on 32 px images."""
    import transformers
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    from lsd.models.dinov2 import DINOv2Backbone
    from lsd.models.lsd import LatentSlotDiffusion
    from lsd.models.slot_attention import SlotAttention

    torch.manual_seed(seed)
    dino = transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=14, image_size=28
    )
    backbone = DINOv2Backbone(dinov2_config=dino.to_dict(), input_resolution=28)
    slot_attention = SlotAttention(
        num_iterations=2, num_slots=3, num_heads=1, input_size=32, slot_size=32, mlp_hidden_size=32, out_size=24,
        input_resolution=2,
    )  # fmt: skip
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=24, attention_head_dim=(2, 4), norm_num_groups=8, use_linear_projection=True,
        upcast_attention=True,
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
        scaling_factor=0.5,
    )  # fmt: skip
    scheduler = DDPMScheduler(prediction_type="v_prediction", beta_schedule="scaled_linear")
    return LatentSlotDiffusion(backbone, slot_attention, unet, scheduler, vae=vae, frozen=("backbone", "unet"))


def images(batch: int, side: int, seed: int) -> torch.Tensor:
    """``(batch, 3, side, side)`` in [-1, 1]."""
    return torch.rand(batch, 3, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def generators(seed: int, batch: int) -> list[torch.Generator]:
    """One generator per sample, as the trainer draws (lsd.training.data.BatchSchedule)."""
    return [torch.Generator().manual_seed(1000 * seed + i) for i in range(batch)]
