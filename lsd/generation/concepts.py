"""A visual concept library of slots, and compositional generation from it.

Following SLATE (Singh et al. 2022) and LSD (Jiang et al. 2023, section 4.3): the slots of training
images are clustered with K-means into concepts, and a new scene is a slot set whose slots come
from distinct concepts, decoded by the diffusion decoder. What the papers leave open (LSD's
appendix was not recovered) is our choice, documented in docs/generation.md:

- **Two pools.** Each training image's background slot (the border rule of
  :func:`lsd.generation.editing.background_slot`) goes to the background pool; all its other slots
  (objects, and slots that hold little or nothing, which the decoder also saw in training) go to
  the object pool. Each pool is clustered separately with scikit-learn's ``KMeans``
  (``n_init=4``, ``random_state=seed``, Euclidean on the raw slot vectors): ``num_concepts``
  object concepts (default 32) and ``num_background_concepts`` background concepts (default 4).
- **Composition.** :meth:`ConceptLibrary.compose` gives every scene ``num_slots`` slots, the
  model's count: slot 0 from one background concept, slots ``1..num_slots-1`` from
  ``num_slots - 1`` distinct object concepts (one slot per concept). Concepts are drawn without
  replacement with probability proportional to their size (so common concepts, such as near-empty
  slots, stay as common as in real slot sets); within a concept, a member slot (a real slot of a
  training image, not the centroid) is drawn uniformly.

Saved as ``concepts.safetensors`` (member slots, their concept labels, centroids) and
``concepts.json`` (counts, seed, rule, source); no pickle.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = ["ConceptLibrary", "collect_slots", "shuffle_slots"]

TENSORS_NAME = "concepts.safetensors"
META_NAME = "concepts.json"
FORMAT = "lsd-concept-library-v1"
_TENSOR_KEYS = (
    "object_slots", "object_labels", "object_centroids",
    "background_slots", "background_labels", "background_centroids",
)  # fmt: skip


def collect_slots(
    model, dataset, num_images: int, seed: int = 0, batch_size: int = 32, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slots ``(N, S, D)`` and background slot ids ``(N,)`` of the first ``num_images`` items of
    ``dataset`` (items with ``pixel_values`` in ``[-1, 1]``), encoded with ``slot_noise(seed, index)``."""
    from tqdm.auto import tqdm

    from lsd.generation.decoding import encode_images
    from lsd.generation.editing import background_slot
    from lsd.models.lsd import attention_to_segmentation

    if num_images < 1 or num_images > len(dataset):
        raise ValueError(f"`num_images` must be in [1, {len(dataset)}] (the dataset's size), got {num_images}")
    slots, backgrounds = [], []
    for start in tqdm(range(0, num_images, batch_size), desc="concept slots", disable=not progress):
        indices = list(range(start, min(start + batch_size, num_images)))
        pixels = torch.stack([dataset[i]["pixel_values"] for i in indices])
        encoding = encode_images(model, pixels, seed, indices)
        segmentation = attention_to_segmentation(encoding.attn, tuple(pixels.shape[-2:]))
        slots.append(encoding.slots.float().cpu())
        backgrounds.append(background_slot(segmentation, encoding.slots.shape[1]).cpu())
    return torch.cat(slots), torch.cat(backgrounds)


