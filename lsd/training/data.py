"""Deterministic data for training: which images and random draws each micro-step uses.

Everything is a pure function of ``(seed, micro_step)``, never of mutable RNG state, so a run
resumed from a checkpoint continues exactly as an uninterrupted one, and a run on P processes
sees the same global batches (and per-image noise) as one process with a P-times larger batch:

- epoch ``e`` visits the dataset in the order ``np.random.default_rng((seed, e)).permutation``;
  each micro-step takes the next ``global_batch = batch_size * num_processes`` images (an
  incomplete tail is dropped), and process ``r`` takes the ``r``-th ``batch_size`` slice;
- the images of optimizer step ``t`` (``grad_accum`` micro-batches of ``global_batch`` images)
  are numbered ``0 .. grad_accum * global_batch - 1``; image ``j`` draws its noise from a
  generator seeded by ``(seed, t, j)`` (see ``lsd.training.objective.training_loss(model, ..., generator=[...])``),
  so accumulating N micro-batches of b images equals one batch of N * b images, too;
- random flips are decided by ``(seed, epoch, index)`` inside the dataset.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from lsd.data.images import GlobImageDataset
from lsd.training.config import DataConfig


def synth_dataset_dir(config: DataConfig, progress: bool = True) -> Path:
    """Where the synthetic stand-in for ``config`` lives (generated on first use; ``progress``: the
    generator's bar)."""
    from lsd.data.synthetic import SynthSpec, write_dataset

    spec = SynthSpec(
        # every field in the name, so stand-ins of different sizes live side by side under one root
        name=(
            f"synth-{config.synth_level}-{config.resolution}px-seed{config.synth_seed}"
            f"-{config.synth_num_train}+{config.synth_num_validation}"
        ),
        level=config.synth_level,
        resolution=config.resolution,
        seed=config.synth_seed,
        num_train=config.synth_num_train,
        num_validation=config.synth_num_validation,
    )
    root = Path(config.root or "data")
    return write_dataset(root, spec, progress=progress)


class ReaderImages(Dataset):
    """The images of real readers' splits, one after another, for training: items
    ``{"pixel_values", "index"}`` as each reader gives them (its crop and resize; ``(3, R, R)`` in
    [-1, 1]), mirrored left-right when ``flip`` and ``(seed, epoch, index)`` says so (as
    :class:`GlobImageDataset`). Only the images are read (each reader's ``pixel_values(index)``),
    never the masks or labels."""

    def __init__(
        self, readers: Sequence[Dataset], flip: bool = False, seed: int = 0, sources: tuple[str, ...] = ()
    ) -> None:
        self.readers, self.flip, self.seed, self.epoch = list(readers), flip, seed, 0
        self.ends = list(itertools.accumulate(len(r) for r in self.readers))  # index ranges per reader
        if not self.ends or self.ends[-1] == 0:
            names = " + ".join(sources) or ", ".join(type(r).__name__ for r in self.readers)
            raise FileNotFoundError(f"the training split of {names} is empty")
        # what the images are, ``reader:root:split`` per source (keys the autoencoder stage's cache
        # beside the image count, as GlobImageDataset.files does)
        self.files = list(sources)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.ends[-1]

    def flips(self, index: int, epoch: int) -> bool:
        """Whether item ``index`` is mirrored in ``epoch`` (never without ``flip``)."""
        return self.flip and bool(np.random.default_rng((self.seed, epoch, index)).random() < 0.5)

    def view(self, index: int, mirrored: bool) -> dict:
        """The item ``index`` as its reader crops it, mirrored left-right or not."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is outside the {len(self)} training images")
        which = bisect.bisect_right(self.ends, index)
        pixels = self.readers[which].pixel_values(index - (self.ends[which - 1] if which else 0))
        return {"pixel_values": pixels.flip(-1) if mirrored else pixels, "index": index}

    def get(self, index: int, epoch: int) -> dict:
        return self.view(index, self.flips(index, epoch))

    def image_paths(self) -> list[Path]:
        """The image file each index reads (every reader names its images: ``image_paths()``)."""
        return [path for reader in self.readers for path in reader.image_paths()]

    def __getitem__(self, index: int) -> dict:
        return self.get(index, self.epoch)


def build_train_dataset(config: DataConfig, seed: int) -> GlobImageDataset | ReaderImages:
    """The training images of ``config`` (generating the synthetic stand-in first if asked)."""
    if config.kind == "dataset":
        from lsd.data.readers import open_dataset

        split = config.split or "train"
        sources = [(config.dataset, config.root)]
        if config.mix_dataset is not None:
            sources.append((config.mix_dataset, config.mix_root))
        readers = [
            open_dataset(name, root, split=split, resolution=config.resolution, ffhq_num_train=config.ffhq_num_train)
            for name, root in sources
        ]
        names = tuple(f"{name}:{root}:{split}" for name, root in sources)
        return ReaderImages(readers, config.flip, seed, sources=names)
    if config.kind == "synth":
        folder = synth_dataset_dir(config)
        root, pattern = folder / f"{folder.name}-train-with-label" / "images", "**/*_image.png"
    else:
        root, pattern = Path(config.root), config.pattern
    portion = tuple(config.portion) if config.portion is not None else None
    return GlobImageDataset(root, config.resolution, pattern, portion, config.flip, config.dinov2_resolution, seed=seed)


@dataclass(frozen=True)
class BatchSchedule:
    """The global micro-batch of every micro-step (see the module docstring)."""

    num_items: int
    batch_size: int  # per process
    num_processes: int
    seed: int
    grad_accum: int = 1

    def __post_init__(self) -> None:
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the dataset has {self.num_items} images, fewer than one global batch "
                f"({self.batch_size} per process x {self.num_processes} processes)"
            )

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.num_processes

    @property
    def steps_per_epoch(self) -> int:
        return self.num_items // self.global_batch

    def epoch_of(self, micro_step: int) -> int:
        return micro_step // self.steps_per_epoch

    def global_indices(self, micro_step: int) -> np.ndarray:
        epoch, position = divmod(micro_step, self.steps_per_epoch)
        order = np.random.default_rng((self.seed, epoch)).permutation(self.num_items)
        return order[position * self.global_batch : (position + 1) * self.global_batch]

    def local_items(self, micro_step: int, rank: int) -> list[tuple[int, int]]:
        """``(dataset index, epoch)`` of this process's images at ``micro_step``."""
        indices = self.global_indices(micro_step)[rank * self.batch_size : (rank + 1) * self.batch_size]
        epoch = self.epoch_of(micro_step)
        return [(int(i), epoch) for i in indices]

    def generators(self, micro_step: int, rank: int) -> list[torch.Generator]:
        """One generator per local image, seeded by ``(seed, optimizer step, position in its batch)``."""
        step, k = divmod(micro_step, self.grad_accum)
        start = k * self.global_batch + rank * self.batch_size
        seeds = [
            int(np.random.SeedSequence((self.seed, step, j)).generate_state(1, dtype=np.uint64)[0] >> 1)
            for j in range(start, start + self.batch_size)
        ]
        return [torch.Generator().manual_seed(s) for s in seeds]


class ScheduleSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(index, epoch)`` for micro-steps ``start, start + 1, ..., stop - 1``."""

    def __init__(self, schedule: BatchSchedule, rank: int, start: int, stop: int) -> None:
        self.schedule, self.rank, self.start, self.stop = schedule, rank, start, stop

    def __iter__(self):
        for micro_step in range(self.start, self.stop):
            yield self.schedule.local_items(micro_step, self.rank)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


class EpochIndexed(Dataset):
    """Wraps a :class:`GlobImageDataset` so items are fetched by ``(index, epoch)`` pairs."""

    def __init__(self, dataset: GlobImageDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, epoch = key
        return self.dataset.get(index, epoch)
