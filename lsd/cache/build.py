"""One pass over a dataset that writes a cache folder (:mod:`lsd.cache.store`), resumably and,
under ``accelerate launch`` / ``torchrun``, on several processes at once.

Each image is encoded alone (batch of one): the cached values are then exactly what encoding that
image alone gives, whatever batch it later trains in. A convolution's numerics can depend on the
batch it runs in (measured on CPU with the SD 2.1 VAE's architecture: a batch of 2 and two batches
of 1 differ by up to 1e-6 in the posterior mean, the same size as either's error against a
float64 encode; docs/perf.md), so cached training equals uncached training bitwise where the
uncached step encodes images one at a time (diffusers' ``vae.enable_slicing()``), and to that
bound otherwise.

Process ``r`` of ``P`` writes shards ``r, r + P, r + 2P, ...``: no two processes write one file.
Process 0 writes ``build.json`` before and ``manifest.json`` after, between barriers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from lsd._atomic import remove_dir, remove_stale
from lsd._integrity import sha256_file
from lsd.cache.keys import (
    FORMAT_VERSION,
    describe_file_change,
    fingerprint_files,
    key_differences,
    records_digest,
    weights_digest,
)
from lsd.cache.store import (
    BUILD,
    DTYPES,
    FILES,
    MANIFEST,
    CacheError,
    CacheReader,
    read_json,
    shard_name,
    shard_problem,
    shard_ranges,
    write_json,
    write_shard,
)
from lsd.runs import building

CacheKind = Literal["vae-posterior", "backbone-features"]
#: The tensors each kind stores, per item and view.
TENSORS: dict[str, list[str]] = {"vae-posterior": ["mean", "logvar"], "backbone-features": ["features"]}
VIEW_NAMES = ("original", "mirrored")


class CacheableImages(Protocol):
    """What a dataset offers to be cached (:class:`lsd.data.images.GlobImageDataset`,
    :class:`lsd.training.data.ReaderImages`)."""

    def __len__(self) -> int: ...

    def image_paths(self) -> list[Path]:
        """The image file each index reads, in index order."""

    def view(self, index: int, mirrored: bool) -> dict[str, Any]:
        """Item ``index`` as training sees it, mirrored left-right or not (``pixel_values``, and
        ``backbone_pixel_values`` where the backbone reads its own view)."""


@dataclass
class CacheRecipe:
    """What to cache and how.

    kind: ``"vae-posterior"`` (an ``AutoencoderKL``'s posterior mean and log-variance of
        ``pixel_values``) or ``"backbone-features"`` (a frozen backbone's output for
        ``backbone_pixel_values``, else ``pixel_values``).
    encoder: the frozen network.
    preprocessing: every setting that changes the pixels (reader, split, resolution, crop...).
    mirrored: also cache each image mirrored left-right (for recipes with random flips).
    dtype: ``"float32"`` (bitwise; the default) or ``"bfloat16"`` (half the size, not bitwise).
    hash_files: key images by sha256 instead of size + modification time.
    shard_size: items per shard file.
    """

    kind: CacheKind
    encoder: nn.Module
    preprocessing: dict[str, Any]
    mirrored: bool = False
    dtype: Literal["float32", "bfloat16"] = "float32"
    hash_files: bool = False
    shard_size: int = 1024
    num_workers: int = 0
    _key: tuple[dict[str, Any], str, list] | None = field(default=None, repr=False)

    @property
    def views(self) -> list[str]:
        return list(VIEW_NAMES if self.mirrored else VIEW_NAMES[:1])

    def key(self, dataset: CacheableImages) -> tuple[dict[str, Any], str, list]:
        """``(key, images_root, image records)``; computed once (it stats every image)."""
        if self._key is None:
            root, records = fingerprint_files(dataset.image_paths(), self.hash_files)
            key = {
                "format": FORMAT_VERSION,
                "kind": self.kind,
                "images": {"count": len(records), "sha256": records_digest(records),
                           "stamp": "sha256" if self.hash_files else "size+mtime"},
                "preprocessing": dict(self.preprocessing),
                "views": self.views,
                "dtype": self.dtype,
                "encode": "one image at a time",
                "encoder": {"class": type(self.encoder).__name__, "weights_sha256": weights_digest(self.encoder)},
            }  # fmt: skip
            self._key = (key, root, records)
        return self._key


def stale_reasons(folder: Path, saved: dict[str, Any], current: dict[str, Any], records: list) -> list[str]:
    """Why a cache built under ``saved`` cannot serve ``current`` (empty: it can)."""
    reasons = key_differences(saved, current)
    if saved.get("images") != current.get("images") and (folder / FILES).is_file():
        old = read_json(folder / FILES)
        reasons = [r for r in reasons if not r.startswith("images.")]
        reasons.insert(0, describe_file_change(old, records, current["images"]["stamp"] == "sha256"))
    return reasons


def open_cache(folder: str | os.PathLike, recipe: CacheRecipe, dataset: CacheableImages) -> CacheReader:
    """The finished cache in ``folder`` if it was built for exactly this recipe and these images;
    else :class:`CacheError` naming the reason (missing, damaged, or each stale field)."""
    folder = Path(folder)
    reader = CacheReader(folder)
    key, _, records = recipe.key(dataset)
    reasons = stale_reasons(folder, reader.key, key, records)
    if reasons:
        raise CacheError(f"cache {folder} is stale: {'; '.join(reasons)} (rebuild with --rebuild-cache)")
    return reader


def _plan(folder: Path, key: dict[str, Any], records: list, rebuild: bool) -> str:
    """What to do with ``folder``: ``"done"`` (a finished cache of this key), ``"resume"`` (a
    partial build of this key, or nothing yet) or ``"clear"`` (rebuild); raises when stale."""
    for name in (MANIFEST, BUILD):
        path = folder / name
        if not path.is_file():
            continue
        saved = read_json(path)
        saved = saved.get("key", saved) if name == MANIFEST else saved
        reasons = stale_reasons(folder, saved, key, records)
        if reasons and not rebuild:
            raise CacheError(f"cache {folder} is stale: {'; '.join(reasons)} (rebuild with --rebuild-cache)")
        if reasons or rebuild:
            return "clear"
        return "done" if name == MANIFEST else "resume"
    if folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir()):
        raise CacheError(f"{folder} holds files but no lsd cache: choose an empty or new folder")
    return "resume"


class _Items(Dataset):
    """``(index, view)`` pairs of a shard, read through the dataset (DataLoader workers decode)."""

    def __init__(self, dataset: CacheableImages, pairs: list[tuple[int, int]]) -> None:
        self.dataset, self.pairs = dataset, pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict[str, Any]:
        index, view = self.pairs[i]
        return self.dataset.view(index, bool(view))


def encode_item(
    kind: CacheKind, encoder: nn.Module, item: dict[str, Any], device: torch.device
) -> dict[str, torch.Tensor]:
    """The cached tensors of one item (a batch of one through the frozen network)."""
    with torch.no_grad():
        if kind == "vae-posterior":
            from lsd.models.autoencoder import posterior_moments

            mean, logvar = posterior_moments(encoder, item["pixel_values"][None].to(device))
            return {"mean": mean[0], "logvar": logvar[0]}
        pixels = item.get("backbone_pixel_values", item["pixel_values"])
        return {"features": encoder(pixels[None].to(device))[0]}


def build_cache(
    folder: str | os.PathLike,
    recipe: CacheRecipe,
    dataset: CacheableImages,
    *,
    rebuild: bool = False,
    progress: bool = True,
    process_index: int = 0,
    num_processes: int = 1,
    wait: Callable[[], None] = lambda: None,
    device: torch.device | str = "cpu",
) -> CacheReader:
    """Build (or finish, or reuse) the cache of ``dataset`` under ``recipe`` in ``folder``.

    A finished cache of the same key is reused; a stale one raises :class:`CacheError` naming
    the reason unless ``rebuild``. Shards already written (by a killed build) are checked and
    skipped. Every process calls this with its ``process_index`` and a ``wait`` barrier."""
    folder, device = Path(folder), torch.device(device)
    key, root, records = recipe.key(dataset)
    # process 0 holds the entry's lock for the whole build (another run building the same cache
    # waits, then finds it built); every process decides after it has the lock, alike
    with building(folder) if process_index == 0 else nullcontext():
        wait()
        _build_locked(folder, recipe, dataset, key, root, records, rebuild, progress, process_index, num_processes,
                      wait, device)  # fmt: skip
    return open_cache(folder, recipe, dataset)


def _build_locked(
    folder: Path, recipe: CacheRecipe, dataset: CacheableImages, key: dict[str, Any], root: str, records: list,
    rebuild: bool, progress: bool, process_index: int, num_processes: int, wait: Callable[[], None],
    device: torch.device,
) -> None:  # fmt: skip
    plan = _plan(folder, key, records, rebuild)  # every process decides alike, before anyone writes
    wait()
    if process_index == 0 and plan != "done":
        if plan == "clear":
            remove_dir(folder)
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale(folder)  # temporaries of a killed build
        if not (folder / BUILD).is_file():
            write_json(folder / FILES, records)
            write_json(folder / BUILD, key)
    wait()
    if plan != "done":
        _write_shards(folder, recipe, dataset, progress, process_index, num_processes, device)
        wait()
        if process_index == 0:
            _write_manifest(folder, recipe, key, root, len(records))
        wait()


def _write_shards(
    folder: Path, recipe: CacheRecipe, dataset: CacheableImages, progress: bool, rank: int, world: int,
    device: torch.device,
) -> None:  # fmt: skip
    names, views, dtype = TENSORS[recipe.kind], len(recipe.views), DTYPES[recipe.dtype]
    mine = [(k, r) for k, r in enumerate(shard_ranges(len(dataset), recipe.shard_size)) if k % world == rank]
    todo = [(k, r) for k, r in mine if shard_problem(folder / shard_name(k), names, r[1] - r[0], views) is not None]
    total = sum(stop - start for _, (start, stop) in todo) * views
    encoder = recipe.encoder.to(device).eval()
    label = f"cache {recipe.kind}" + (f" [{rank + 1}/{world}]" if world > 1 else "")
    with tqdm(total=total, desc=label, unit="img", disable=not progress, position=rank) as bar:
        for k, (start, stop) in todo:
            pairs = [(i, v) for i in range(start, stop) for v in range(views)]
            loader = DataLoader(_Items(dataset, pairs), batch_size=None, num_workers=recipe.num_workers)
            rows: dict[str, list[torch.Tensor]] = {name: [] for name in names}
            for item in loader:
                for name, value in encode_item(recipe.kind, encoder, item, device).items():
                    rows[name].append(value.to("cpu", dtype))
                bar.update(1)
            tensors = {
                name: torch.stack(values).reshape(stop - start, views, *values[0].shape)
                for name, values in rows.items()
            }
            # one metadata entry: safetensors writes several in a per-process random order, and equal
            # caches should be equal bytes (their sha256 is in the manifest)
            write_shard(folder / shard_name(k), tensors, {"lsd_cache": f"{recipe.kind} items {start}..{stop - 1}"})


def _write_manifest(folder: Path, recipe: CacheRecipe, key: dict[str, Any], root: str, num_items: int) -> None:
    names, views = TENSORS[recipe.kind], len(recipe.views)
    shards, shapes = [], {}
    for k, (start, stop) in enumerate(shard_ranges(num_items, recipe.shard_size)):
        path = folder / shard_name(k)
        problem = shard_problem(path, names, stop - start, views)
        if problem is not None:
            raise CacheError(f"cache shard {path} is {problem} after the build: another process failed?")
        if not shapes:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                shapes = {name: handle.get_slice(name).get_shape()[2:] for name in names}
        shards.append({"file": path.name, "start": start, "stop": stop, "bytes": path.stat().st_size,
                       "sha256": sha256_file(path)})  # fmt: skip
    manifest = {
        "format": FORMAT_VERSION, "key": key, "tensors": names, "shapes": shapes, "num_items": num_items,
        "shard_size": recipe.shard_size, "shards": shards, "images_root": root,
    }  # fmt: skip
    write_json(folder / MANIFEST, manifest)


__all__ = ["TENSORS", "CacheKind", "CacheRecipe", "CacheableImages", "build_cache", "encode_item",
           "open_cache", "stale_reasons"]  # fmt: skip
