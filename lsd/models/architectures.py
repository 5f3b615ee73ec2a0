"""The architectures of the pretrained parts the paper's configs load, as config dicts, so that
they can be built with random weights where the weights are not on disk: benchmarks, FLOP counts
(docs/perf.md, "What a paper table costs"), tests. Values are those of the Hugging Face
repositories' ``config.json`` files (``stabilityai/stable-diffusion-2-1``: ``vae/``, ``unet/``;
``facebook/dinov2-base``)."""

from __future__ import annotations

from typing import Any

#: ``AutoencoderKL`` of Stable Diffusion 2.1 (``vae/config.json``): x8 down, 4 latent channels.
SD21_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "sample_size": 768,
    "scaling_factor": 0.18215,
}

#: ``UNet2DConditionModel`` of Stable Diffusion 2.1 (``unet/config.json``), about 866 M parameters.
SD21_UNET: dict[str, Any] = {
    "sample_size": 96,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "norm_num_groups": 32,
    "use_linear_projection": True,
    "upcast_attention": True,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}

#: ``Dinov2Config`` of DINOv2 ViT-B/14 (``facebook/dinov2-base``), about 86 M parameters.
DINOV2_BASE: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "mlp_ratio": 4,
    "patch_size": 14,
    "image_size": 518,
    "layerscale_value": 1.0,
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
    "use_swiglu_ffn": False,
}


__all__ = ["DINOV2_BASE", "SD21_UNET", "SD21_VAE"]
