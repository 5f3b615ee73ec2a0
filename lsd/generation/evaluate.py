"""Generation and editing measures on held-out images (``lsd evaluate-generation``).

With a model, ``N`` held-out images, a :class:`~lsd.generation.concepts.ConceptLibrary` and a
:data:`~lsd.generation.decoding.SlotDecoder` (image ``i``: slot noise and sampler noise seeded by
``(seed, i)``, see :mod:`lsd.generation.decoding`), :func:`evaluate_generation` measures:

- **reconstruction**: images decoded from their own slots: PSNR (dB, range 2) and the
  neighbouring-pixel difference, beside the real images' own difference;
- **distances**: the Frechet distance to the ``N`` real images of (a) own-slot reconstructions,
  (b) ``N`` compositions (``library.compose(N, Generator().manual_seed(seed))``) and (c) slots
  shuffled across the ``N`` images (:func:`~lsd.generation.concepts.shuffle_slots`); over
  Inception pool3 (FID) when a weights file is given, else over
  :class:`~lsd.metrics.generation.FallbackFeatures` (not comparable with published FID);
- **edits**, each scored by re-segmenting the decoded image with the model (same slot noise):

  - *removal*: drop image ``i``'s largest object slot ``k``. Success when most (>= 0.5) of ``k``'s
    region goes to the edited image's background slot; the other objects *keep* when each one's
    best IoU with a segment of the edited image is at most 0.1 below its best IoU in the
    reconstruction from the unedited slots (same noise);
  - *insertion*: append the largest object slot of image ``(i + 1) % N`` (the donor). Success when
    the donor object's region has best IoU >= 0.5 with a non-background segment of the edited
    image; reported with the colour error in that region against the donor and against the
    unedited reconstruction; image ``i``'s objects that overlap the donor region by < 10% keep as above;
  - *background replacement*: replace image ``i``'s background slot by the donor's. Over the pixels
    that are background in both images, success when the edited image is closer (mean absolute
    error) to the donor than to image ``i``; image ``i``'s objects keep as above.

Images without an object slot (or whose donor has none) are skipped and counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from lsd.generation.concepts import ConceptLibrary, shuffle_slots
from lsd.generation.decoding import SlotDecoder, encode_images, image_generators, segment_images, slot_decoder
from lsd.generation.editing import background_slot, insert_slot, object_slots, remove_slot, replace_slot
from lsd.metrics.fid import fid_from_features
from lsd.metrics.generation import FALLBACK_FEATURES_NAME, FallbackFeatures, neighbour_difference, psnr
from lsd.models.lsd import attention_to_segmentation

__all__ = ["GenerationProtocol", "best_iou", "evaluate_generation"]

KEEP_TOLERANCE = 0.1
REGION_MAJORITY = 0.5
INSERT_IOU = 0.5
MIN_OBJECT_PIXELS = 16


@dataclass(frozen=True)
class GenerationProtocol:
    """The pinned settings written to ``results.json``."""

    num_images: int = 64
    sampler: str = "dpm"
    num_inference_steps: int = 25
    seed: int = 0
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.num_images < 2:
            raise ValueError(f"`num_images` must be >= 2 (distances and donors need two images), got {self.num_images}")
        if self.batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {self.batch_size}")


def best_iou(region: torch.Tensor, segmentation: torch.Tensor, exclude: int | None = None) -> float:
    """Best IoU of a boolean ``region`` ``(H, W)`` with any segment of ``segmentation`` ``(H, W)``
    (slot id ``exclude`` left out); 0 for an empty region."""
    if not region.any():
        return 0.0
    best = 0.0
    for segment in torch.unique(segmentation).tolist():
        if segment == exclude:
            continue
        mask = segmentation == segment
        union = (mask | region).sum().item()
        best = max(best, (mask & region).sum().item() / union)
    return best


def _keeps(objects: list[torch.Tensor], reference: torch.Tensor, edited: torch.Tensor) -> tuple[bool, float]:
    """Whether every object region keeps its best overlap (drop <= 0.1), and the largest drop."""
    drops = [best_iou(r, reference) - best_iou(r, edited) for r in objects]
    worst = max(drops, default=0.0)
    return worst <= KEEP_TOLERANCE, worst


def _batched(decode: SlotDecoder, slots: torch.Tensor, generators: list[torch.Generator], size: int) -> torch.Tensor:
    return torch.cat(
        [decode(slots[i : i + size], generators[i : i + size]).float().cpu() for i in range(0, len(slots), size)]
    )


def _features(images: torch.Tensor, extractor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(
            [extractor(images[i : i + batch_size]).double().cpu() for i in range(0, len(images), batch_size)]
        )


def _mean(values: list[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def evaluate_generation(
    model,
    dataset,
    library: ConceptLibrary,
    protocol: GenerationProtocol = GenerationProtocol(),
    decode: SlotDecoder | None = None,
    inception=None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run every measure of the module docstring on ``dataset``'s first ``protocol.num_images``
    items (``pixel_values`` in ``[-1, 1]``). ``decode`` defaults to
    ``slot_decoder(model, protocol.num_inference_steps, protocol.sampler)``. ``inception``: an
    :class:`~lsd.metrics.InceptionFeatureExtractor` (FID), or ``None`` for the fallback features.

    Returns the ``results.json`` record (plain floats, ints, bools and strings), plus ``"images"``:
    ``(N, 3, R, R)`` tensors in ``[-1, 1]`` (real, own_slots, composed, shuffled, edit_removal,
    edit_insertion, edit_background) for figures, to pop before writing JSON."""
    start = time.perf_counter()
    p = protocol
    if p.num_images > len(dataset):
        raise ValueError(f"`num_images` {p.num_images} is more than the dataset's {len(dataset)} images")
    device = model.device
    indices = list(range(p.num_images))
    real = torch.stack([dataset[i]["pixel_values"] for i in indices])
    num_slots = model.slot_attention.config.num_slots
    slots, segmentation = [], []
    for i in range(0, p.num_images, p.batch_size):
        batch = indices[i : i + p.batch_size]
        encoding = encode_images(model, real[batch], p.seed, batch)
        slots.append(encoding.slots.float())
        segmentation.append(attention_to_segmentation(encoding.attn, tuple(real.shape[-2:])).cpu())
    slots, segmentation = torch.cat(slots), torch.cat(segmentation)
    background = background_slot(segmentation, num_slots)
    objects = object_slots(segmentation, num_slots, MIN_OBJECT_PIXELS, background)
    if decode is None:
        decode = slot_decoder(model, p.num_inference_steps, p.sampler)

    def generators() -> list[torch.Generator]:  # fresh generators: every decode starts from the same noise
        return image_generators(p.seed, indices, device)

    def resegment(images: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            segment_images(model, images[i : i + p.batch_size], p.seed, indices[i : i + p.batch_size])
            for i in range(0, p.num_images, p.batch_size)
        ])  # fmt: skip

    steps = tqdm(total=6, desc="generation measures", disable=not progress)

    own = _batched(decode, slots, generators(), p.batch_size)
    steps.update()
    composed_slots = library.compose(p.num_images, torch.Generator().manual_seed(p.seed)).to(slots)
    composed = _batched(decode, composed_slots, generators(), p.batch_size)
    steps.update()
    shuffled = _batched(decode, shuffle_slots(slots, torch.Generator().manual_seed(p.seed)), generators(), p.batch_size)
    steps.update()

    extractor = inception if inception is not None else FallbackFeatures()
    to_unit = (lambda x: (x + 1) / 2) if inception is not None else (lambda x: x)  # Inception takes [0, 1]
    real_features = _features(to_unit(real), extractor, p.batch_size)
    distances = {
        name: fid_from_features(_features(to_unit(images), extractor, p.batch_size), real_features)
        for name, images in (("own_slots", own), ("composed", composed), ("shuffled", shuffled))
    }
    reference_segmentation = resegment(own)

    # -- edits (image i, donor i + 1) ---------------------------------------------------------
    donor = [(i + 1) % p.num_images for i in indices]
    editable = [i for i in indices if objects[i] and objects[donor[i]]]
    removed_ids = torch.tensor([objects[i][0] if objects[i] else 0 for i in indices])
    donor_ids = torch.tensor([objects[donor[i]][0] if objects[donor[i]] else 0 for i in indices])
    donor_slots = slots[torch.tensor(donor), donor_ids]
    edits = {
        "removal": remove_slot(slots, removed_ids),
        "insertion": insert_slot(slots, donor_slots),
        "background": replace_slot(slots, background, slots[torch.tensor(donor), background[torch.tensor(donor)]]),
    }
    edited = {}
    for name, edited_slots in edits.items():
        images = _batched(decode, edited_slots, generators(), p.batch_size)
        edited[name] = (images, resegment(images))
        steps.update()
    steps.close()

    removal, insertion, swap = [], [], []
    for i in editable:
        seg, ref = segmentation[i], reference_segmentation[i]
        regions = {s: seg == s for s in objects[i]}
        images, seg_edit = edited["removal"][0][i], edited["removal"][1][i]
        k = objects[i][0]
        to_background = (seg_edit[regions[k]] == background_slot(seg_edit[None], num_slots)[0]).float().mean().item()
        keep, drop = _keeps([r for s, r in regions.items() if s != k], ref, seg_edit)
        removal.append({"to_background": to_background, "keeps": keep, "worst_drop": drop})

        donor_region = segmentation[donor[i]] == objects[donor[i]][0]
        images, seg_edit = edited["insertion"][0][i], edited["insertion"][1][i]
        iou = best_iou(donor_region, seg_edit, exclude=int(background_slot(seg_edit[None], num_slots)[0]))
        donor_pixels = real[donor[i]][:, donor_region]
        clear = [r for r in regions.values() if (r & donor_region).sum() < 0.1 * r.sum()]
        keep, drop = _keeps(clear, ref, seg_edit)
        insertion.append({
            "iou": iou, "keeps": keep, "worst_drop": drop,
            "error_to_donor": (images[:, donor_region] - donor_pixels).abs().mean().item(),
            "error_before": (own[i][:, donor_region] - donor_pixels).abs().mean().item(),
        })  # fmt: skip

        images, seg_edit = edited["background"][0][i], edited["background"][1][i]
        shared = (seg == background[i]) & (segmentation[donor[i]] == background[donor[i]])
        keep, drop = _keeps(list(regions.values()), ref, seg_edit)
        if shared.any():
            to_donor = (images[:, shared] - real[donor[i]][:, shared]).abs().mean().item()
            to_self = (images[:, shared] - real[i][:, shared]).abs().mean().item()
            swap.append({"error_to_donor": to_donor, "error_to_original": to_self, "keeps": keep, "worst_drop": drop})

    def fraction(rows: list[dict[str, Any]], test) -> float | None:
        return _mean([float(test(r)) for r in rows])

    return {
        "protocol": {
            "num_images": p.num_images, "sampler": p.sampler, "num_inference_steps": p.num_inference_steps,
            "seed": p.seed, "guidance_scale": 1.0,
            "seeds": "image i: slot noise slot_noise(seed, i), sampler noise SeedSequence((seed, i, 1)); "
                     "compose and shuffle: torch.Generator().manual_seed(seed)",
        },  # fmt: skip
        "reconstruction": {
            "psnr_db": float(psnr(own, real).mean()),
            "neighbour_difference": float(neighbour_difference(own).mean()),
            "neighbour_difference_real": float(neighbour_difference(real).mean()),
        },
        "distances": {
            **distances,
            "features": "inception-v3 pool3 (FID)" if inception is not None else FALLBACK_FEATURES_NAME,
            "comparable_with_paper_fid": inception is not None,
            "ordered_own_composed_shuffled": distances["own_slots"] < distances["composed"] < distances["shuffled"],
        },
        "concept_library": {
            "num_concepts": library.num_concepts, "num_background_concepts": library.num_background_concepts,
            "num_slots": library.num_slots, **{k: v for k, v in library.meta.items() if k in ("num_images", "seed")},
        },  # fmt: skip
        "edits": {
            "num_scenes": len(editable),
            "skipped_no_object": p.num_images - len(editable),
            "removal": {
                "success": fraction(removal, lambda r: r["to_background"] >= REGION_MAJORITY),
                "others_keep": fraction(removal, lambda r: r["keeps"]),
                "success_and_keep": fraction(removal, lambda r: r["to_background"] >= REGION_MAJORITY and r["keeps"]),
                "mean_region_to_background": _mean([r["to_background"] for r in removal]),
            },
            "insertion": {
                "success": fraction(insertion, lambda r: r["iou"] >= INSERT_IOU),
                "others_keep": fraction(insertion, lambda r: r["keeps"]),
                "mean_iou": _mean([r["iou"] for r in insertion]),
                "mean_error_to_donor": _mean([r["error_to_donor"] for r in insertion]),
                "mean_error_to_donor_before": _mean([r["error_before"] for r in insertion]),
            },
            "background": {
                "num_scenes": len(swap),
                "success": fraction(swap, lambda r: r["error_to_donor"] < r["error_to_original"]),
                "others_keep": fraction(swap, lambda r: r["keeps"]),
                "mean_error_to_donor": _mean([r["error_to_donor"] for r in swap]),
                "mean_error_to_original": _mean([r["error_to_original"] for r in swap]),
            },
            "rules": {"region_majority": REGION_MAJORITY, "insert_iou": INSERT_IOU, "keep_tolerance": KEEP_TOLERANCE,
                      "min_object_pixels": MIN_OBJECT_PIXELS},
        },  # fmt: skip
        "seconds": time.perf_counter() - start,
        "images": {"real": real, "own_slots": own, "composed": composed, "shuffled": shuffled,
                   **{f"edit_{k}": v[0] for k, v in edited.items()}},
    }  # fmt: skip
