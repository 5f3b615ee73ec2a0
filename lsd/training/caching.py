"""A training run's caches (:mod:`lsd.cache`): which frozen outputs a config caches, where they
live, and the training dataset that reads them (docs/perf.md, "Cached latents")."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from lsd.cache import CachedItems, CacheRecipe, build_cache
from lsd.training.config import TrainConfig

#: Data fields that do not change the pixels (the image files are keyed separately, by content).
_NOT_PREPROCESSING = {"root", "mix_root", "num_workers", "flip"}


def cache_folder(config: TrainConfig) -> Path:
    """``cache.dir``, or ``<output_dir>/../cache/<data>-<resolution>px``."""
    if config.cache.dir is not None:
        return Path(config.cache.dir)
    data = config.data
    if data.kind == "dataset":
        label = f"{data.dataset}{'+' + data.mix_dataset if data.mix_dataset else ''}-{data.split or 'train'}"
    elif data.kind == "synth":
        label = f"synth-{data.synth_level}-seed{data.synth_seed}-{data.synth_num_train}"
    else:
        parts = [part for part in Path(data.root).parts[-2:] if part not in ("images", "data")]  # generic names
        label = "-".join(parts) + ("" if data.portion is None else f"-{data.portion[0]}-{data.portion[1]}")
    label = re.sub(r"[^A-Za-z0-9.+-]+", "_", label)
    return Path(config.output_dir).parent / "cache" / f"{label}-{data.resolution}px"


def cache_recipes(config: TrainConfig, model: Any) -> dict[str, CacheRecipe]:
    """The recipes ``config.cache`` asks for, by kind; raises ``ValueError`` naming the field when
    the model cannot use one (a pixel-unshuffle autoencoder; a backbone that trains)."""
    from diffusers import AutoencoderKL

    options = config.cache
    preprocessing = {k: v for k, v in config.data.to_dict().items() if k not in _NOT_PREPROCESSING}
    common = {"mirrored": config.data.flip, "dtype": options.dtype, "hash_files": options.hash_files,
              "shard_size": options.shard_size, "num_workers": config.data.num_workers}  # fmt: skip
    recipes = {}
    if options.latents:
        if not isinstance(model.vae, AutoencoderKL):
            raise ValueError(
                f"cache.latents=true: the autoencoder is a {type(model.vae).__name__}, whose latents are a "
                "reshape of the pixels (nothing to cache); set cache.latents=false"
            )
        recipes["vae-posterior"] = CacheRecipe("vae-posterior", model.vae, preprocessing, **common)
    if options.backbone:
        if "backbone" not in model.frozen:
            raise ValueError(
                "cache.backbone=true: the backbone trains in this model (frozen: "
                f"{list(model.frozen) or 'none'}), so its features change every step; set cache.backbone=false"
            )
        recipes["backbone-features"] = CacheRecipe("backbone-features", model.backbone, preprocessing, **common)
    return recipes


def cached_dataset(
    config: TrainConfig,
    dataset: Dataset,
    model: Any,
    *,
    rebuild: bool = False,
    progress: bool = True,
    process_index: int = 0,
    num_processes: int = 1,
    wait=lambda: None,
    device: torch.device | str = "cpu",
) -> CachedItems | Dataset:
    """``dataset`` itself when ``config.cache`` caches nothing; else its :class:`CachedItems`,
    building (or finishing) the caches first and refusing a stale one unless ``rebuild``."""
    recipes = cache_recipes(config, model)
    if not recipes:
        return dataset
    folder = cache_folder(config)
    if process_index == 0:  # say where it lives (shared by the runs beside this one)
        for kind in recipes:
            print(f"lsd: cache {folder / kind}", file=sys.stderr, flush=True)
    readers = {
        kind: build_cache(folder / kind, recipe, dataset, rebuild=rebuild, progress=progress,
                          process_index=process_index, num_processes=num_processes, wait=wait, device=device)
        for kind, recipe in recipes.items()
    }  # fmt: skip
    return CachedItems(
        dataset,
        posterior=readers.get("vae-posterior"),
        features=readers.get("backbone-features"),
        needs_pixels=not ("vae-posterior" in readers and "backbone-features" in readers),
    )


__all__ = ["cache_folder", "cache_recipes", "cached_dataset"]
