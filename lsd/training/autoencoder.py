"""The autoencoder stage: provides the frozen autoencoder a training run uses.

See :class:`lsd.training.config.AutoencoderConfig` for the kinds. ``train_kl`` trains a small
diffusers ``AutoencoderKL`` (MSE reconstruction + ``kl_weight`` x KL) on the training images,
then estimates its latent scaling factor (1 / std of the latents, as Stable Diffusion did), and
caches it under ``cache_dir/autoencoder-<key>`` (a run's ``cache_dir`` is ``<output_dir>/../autoencoders``).
The key hashes the stage's recipe, the seed, the image count and the data's content as the file
system tells it: the path, size and modification time of every image file
(:func:`data_fingerprint`), so that an edited, added or removed image trains a new autoencoder.
A later run with the same key reuses it (one building it now is waited for,
:func:`lsd.runs.building`); either way the stage says on stderr where it lives.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from lsd._atomic import atomic_dir
from lsd.runs import building
from lsd.training.config import AutoencoderConfig


def autoencoder_record(config: AutoencoderConfig) -> dict[str, Any]:
    """What results files record about the autoencoder stage."""
    keys = {
        "model": ["kind"],
        "pretrained": ["kind", "path"],
        "pixel_unshuffle": ["kind", "factor", "scaling_factor"],
        "train_kl": ["kind", "train_steps", "train_batch_size", "train_lr", "kl_weight", "block_out_channels", "latent_channels"],
    }[config.kind]  # fmt: skip
    values = config.model_dump()
    return {key: values[key] for key in keys}


def provide_autoencoder(config: AutoencoderConfig, dataset: Dataset, cache_dir: str | os.PathLike, seed: int = 0):
    """The autoencoder for a run, or ``None`` for kind ``"model"`` (use the model config's)."""
    from lsd.models.autoencoder import PixelUnshuffleAutoencoder
    from lsd.models.pretrained import load_pretrained_vae

    if config.kind == "model":
        return None
    if config.kind == "pretrained":
        return load_pretrained_vae(
            config.path, subfolder=None if (Path(config.path) / "config.json").is_file() else "vae"
        )
    if config.kind == "pixel_unshuffle":
        return PixelUnshuffleAutoencoder(factor=config.factor, scaling_factor=config.scaling_factor)
    recipe = {"stage": autoencoder_record(config), "n": len(dataset), "seed": seed}
    key = hashlib.sha256(json.dumps({**recipe, "data": data_fingerprint(dataset)}, sort_keys=True).encode())
    folder = Path(cache_dir) / f"autoencoder-{key.hexdigest()[:16]}"
    with building(folder):  # another run building the same entry is waited for
        if (folder / "config.json").is_file():
            print(f"autoencoder stage: reusing the cached autoencoder in {folder}", file=sys.stderr)
            return load_pretrained_vae(folder, subfolder=None)
        vae = train_kl_autoencoder(config, dataset, seed)
        with atomic_dir(folder) as tmp:
            vae.save_pretrained(tmp)
    print(f"autoencoder stage: trained and cached in {folder}", file=sys.stderr)
    return vae.requires_grad_(False).eval()


def data_fingerprint(dataset: Dataset) -> str:
    """sha256 of what the training images are: for every image file, its path, size and
    modification time (``GlobImageDataset.files``; for a reader's split, ``ReaderImages.files``
    names ``reader:root:split`` per source, and every file under each root is listed)."""
    names = [str(name) for name in getattr(dataset, "files", [])]
    if hasattr(dataset, "reader"):  # "reader:root:split": the root sits between the first and last colon
        roots = [Path(name.split(":", 1)[1].rsplit(":", 1)[0]) for name in names]
        files = sorted(str(p) for root in roots if root.is_dir() for p in root.rglob("*") if p.is_file())
    else:
        files = names
    digest = hashlib.sha256("\n".join(names).encode())
    for name in files:
        try:
            stat = os.stat(name)
        except OSError as err:
            raise FileNotFoundError(f"training image {name}: {err.strerror}") from err
        digest.update(f"\n{name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def train_kl_autoencoder(config: AutoencoderConfig, dataset: Dataset, seed: int = 0):
    """Train a small ``AutoencoderKL`` on ``dataset`` items' ``pixel_values`` (in [-1, 1])."""
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    blocks = list(config.block_out_channels)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=config.latent_channels, block_out_channels=blocks,
        down_block_types=["DownEncoderBlock2D"] * len(blocks), up_block_types=["UpDecoderBlock2D"] * len(blocks),
        layers_per_block=1, norm_num_groups=min(32, blocks[0]),
    )  # fmt: skip
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.train_lr)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=config.train_batch_size, shuffle=True, generator=generator, drop_last=True)
    if len(loader) == 0:
        raise ValueError(
            f"the autoencoder stage needs at least {config.train_batch_size} training images, got {len(dataset)}"
        )
    step, bar = 0, tqdm(total=config.train_steps, desc="autoencoder")
    while step < config.train_steps:
        for batch in loader:
            x = batch["pixel_values"]
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample(generator=generator)).sample
            loss = torch.nn.functional.mse_loss(recon, x) + config.kl_weight * posterior.kl().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if step >= config.train_steps:
                break
    bar.close()
    with torch.no_grad():  # Stable Diffusion's recipe: scale latents to unit variance
        sample = torch.stack([dataset[i]["pixel_values"] for i in range(min(len(dataset), 64))])
        std = vae.encode(sample).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=1.0 / max(std, 1e-6))
    return vae.requires_grad_(False).eval()
