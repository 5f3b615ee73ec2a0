"""Run a trained LSD over a labelled dataset: object-discovery scores and property probes.

Per batch (the LSD release's evaluation, docs/metrics.md):

    pixels (B, 3, R, R) --model.encode(noise)--> slots (B, S, D_out), attn (B, heads, N, S)
    pred  = argmax_s bilinear(sum_heads attn, GT size, align_corners=False)         (B, H, W)
    SegmentationAccumulator.update(masks, pred, visible)  -> matched (GT id, slot) pairs
    collect_matched(slots, pairs, labels)                 -> (M_b, D_out) slots, labels

then FG-ARI / mBO / mIoU over the whole dataset and one probe per property on all matched pairs
(:func:`lsd.metrics.fit_property_probes`: 83 % train, release normalisation, AdamW).

Reproducibility: the Gaussian slot initialisation of image ``i`` (its position in the dataset)
is drawn from its own generator, seeded by ``SeedSequence((seed, i))`` (:func:`slot_noise`), so
results depend neither on the batch size nor on ``max_images`` nor on the device's RNG; the
probes are seeded by ``probe_seed``.

A DINOv2 backbone (Stable-LSD) gets the release's view: bilinear resize, centre crop, ImageNet
normalisation (:func:`backbone_view`; training builds the same view with
:func:`lsd.data.transforms.dinov2_view`).

:func:`evaluate` (slots) and :func:`evaluate_segmenter` (baselines) share one scoring loop,
:func:`score_dataset`.

Ignored pixels (COCO's ``ignore``: pixels covered by more than one instance) are left out of
every score, as DINOSAUR zeroes them in both the GT and the predicted masks; an object left
with no pixel is not scored.

Class masks (COCO): with ``class_label`` (default: the dataset's ``class_label`` attribute,
``"category"`` for COCO), every instance is also replaced by its category
(:func:`lsd.metrics.class_label_maps`) and the same prediction is scored against those class
masks too: ``mbo_class``, ``miou_class`` and their image averages (mBO^c, mIoU^c of SPOT / CODA).

Mask resolution: ``mask_resolution=None`` scores at the reader's GT size ("native"); an int ``N``
first resizes every GT map (and ignore map) with NEAREST so its short side is ``N``, then cuts the
centre ``N x N`` (DINOSAUR's and SPOT's 320, later work's 224); the prediction is made at that size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from lsd.data.sample import LabelledBatch
from lsd.data.transforms import resize_label_maps
from lsd.metrics import SegmentationAccumulator, class_label_maps, collect_matched, fit_property_probes
from lsd.metrics.matching import Matching, Ties
from lsd.metrics.probes import DEFAULT_SEED as DEFAULT_PROBE_SEED
from lsd.metrics.probes import DEFAULT_STEPS as DEFAULT_PROBE_STEPS
from lsd.metrics.probes import DEFAULT_TRAIN_FRACTION
from lsd.models.lsd import attention_to_segmentation
from lsd.models.slot_attention import sample_slot_noise

__all__ = [
    "EvaluationResult",
    "Predictor",
    "ScoredDataset",
    "Segmenter",
    "backbone_view",
    "evaluate",
    "evaluate_segmenter",
    "score_dataset",
    "slot_noise",
    "DEFAULT_PROBE_SEED",
    "DEFAULT_PROBE_STEPS",
]

#: What each segmentation score averages (written into results.json).
AVERAGING = {
    "fg_ari": "per image over foreground pixels (GT id != 0), then mean over images",
    "ari": "per image over every pixel (background is one more cluster), then mean over images",
    "mbo": "object-averaged (paper): best IoU of every matched scored object of the dataset",
    "miou": "object-averaged (paper): IoU of every matched (object, slot) pair of the dataset",
    "mbo_image": "image-averaged (DINOSAUR-style): per image over every scored object, then over images",
    "miou_image": "image-averaged: per image over its matched pairs, then over images",
    "mbo_class": "as mbo, against class masks (instances of a category merged): object(class)-averaged",
    "miou_class": "as miou, against class masks: object(class)-averaged",
    "mbo_class_image": "as mbo_image, against class masks (SPOT / CODA's mBO^c): per image, then over images",
    "miou_class_image": "as miou_image, against class masks (CODA's mIoU^c protocol up to its matching)",
}

#: The class-mask scores (keys of ``metrics``), from the instance scores of the same name.
CLASS_KEYS = {
    "mbo": "mbo_class",
    "miou": "miou_class",
    "mbo_image": "mbo_class_image",
    "miou_image": "miou_class_image",
}


def slot_noise(seed: int, indices: Sequence[int], num_slots: int, slot_size: int) -> torch.Tensor:
    """``(len(indices), num_slots, slot_size)`` float32 standard-normal slot-init draws on the CPU.

    Row ``b`` depends only on ``(seed, indices[b])``: ``torch.randn`` from a generator seeded by
    numpy's ``SeedSequence((seed, index))``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative int, got {seed!r}")
    generators = []
    for index in indices:
        state = int(np.random.SeedSequence((seed, int(index))).generate_state(1, dtype=np.uint64)[0] >> 1)
        generators.append(torch.Generator().manual_seed(state))
    if not generators:
        return torch.zeros(0, num_slots, slot_size)
    return sample_slot_noise(num_slots, slot_size, len(generators), generators)