def _kmeans(points: torch.Tensor, clusters: int, seed: int, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.cluster import KMeans

    if points.shape[0] < clusters:
        raise ValueError(f"{what}: {points.shape[0]} slots cannot make {clusters} concepts")
    fitted = KMeans(n_clusters=clusters, n_init=4, random_state=seed).fit(points.double().numpy())
    labels = torch.from_numpy(fitted.labels_.astype("int64"))
    return labels, torch.from_numpy(fitted.cluster_centers_).float()


@dataclass
class ConceptLibrary:
    """Slot concepts (see the module docstring for the rules).

    Attributes:
        object_slots: ``(M, D)`` member slots of the object pool; ``object_labels`` ``(M,)`` their
            concept ids in ``[0, C)``; ``object_centroids`` ``(C, D)``.
        background_slots, background_labels, background_centroids: the same for the background
            pool (``Cb`` concepts).
        num_slots: slots per composed scene (the model's slot count).
        meta: provenance written to ``concepts.json`` (seed, source, number of images).
    """

    object_slots: torch.Tensor
    object_labels: torch.Tensor
    object_centroids: torch.Tensor
    background_slots: torch.Tensor
    background_labels: torch.Tensor
    background_centroids: torch.Tensor
    num_slots: int
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        dim = self.object_slots.shape[-1]
        for name in _TENSOR_KEYS:
            value = getattr(self, name)
            expected_ndim = 1 if name.endswith("labels") else 2
            if value.ndim != expected_ndim or (expected_ndim == 2 and value.shape[1] != dim):
                raise ValueError(f"ConceptLibrary.{name} has shape {tuple(value.shape)}")
        for pool in ("object", "background"):
            labels, centroids = getattr(self, f"{pool}_labels"), getattr(self, f"{pool}_centroids")
            if labels.shape[0] != getattr(self, f"{pool}_slots").shape[0]:
                raise ValueError(f"ConceptLibrary: {pool}_labels and {pool}_slots differ in length")
            if labels.numel() and (labels.min() < 0 or labels.max() >= centroids.shape[0]):
                raise ValueError(f"ConceptLibrary: {pool}_labels outside [0, {centroids.shape[0]})")
        if self.num_slots < 2 or self.num_slots - 1 > self.num_concepts:
            raise ValueError(
                f"ConceptLibrary: a composed scene of {self.num_slots} slots needs {self.num_slots - 1} distinct "
                f"object concepts, the library has {self.num_concepts}"
            )

    @property
    def num_concepts(self) -> int:
        return int(self.object_centroids.shape[0])

    @property
    def num_background_concepts(self) -> int:
        return int(self.background_centroids.shape[0])

    @classmethod
    def fit(
        cls,
        slots: torch.Tensor,
        background: torch.Tensor,
        num_concepts: int = 32,
        num_background_concepts: int = 4,
        seed: int = 0,
        meta: dict[str, Any] | None = None,
    ) -> ConceptLibrary:
        """Cluster ``slots`` ``(N, S, D)`` with background slot ids ``background`` ``(N,)``."""
        if slots.ndim != 3 or background.shape != (slots.shape[0],):
            raise ValueError(
                f"need slots (N, S, D) and background (N,), got {tuple(slots.shape)}, {tuple(background.shape)}"
            )
        count, num_slots, _ = slots.shape
        is_background = torch.zeros(count, num_slots, dtype=torch.bool)
        is_background[torch.arange(count), background.long().cpu()] = True
        flat, is_background = slots.float().cpu().reshape(count * num_slots, -1), is_background.reshape(-1)
        object_pool, background_pool = flat[~is_background], flat[is_background]
        object_labels, object_centroids = _kmeans(object_pool, num_concepts, seed, "object concepts")
        background_labels, background_centroids = _kmeans(
            background_pool, num_background_concepts, seed, "background concepts"
        )
        record = {"num_images": count, "seed": seed, **(meta or {})}
        return cls(
            object_pool, object_labels, object_centroids, background_pool, background_labels, background_centroids,
            num_slots=num_slots, meta=record,
        )  # fmt: skip

    @classmethod
    def from_model(
        cls,
        model,
        dataset,
        num_images: int = 1000,
        num_concepts: int = 32,
        num_background_concepts: int = 4,
        seed: int = 0,
        batch_size: int = 32,
        progress: bool = False,
    ) -> ConceptLibrary:
        """Collect the slots of ``dataset``'s first ``num_images`` images through ``model`` and fit."""
        slots, background = collect_slots(model, dataset, num_images, seed, batch_size, progress)
        return cls.fit(slots, background, num_concepts, num_background_concepts, seed)

    def compose(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` new slot sets ``(n, num_slots, D)``: slot 0 from a background concept, the others
        from distinct object concepts (one each), concepts drawn by size, members uniformly."""
        if n < 1:
            raise ValueError(f"`n` must be >= 1, got {n}")
        sizes = torch.bincount(self.object_labels, minlength=self.num_concepts).double()
        background_sizes = torch.bincount(self.background_labels, minlength=self.num_background_concepts).double()
        if (sizes > 0).sum() < self.num_slots - 1 or (background_sizes > 0).sum() < 1:
            raise ValueError("ConceptLibrary: too few non-empty concepts to compose a scene")
        scenes = []
        for _ in range(n):
            background = torch.multinomial(background_sizes, 1, generator=generator)
            objects = torch.multinomial(sizes, self.num_slots - 1, replacement=False, generator=generator)
            chosen = [self._member(self.background_slots, self.background_labels, int(background), generator)]
            chosen += [self._member(self.object_slots, self.object_labels, int(c), generator) for c in objects]
            scenes.append(torch.stack(chosen))
        return torch.stack(scenes)

    @staticmethod
    def _member(pool: torch.Tensor, labels: torch.Tensor, concept: int, generator: torch.Generator | None):
        members = torch.nonzero(labels == concept).flatten()
        return pool[members[torch.randint(len(members), (1,), generator=generator)].item()]

    def concept_of(self, slots: torch.Tensor, background: bool = False) -> torch.Tensor:
        """Nearest concept id (Euclidean to the centroids) of slots ``(..., D)``."""
        centroids = self.background_centroids if background else self.object_centroids
        return (
            torch.cdist(slots.float().reshape(-1, slots.shape[-1]), centroids).argmin(dim=1).reshape(slots.shape[:-1])
        )

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``concepts.safetensors`` and ``concepts.json`` into ``directory``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: getattr(self, k).contiguous() for k in _TENSOR_KEYS}, str(folder / TENSORS_NAME))
        meta = {
            "format": FORMAT,
            "num_slots": self.num_slots,
            "num_concepts": self.num_concepts,
            "num_background_concepts": self.num_background_concepts,
            "slot_dim": int(self.object_slots.shape[1]),
            "rule": "two K-means pools (background slot by the border rule / all other slots); compose: slot 0 from "
            "a background concept, num_slots - 1 distinct object concepts drawn by size, members uniformly",
            "meta": self.meta,
        }
        (folder / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ConceptLibrary:
        """Read a library written by :meth:`save` (safetensors + JSON only)."""
        folder = Path(directory)
        meta_path, tensors_path = folder / META_NAME, folder / TENSORS_NAME
        for path in (meta_path, tensors_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: {folder} is not a concept library (ConceptLibrary.save)")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{meta_path}: invalid JSON ({err})") from err
        if meta.get("format") != FORMAT:
            raise ValueError(f"{meta_path}: field 'format' is {meta.get('format')!r}, expected {FORMAT!r}")
        tensors = load_file(str(tensors_path))
        missing = [k for k in _TENSOR_KEYS if k not in tensors]
        if missing:
            raise ValueError(f"{tensors_path}: missing tensors {missing}")
        return cls(**{k: tensors[k] for k in _TENSOR_KEYS}, num_slots=int(meta["num_slots"]), meta=meta.get("meta", {}))


def shuffle_slots(slots: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """SlotDiffusion's bound: slot position ``s`` of image ``b`` takes slot ``s`` of image
    ``perm_s[b]``, with an independent random permutation ``perm_s`` of the batch per position, so a
    scene mixes slots of several images. ``(B, S, D)``."""
    batch, num_slots, _ = slots.shape
    if batch < 2:
        raise ValueError("shuffling slots across images needs at least 2 images")
    columns = [slots[torch.randperm(batch, generator=generator), s] for s in range(num_slots)]
    return torch.stack(columns, dim=1)
