"""Models the end-to-end benchmarks build: the shipped configs with random weights, no downloads."""

from __future__ import annotations

import torch

# The SD 2.1 VAE's architecture (the MOVi-E config loads its weights from disk): random weights of
# the same shapes cost the same time.
from lsd.models.architectures import SD21_VAE


def config_for(device: torch.device) -> str:
    """``tiny`` on CPU, ``movi-e`` (the paper's) on a GPU."""
    return "movi-e" if device.type == "cuda" else "tiny"


def build_lsd(config: str, device: torch.device, seed: int = 0):
    """``lsd.build_model(config)`` under ``seed``, on ``device``; a pretrained VAE entry is replaced
    by random weights of the SD 2.1 VAE's shapes."""
    from diffusers import AutoencoderKL

    from lsd.configs import build_model, load_config

    torch.manual_seed(seed)
    components = {}
    if "pretrained" in (load_config(config).get("vae") or {}):
        components["vae"] = AutoencoderKL(**SD21_VAE)
    return build_model(config, **components).to(device)


def resolution(config: str) -> int:
    """Image side of a shipped config."""
    from lsd.configs import load_config

    return int(load_config(config)["resolution"])