def backbone_view(model, pixel_values: torch.Tensor, backbone_pixel_values: torch.Tensor | None = None):
    """The backbone's own input for a batch, or None when it takes ``pixel_values`` (a CNN backbone).

    For a DINOv2 backbone (Stable-LSD): ``backbone_pixel_values`` when the reader made them
    (:func:`lsd.data.transforms.dinov2_view`, the release's transform), else ``pixel_values``
    ``(B, 3, R, R)`` in [-1, 1], read at the backbone's input size by the readers' same bilinear
    resize and centre crop, mapped to [0, 1] and ImageNet-normalised
    (:func:`lsd.data.transforms.imagenet_normalise`): the same transform.
    """
    from lsd.data.transforms import imagenet_normalise
    from lsd.models.dinov2 import DINOv2Backbone

    if not isinstance(model.backbone, DINOv2Backbone):
        return None
    if backbone_pixel_values is not None:
        return backbone_pixel_values
    return imagenet_normalise((pixel_values + 1) / 2)


@dataclass
class EvaluationResult:
    """Everything one evaluation measured.

    Attributes:
        metrics: ``fg_ari``, ``mbo``, ``miou`` (object-averaged, the paper's), ``mbo_image``,
            ``miou_image`` (image-averaged), each a fraction (see :data:`AVERAGING`).
        probes: property -> test accuracy (discrete, a fraction) or test MSE (continuous).
        probe_kinds: property -> ``"discrete"`` / ``"continuous"``.
        num_images, num_scored_objects: images and scored (visible foreground) GT objects.
        num_matched_objects: matched (object, slot) pairs: the probes' samples and the objects
            the object-averaged ``mbo`` / ``miou`` count.
        num_slots, max_num_objects: the matching's columns and GT ids ``1..K``.
        conventions: matching, ties, averaging, segmentation rule, noise, probe protocol.
        probe_note: why probes were not fitted (``probe_steps=0``, too few matched objects), or None.
        seconds: wall time of :func:`evaluate`.
        examples: the first few images: ``pixel_values`` ``(n, 3, R, R)``, ``masks`` ``(n, H, W)``
            (GT ids), ``pred`` ``(n, H, W)`` (slot ids), on the CPU.
    """

    metrics: dict[str, float]
    probes: dict[str, float]
    probe_kinds: dict[str, str]
    num_images: int
    num_scored_objects: int
    num_matched_objects: int
    num_slots: int
    max_num_objects: int
    conventions: dict[str, Any]
    probe_note: str | None
    seconds: float
    examples: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: everything but ``examples``; NaN becomes None."""

        def clean(values: dict[str, float]) -> dict[str, float | None]:
            return {k: (None if math.isnan(v) else v) for k, v in values.items()}

        return {
            "metrics": clean(self.metrics),
            "probes": {
                name: {
                    "kind": self.probe_kinds[name],
                    "measure": "accuracy" if self.probe_kinds[name] == "discrete" else "mse",
                    "value": None if math.isnan(value) else value,
                }
                for name, value in self.probes.items()
            },
            "probe_note": self.probe_note,
            "num_images": self.num_images,
            "num_scored_objects": self.num_scored_objects,
            "num_matched_objects": self.num_matched_objects,
            "num_slots": self.num_slots,
            "max_num_objects": self.max_num_objects,
            "conventions": self.conventions,
            "seconds": self.seconds,
        }


def _score(
    accumulator: SegmentationAccumulator,
    true: torch.Tensor,
    pred: torch.Tensor,
    visible: torch.Tensor | None,
    ignore: torch.Tensor | None,
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], int]:
    """Add a batch to ``accumulator``; return its matched pairs per image and its scored-object count.

    ``visible`` ``(B, K+1)``, or None: every id present in ``true`` is scored (class masks)."""
    if ignore is None or not bool(ignore.any()):
        evaluation = accumulator.update(true, pred, visible)
        return evaluation.pairs(), int(evaluation.scored.sum())
    # Metrics are functions of each image's contingency table: scoring only the kept pixels of an
    # image (as a 1 x N map) equals zeroing the ignored ones in both GT and predicted masks.
    pairs, scored = [], 0
    for b in range(true.shape[0]):
        keep = ~ignore[b]
        kept_true, kept_pred = true[b][keep].view(1, 1, -1), pred[b][keep].view(1, 1, -1)
        if visible is None:
            evaluation = accumulator.update(kept_true, kept_pred, None)
        else:
            present = (torch.bincount(kept_true.view(-1), minlength=visible.shape[1]) > 0)[: visible.shape[1]]
            evaluation = accumulator.update(kept_true, kept_pred, visible[b : b + 1] & present)
        pairs += evaluation.pairs()
        scored += int(evaluation.scored.sum())
    return pairs, scored


def _conventions(
    matching: str, ties: str, seed: int, probe_seed: int, probe_steps: int, scored: ScoredDataset
) -> dict[str, Any]:
    ignores = scored.ignores
    if scored.mask_resolution is None:
        resolution = "native: the GT masks as the reader delivers them (docs/datasets.md)"
    else:
        resolution = (
            f"{scored.mask_resolution}: GT masks resized (NEAREST) to short side {scored.mask_resolution}, "
            f"then the centre {scored.mask_resolution} x {scored.mask_resolution} crop"
        )
    return {
        "matching": matching,
        "ties": ties,
        "mask_resolution": scored.mask_resolution or "native",
        "mask_resolution_protocol": resolution,
        "class_masks": None
        if scored.class_label is None
        else f"instances merged by their {scored.class_label!r} label (class id per pixel; same ignored pixels)",
        "averaging": {k: v for k, v in AVERAGING.items() if scored.class_label or k not in CLASS_KEYS.values()},
        "unmatched_objects": "objects the Hungarian matching leaves out (more objects than slots) are not "
        "counted by the object-averaged mbo / miou (the release's rule)",
        "segmentation": "last-iteration slot attention summed over heads, bilinear resize "
        "(align_corners=False) to the GT mask size, argmax over slots",
        "empty_foreground_fg_ari": 1.0,
        "slot_init_noise": f"per image i: torch.randn((S, D)) from a generator seeded by SeedSequence(({seed}, i))",
        "ignored_pixels": "left out of every score (pixels covered by several instances)" if ignores else None,
        "probes": {
            "pairs": "matched (GT object, slot) pairs of the Hungarian matching above; output slot vectors",
            "split": f"torch.randperm with seed {probe_seed}; first int({DEFAULT_TRAIN_FRACTION} * M) train",
            "train_fraction": DEFAULT_TRAIN_FRACTION,
            "seed": probe_seed,
            "steps": probe_steps,
            "optimizer": "AdamW (lr 1e-3), full batch, summed losses / num_train",
            "discrete": "Linear(D, classes), cross-entropy; test accuracy",
            "continuous": "Linear(D, D) -> ReLU -> Linear(D, dim), MSE; labels min/max-normalised to [-1, 1] "
            "per dimension over all pairs (the release); test MSE",
        },
    }


#: ``predict(batch, indices)`` -> ``(pred, slots)``: segment ids ``(B, H, W)`` int64 at the GT mask
#: size on the CPU, and the slot vectors ``(B, S, D)`` float32 on the CPU (or None: nothing to probe).
Predictor = Callable[[LabelledBatch, range], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass
class ScoredDataset:
    """What :func:`score_dataset` gathered over a dataset.

    Attributes:
        accumulator: the segmentation scores (``compute()``, ``num_images``, ``num_matched_objects``).
        num_scored_objects: visible foreground GT objects scored.
        ignores: whether any image had ignored pixels.
        class_accumulator: the scores against class masks (None without ``class_label``).
        class_label: the discrete label the class masks merge instances by, or None.
        mask_resolution: the GT size scored at (None: native).
        slots: matched slots ``(M, D)`` per batch (empty without properties or slots).
        labels: property -> its matched labels per batch, aligned with ``slots``.
        examples: the first few images: ``pixel_values``, ``masks``, ``pred`` on the CPU.
    """

    accumulator: SegmentationAccumulator
    num_scored_objects: int
    ignores: bool
    slots: list[torch.Tensor]
    labels: dict[str, list[torch.Tensor]]
    examples: dict[str, torch.Tensor]
    class_accumulator: SegmentationAccumulator | None = None
    class_label: str | None = None
    mask_resolution: int | None = None

    def metrics(self) -> dict[str, float]:
        """Instance scores, then the class-mask scores (:data:`CLASS_KEYS`) when computed."""
        metrics = self.accumulator.compute()
        if self.class_accumulator is not None:
            by_class = self.class_accumulator.compute()
            metrics.update({name: by_class[key] for key, name in CLASS_KEYS.items()})
        return metrics


def _resized(batch: LabelledBatch, size: int) -> LabelledBatch:
    """``batch`` with its GT maps (``masks``, ``ignore``) at ``size`` (short side, centre crop);
    objects left without a pixel become invisible."""
    batch = dict(batch)
    masks = resize_label_maps(batch["masks"], size)
    batch["masks"] = masks
    if batch.get("ignore") is not None:
        batch["ignore"] = resize_label_maps(batch["ignore"], size)
    visible = batch["visible"].bool()
    present = torch.zeros_like(visible).scatter_(1, masks.flatten(1).long(), True)  # (B, K + 1)
    batch["visible"] = visible & present
    return batch  # type: ignore[return-value]


def _check_mask_resolution(mask_resolution: object) -> None:
    if mask_resolution is None:
        return
    if isinstance(mask_resolution, bool) or not isinstance(mask_resolution, int) or mask_resolution < 1:
        raise ValueError(f"`mask_resolution` must be None (native) or a positive int, got {mask_resolution!r}")


def _check_sizes(batch_size: int, max_images: int | None) -> None:
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"`max_images` must be >= 1, got {max_images}")


def score_dataset(
    predict: Predictor,
    dataset: Dataset,
    *,
    num_segments: int,
    property_kinds: dict[str, str] | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    matching: Matching = "cosine",
    ties: Ties = "canonical",
    max_images: int | None = None,
    num_examples: int = 4,
    progress: bool = True,
    description: str = "evaluate",
    class_label: str | None = None,
    mask_resolution: int | None = None,
) -> ScoredDataset:
    """The one scoring loop: the batches (:class:`lsd.data.sample.LabelledBatch`) of ``dataset`` in
    order, ``predict`` on each, segmentation scores against the GT (``masks``, ``visible``, optional
    ``ignore``; docs/metrics.md), and the matched slots and labels gathered for the probes when
    ``property_kinds`` is given and ``predict`` returns slots.

    Image ``i`` of the loop is the dataset's item ``i`` (``indices`` passed to ``predict``), so
    seeds keyed on it do not depend on ``batch_size`` or ``max_images``.

    ``class_label``: a discrete label of the dataset (COCO: ``"category"``); the prediction is
    also scored against the class masks it defines (module docstring), with ``matching`` and
    canonical ties (class segments have no fixed count to pad the release's matrix to).
    ``mask_resolution``: the GT size to score at (None: the reader's).
    """
    _check_sizes(batch_size, max_images)
    _check_mask_resolution(mask_resolution)
    kinds_all = dict(getattr(dataset, "property_kinds", {}) or {})
    if class_label is not None and kinds_all.get(class_label) != "discrete":
        raise ValueError(f"`class_label` {class_label!r} is not a discrete label of the dataset ({sorted(kinds_all)})")
    kinds = dict(property_kinds or {})
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    subset = dataset if count == len(dataset) else Subset(dataset, range(count))
    accumulator = SegmentationAccumulator(
        num_segments, matching=matching, ties=ties, max_num_obj=dataset.max_num_objects
    )
    slot_parts: list[torch.Tensor] = []
    label_parts: dict[str, list[torch.Tensor]] = {name: [] for name in kinds}
    examples: dict[str, list[torch.Tensor]] = {"pixel_values": [], "masks": [], "pred": []}
    class_accumulator = None
    if class_label is not None:
        class_accumulator = SegmentationAccumulator(num_segments, matching=matching, ties="canonical")
    num_scored, ignores, position = 0, False, 0
    loader = DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for batch in tqdm(loader, desc=description, unit="batch", disable=not progress):
        if mask_resolution is not None:
            batch = _resized(batch, mask_resolution)
        pixels, true = batch["pixel_values"], batch["masks"]  # (B, 3, R, R), (B, H, W)
        indices = range(position, position + pixels.shape[0])
        position += pixels.shape[0]
        pred, slots = predict(batch, indices)
        ignore = batch.get("ignore")
        ignores = ignores or ignore is not None
        pairs, scored = _score(accumulator, true, pred, batch["visible"], ignore)
        num_scored += scored
        if class_accumulator is not None:
            classes = class_label_maps(true, batch["labels"][class_label])  # (B, H, W) category ids
            _score(class_accumulator, classes, pred, None, ignore)
        if kinds and slots is not None:
            labels = {name: batch["labels"][name] for name in kinds}
            matched_slots, matched = collect_matched(slots, pairs, labels, label_offset=1)
            slot_parts.append(matched_slots)
            for name in kinds:
                label_parts[name].append(matched[name])
        kept = num_examples - sum(x.shape[0] for x in examples["masks"])
        if kept > 0:
            for key, value in (("pixel_values", pixels), ("masks", true), ("pred", pred)):
                examples[key].append(value[:kept].cpu())
    return ScoredDataset(
        accumulator=accumulator,
        num_scored_objects=num_scored,
        ignores=ignores,
        slots=slot_parts,
        labels=label_parts,
        examples={k: torch.cat(v) for k, v in examples.items() if v},
        class_accumulator=class_accumulator,
        class_label=class_label,
        mask_resolution=mask_resolution,
    )


@torch.no_grad()
def evaluate(
    model,
    dataset: Dataset,
    *,
    batch_size: int = 8,
    seed: int = 0,
    matching: Matching = "cosine",
    ties: Ties = "canonical",
    probe_steps: int = DEFAULT_PROBE_STEPS,
    probe_seed: int = DEFAULT_PROBE_SEED,
    max_images: int | None = None,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    num_examples: int = 4,
    progress: bool = True,
    class_label: str | None | bool = True,
    mask_resolution: int | None = None,
) -> EvaluationResult:
    """Segmentation scores and property probes of ``model`` on ``dataset``.

    Args:
        model: a :class:`~lsd.LatentSlotDiffusion` (put in eval mode; moved to ``device`` if given).
        dataset: a labelled reader (:mod:`lsd.data`): items with ``pixel_values`` ``(3, R, R)``
            at the model's input size, ``masks`` ``(H, W)``, ``visible`` ``(K+1,)``, ``labels``
            (row ``j`` = GT id ``j + 1``), optionally ``ignore`` ``(H, W)``; and the attributes
            ``max_num_objects`` and ``property_kinds``.
        batch_size: images per forward pass (does not change any result).
        seed: seeds the slot initialisation (see :func:`slot_noise`).
        matching: ``"cosine"`` (paper) or ``"iou"``; ties: ``"canonical"`` or ``"release"``
            (see :mod:`lsd.metrics.matching`).
        probe_steps: AdamW steps of the property probes (release 4000); 0 skips the probes.
        probe_seed: seeds the probes' split and initialisation (release 666).
        max_images: evaluate the first ``max_images`` images only.
        device: where the model runs (default: where it is).
        num_workers: DataLoader workers.
        num_examples: images kept in ``result.examples`` (for figures).
        progress: show a tqdm bar.
        class_label: score class masks too, merging instances by this discrete label; True
            (default): the dataset's ``class_label`` attribute if it has one (COCO); None / False: no.
        mask_resolution: GT size to score at; None: the reader's ("native"); see the module docstring.
    """
    _check_sizes(batch_size, max_images)
    if probe_steps < 0:
        raise ValueError(f"`probe_steps` must be >= 0, got {probe_steps}")
    slot_noise(seed, [], 1, 1)  # validates `seed` before any work
    start_time = time.perf_counter()
    if device is not None:
        model.to(device)
    model.eval()
    device = model.device
    config = model.slot_attention.config
    num_slots, learnable_init = config.num_slots, config.learnable_slot_init
    kinds = dict(getattr(dataset, "property_kinds", {}))
    max_num_obj = dataset.max_num_objects

    def predict(batch: LabelledBatch, indices: range) -> tuple[torch.Tensor, torch.Tensor]:
        noise = None
        if not learnable_init:
            noise = slot_noise(seed, indices, num_slots, config.slot_size)
            noise = noise.to(device=device, dtype=model.slot_attention.slot_mu.dtype)
        pixels = batch["pixel_values"].to(device)
        own_view = batch.get("backbone_pixel_values")
        view = backbone_view(model, pixels, None if own_view is None else own_view.to(device))
        encoding = model.encode(pixels, noise=noise, backbone_pixel_values=view)
        pred = attention_to_segmentation(encoding.attn, tuple(batch["masks"].shape[-2:])).cpu()  # (B, H, W)
        return pred, encoding.slots.float().cpu()

    scored = score_dataset(
        predict, dataset, num_segments=num_slots, batch_size=batch_size, matching=matching, ties=ties,
        max_images=max_images, num_examples=num_examples, num_workers=num_workers, property_kinds=kinds,
        progress=progress, description="evaluate", class_label=_class_label(dataset, class_label),
        mask_resolution=mask_resolution,
    )  # fmt: skip
    accumulator, slot_parts, label_parts = scored.accumulator, scored.slots, scored.labels

    probes: dict[str, float] = {}
    probe_note = None
    num_matched = accumulator.num_matched_objects
    if not kinds:
        probe_note = "the dataset has no object properties"
    elif probe_steps == 0:
        probe_note = "probes skipped (probe_steps=0)"
    elif not 0 < int(num_matched * DEFAULT_TRAIN_FRACTION) < num_matched:
        probe_note = f"{num_matched} matched objects are too few for a train/test split"
    else:
        with torch.enable_grad():
            probes = fit_property_probes(
                torch.cat(slot_parts).to(device),
                {name: torch.cat(parts).to(device) for name, parts in label_parts.items()},
                kinds,
                seed=probe_seed,
                steps=probe_steps,
                progress=progress,
            )
    return EvaluationResult(
        metrics=scored.metrics(),
        probes=probes,
        probe_kinds=kinds,
        num_images=accumulator.num_images,
        num_scored_objects=scored.num_scored_objects,
        num_matched_objects=num_matched,
        num_slots=num_slots,
        max_num_objects=max_num_obj,
        conventions=_conventions(matching, ties, seed, probe_seed, probe_steps, scored),
        probe_note=probe_note,
        seconds=time.perf_counter() - start_time,
        examples=scored.examples,
    )


def _class_label(dataset: Dataset, class_label: str | None | bool) -> str | None:
    """The label class masks merge by: ``True`` -> the dataset's ``class_label`` attribute (or None)."""
    if class_label is True:
        return getattr(dataset, "class_label", None)
    return class_label or None


#: ``segment(pixel_values (B, 3, R, R) in [-1, 1], indices)`` -> segment ids ``(B, h, w)`` int64.
Segmenter = Callable[[torch.Tensor, range], torch.Tensor]


@torch.no_grad()
def evaluate_segmenter(
    segment: Segmenter,
    dataset: Dataset,
    *,
    num_segments: int,
    batch_size: int = 8,
    matching: Matching = "cosine",
    ties: Ties = "canonical",
    max_images: int | None = None,
    num_examples: int = 4,
    progress: bool = True,
    description: str = "baseline",
    class_label: str | None | bool = True,
    mask_resolution: int | None = None,
) -> EvaluationResult:
    """Segmentation scores of any per-pixel segmenter (a baseline) on ``dataset``, scored exactly as
    :func:`evaluate` scores slots; no probes (a segmenter has no slot vectors).

    ``segment`` gets a batch's ``pixel_values`` and the batch's dataset positions and returns ids
    in ``[0, num_segments)`` at any size; they are resized to the GT mask size with nearest
    neighbour interpolation. ``class_label`` and ``mask_resolution``: as :func:`evaluate`.
    """
    start_time = time.perf_counter()

    def predict(batch: LabelledBatch, indices: range) -> tuple[torch.Tensor, None]:
        pixels = batch["pixel_values"]
        ids = segment(pixels, indices)
        if ids.shape[0] != pixels.shape[0] or ids.ndim != 3:
            raise ValueError(f"{description}: segmenter returned {tuple(ids.shape)} for {pixels.shape[0]} images")
        if int(ids.min()) < 0 or int(ids.max()) >= num_segments:
            raise ValueError(f"{description}: segment ids outside [0, {num_segments})")
        size = tuple(batch["masks"].shape[-2:])
        return F.interpolate(ids[:, None].float(), size=size, mode="nearest")[:, 0].long(), None

    scored = score_dataset(
        predict, dataset, num_segments=num_segments, batch_size=batch_size, matching=matching, ties=ties,
        max_images=max_images, num_examples=num_examples, progress=progress, description=description,
        class_label=_class_label(dataset, class_label), mask_resolution=mask_resolution,
    )  # fmt: skip
    accumulator = scored.accumulator
    conventions = _conventions(matching, ties, 0, DEFAULT_PROBE_SEED, 0, scored)
    conventions["segmentation"] = f"{description}: segment ids resized to the GT size (nearest)"
    del conventions["slot_init_noise"], conventions["probes"]
    return EvaluationResult(
        metrics=scored.metrics(),
        probes={},
        probe_kinds={},
        num_images=accumulator.num_images,
        num_scored_objects=scored.num_scored_objects,
        num_matched_objects=accumulator.num_matched_objects,
        num_slots=num_segments,
        max_num_objects=dataset.max_num_objects,
        conventions=conventions,
        probe_note="a baseline segmenter has no slots to probe",
        seconds=time.perf_counter() - start_time,
        examples=scored.examples,
    )
