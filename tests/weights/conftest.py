"""A local server posing as the Hub, serving tiny VAEs in the SD 2.1 layout (``vae/``)."""

from __future__ import annotations

import pytest
import torch

from lsd.weights import Architecture, Part
from tests.weights.hub_server import HubServer

__all__ = ["MIRROR", "REMOVED", "WRONG", "HubServer", "tiny_part"]

REMOVED, WRONG, MIRROR = "org/removed-vae", "mirror/other-vae", "mirror/good-vae"


def tiny_vae(block_out_channels: tuple[int, ...], seed: int):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * len(block_out_channels),
        up_block_types=("UpDecoderBlock2D",) * len(block_out_channels),
        block_out_channels=block_out_channels, layers_per_block=1, latent_channels=4, norm_num_groups=4,
        sample_size=16,
    )  # fmt: skip


def tiny_part(*sources: str) -> Part:
    """A tiny VAE in the SD 2.1 layout (``vae/`` of a pipeline repository)."""
    return Part(
        "tiny-vae", "a tiny VAE", sources, "vae", ("config.json", "diffusion_pytorch_model.safetensors"),
        Architecture("config.json", {"_class_name": "AutoencoderKL", "block_out_channels": [8, 16]},
                     "diffusion_pytorch_model.safetensors", {"encoder.conv_in.weight": (8, 3, 3, 3)}),
    )  # fmt: skip


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A served good mirror and a mirror of another model; empty HF cache and LSD_HOME."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("LSD_HOME", str(tmp_path / "lsd"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)  # tests/conftest.py sets it
    good = tiny_vae((8, 16), seed=1)
    good.save_pretrained(tmp_path / "good")
    tiny_vae((8, 32), seed=2).save_pretrained(tmp_path / "wrong")
    with HubServer() as server:
        server.add_folder(MIRROR, tmp_path / "good", "vae/")
        server.add_folder(WRONG, tmp_path / "wrong", "vae/")
        server.good = good
        yield server
