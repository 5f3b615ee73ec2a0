"""Generation and editing measures on held-out images (``lsd evaluate-generation``).

With a model, ``N`` held-out images, a :class:`~lsd.generation.concepts.ConceptLibrary` and a
:data:`~lsd.generation.decoding.SlotDecoder` (image ``i``: slot noise and sampler noise seeded by
``(seed, i)``, see :mod:`lsd.generation.decoding`), :func:`evaluate_generation` measures:

- **reconstruction**: images decoded from their own slots: PSNR (dB, range 2) and the
  neighbouring-pixel difference, beside the real images' own difference;
- **distances**: the Frechet distance to the ``N`` real images of (a) own-slot reconstructions,
  (b) ``N`` compositions (``library.compose(N, Generator().manual_seed(seed))``) and (c) slots
  shuffled across the ``N`` images (:func:`~lsd.generation.concepts.shuffle_slots`), over
  :class:`~lsd.metrics.generation.FallbackFeatures` (not comparable with published FID);
- **fid** (when an Inception network is given): the same three as FID over Inception-v3 pool3,
  with KID beside each;
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
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from lsd.generation.concepts import ConceptLibrary, shuffle_slots
from lsd.generation.decoding import SlotDecoder, encode_images, image_generators, segment_images, slot_decoder
from lsd.generation.editing import background_slot, insert_slot, object_slots, remove_slot, replace_slot
from lsd.metrics.fid import fid_from_features, kid_from_features
from lsd.metrics.generation import FALLBACK_FEATURES_NAME, FallbackFeatures, neighbour_difference, psnr
from lsd.models.lsd import attention_to_segmentation

__all__ = [
    "EditedScenes",
    "GenerationProtocol",
    "best_iou",
    "edit_scenes",
    "evaluate_generation",
    "image_features",
    "score_edits",
]

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


def image_features(images: torch.Tensor, extractor, batch_size: int) -> torch.Tensor:
    """``extractor``'s features ``(N, F)`` (float64, CPU) of ``images`` ``(N, 3, R, R)``, batch by
    batch on the extractor's device; the inputs are in whatever range ``extractor`` takes
    (Inception: [0, 1])."""
    weight = next(extractor.parameters(), None)
    device = images.device if weight is None else weight.device
    with torch.no_grad():
        return torch.cat([
            extractor(images[i : i + batch_size].to(device)).double().cpu() for i in range(0, len(images), batch_size)
        ])  # fmt: skip


@dataclass
class EditedScenes:
    """Held-out images, their slots and segmentation, and every edit decoded (image ``i``'s donor
    is image ``(i + 1) % N``). Images ``(N, 3, R, R)`` in ``[-1, 1]``; segmentations ``(N, R, R)``.

    Attributes:
        real, slots ``(N, S, D)``, segmentation, background ``(N,)``: the inputs, encoded.
        objects: per image, its object slots, largest first.
        own, own_segmentation: decoded from the unedited slots, and re-segmented.
        edited: ``"removal"`` / ``"insertion"`` / ``"background"`` -> (images, re-segmentation).
        removed, inserted: per image, the slot removed / the donor slot inserted (-1: none).
    """

    real: torch.Tensor
    slots: torch.Tensor
    segmentation: torch.Tensor
    background: torch.Tensor
    objects: list[list[int]]
    own: torch.Tensor
    own_segmentation: torch.Tensor
    edited: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    removed: list[int] = field(default_factory=list)
    inserted: list[int] = field(default_factory=list)

    @property
    def donor(self) -> list[int]:
        return [(i + 1) % len(self.real) for i in range(len(self.real))]


def _encode_all(model, real: torch.Tensor, p: GenerationProtocol) -> tuple[torch.Tensor, torch.Tensor]:
    slots, segmentation = [], []
    for i in range(0, len(real), p.batch_size):
        batch = list(range(i, min(i + p.batch_size, len(real))))
        encoding = encode_images(model, real[batch], p.seed, batch)
        slots.append(encoding.slots.float())
        segmentation.append(attention_to_segmentation(encoding.attn, tuple(real.shape[-2:])).cpu())
    return torch.cat(slots), torch.cat(segmentation)


def _resegment(model, images: torch.Tensor, p: GenerationProtocol) -> torch.Tensor:
    return torch.cat([
        segment_images(model, images[i : i + p.batch_size], p.seed, range(i, min(i + p.batch_size, len(images))))
        for i in range(0, len(images), p.batch_size)
    ])  # fmt: skip


def edit_scenes(
    model, real: torch.Tensor, protocol: GenerationProtocol, decode: SlotDecoder, progress: bool = False
) -> EditedScenes:
    """Encode ``real`` ``(N, 3, R, R)``, decode its own slots and the three edits of the module
    docstring (same sampler noise per image), and re-segment every decoded image."""
    p, device = protocol, model.device
    indices = list(range(len(real)))
    num_slots = model.slot_attention.config.num_slots
    slots, segmentation = _encode_all(model, real, p)
    background = background_slot(segmentation, num_slots)
    objects = object_slots(segmentation, num_slots, MIN_OBJECT_PIXELS, background)
    bar = tqdm(total=4, desc="edits", disable=not progress)
    own = _batched(decode, slots, image_generators(p.seed, indices, device), p.batch_size)
    bar.update()
    scenes = EditedScenes(real, slots, segmentation, background, objects, own, _resegment(model, own, p))
    donor = torch.tensor(scenes.donor)
    scenes.removed = [o[0] if o else -1 for o in objects]
    scenes.inserted = [objects[d][0] if objects[d] else -1 for d in scenes.donor]
    edits = {
        "removal": remove_slot(slots, torch.tensor([max(k, 0) for k in scenes.removed])),
        "insertion": insert_slot(slots, slots[donor, torch.tensor([max(k, 0) for k in scenes.inserted])]),
        "background": replace_slot(slots, background, slots[donor, background[donor]]),
    }
    for name, edited_slots in edits.items():
        images = _batched(decode, edited_slots, image_generators(p.seed, indices, device), p.batch_size)
        scenes.edited[name] = (images, _resegment(model, images, p))
        bar.update()
    bar.close()
    return scenes


def _mean(values: list[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def _fraction(rows: list[dict[str, Any]], test) -> float | None:
    return _mean([float(test(r)) for r in rows])


def score_edits(scenes: EditedScenes, num_slots: int) -> dict[str, Any]:
    """The edit measures of the module docstring, as the ``"edits"`` record of ``results.json``."""
    s = scenes
    editable = [i for i, (k, d) in enumerate(zip(s.removed, s.inserted, strict=True)) if k >= 0 and d >= 0]
    removal, insertion, swap = [], [], []
    for i in editable:
        seg, ref, donor = s.segmentation[i], s.own_segmentation[i], s.donor[i]
        regions = {slot: seg == slot for slot in s.objects[i]}

        images, seg_edit = s.edited["removal"][0][i], s.edited["removal"][1][i]
        k = s.removed[i]
        edit_background = background_slot(seg_edit[None], num_slots)[0]
        to_background = (seg_edit[regions[k]] == edit_background).float().mean().item()
        keep, drop = _keeps([r for slot, r in regions.items() if slot != k], ref, seg_edit)
        removal.append({"to_background": to_background, "keeps": keep, "worst_drop": drop})

        donor_region = s.segmentation[donor] == s.inserted[i]
        images, seg_edit = s.edited["insertion"][0][i], s.edited["insertion"][1][i]
        iou = best_iou(donor_region, seg_edit, exclude=int(background_slot(seg_edit[None], num_slots)[0]))
        donor_pixels = s.real[donor][:, donor_region]
        clear = [r for r in regions.values() if (r & donor_region).sum() < 0.1 * r.sum()]
        keep, drop = _keeps(clear, ref, seg_edit)
        insertion.append({
            "iou": iou, "keeps": keep, "worst_drop": drop,
            "error_to_donor": (images[:, donor_region] - donor_pixels).abs().mean().item(),
            "error_before": (s.own[i][:, donor_region] - donor_pixels).abs().mean().item(),
        })  # fmt: skip

        images, seg_edit = s.edited["background"][0][i], s.edited["background"][1][i]
        shared = (seg == s.background[i]) & (s.segmentation[donor] == s.background[donor])
        keep, drop = _keeps(list(regions.values()), ref, seg_edit)
        if shared.any():
            to_donor = (images[:, shared] - s.real[donor][:, shared]).abs().mean().item()
            to_self = (images[:, shared] - s.real[i][:, shared]).abs().mean().item()
            swap.append({"error_to_donor": to_donor, "error_to_original": to_self, "keeps": keep, "worst_drop": drop})

    majority = lambda r: r["to_background"] >= REGION_MAJORITY  # noqa: E731
    return {
        "num_scenes": len(editable),
        "skipped_no_object": len(s.real) - len(editable),
        "removal": {
            "success": _fraction(removal, majority),
            "others_keep": _fraction(removal, lambda r: r["keeps"]),
            "success_and_keep": _fraction(removal, lambda r: majority(r) and r["keeps"]),
            "mean_region_to_background": _mean([r["to_background"] for r in removal]),
            "mean_worst_drop": _mean([r["worst_drop"] for r in removal]),
        },
        "insertion": {
            "success": _fraction(insertion, lambda r: r["iou"] >= INSERT_IOU),
            "others_keep": _fraction(insertion, lambda r: r["keeps"]),
            "mean_iou": _mean([r["iou"] for r in insertion]),
            "mean_error_to_donor": _mean([r["error_to_donor"] for r in insertion]),
            "mean_error_to_donor_before": _mean([r["error_before"] for r in insertion]),
        },
        "background": {
            "num_scenes": len(swap),
            "success": _fraction(swap, lambda r: r["error_to_donor"] < r["error_to_original"]),
            "others_keep": _fraction(swap, lambda r: r["keeps"]),
            "mean_error_to_donor": _mean([r["error_to_donor"] for r in swap]),
            "mean_error_to_original": _mean([r["error_to_original"] for r in swap]),
        },
        "rules": {"region_majority": REGION_MAJORITY, "insert_iou": INSERT_IOU, "keep_tolerance": KEEP_TOLERANCE,
                  "min_object_pixels": MIN_OBJECT_PIXELS},
    }  # fmt: skip


def frechet_distances(
    real: torch.Tensor, generated: dict[str, torch.Tensor], extractor, batch_size: int, kid: bool = False
) -> dict[str, float]:
    """Frechet distance (and with ``kid`` the KID, as ``kid_<name>``) of each ``generated`` set to
    ``real``, over ``extractor``'s features; images ``(N, 3, R, R)`` in ``[-1, 1]``. An
    :class:`~lsd.metrics.InceptionFeatureExtractor` is given ``[0, 1]`` images, as it expects."""
    from lsd.metrics.inception import InceptionFeatureExtractor

    to_unit = (lambda x: (x + 1) / 2) if isinstance(extractor, InceptionFeatureExtractor) else (lambda x: x)
    reference = image_features(to_unit(real), extractor, batch_size)
    out = {}
    for name, images in generated.items():
        features = image_features(to_unit(images), extractor, batch_size)
        out[name] = fid_from_features(features, reference)
        if kid:
            out[f"kid_{name}"] = kid_from_features(features, reference)
    return out


def fid_record(real: torch.Tensor, generated: dict[str, torch.Tensor], inception, batch_size: int) -> dict[str, Any]:
    """The ``"fid"`` record: FID and KID of each ``generated`` set to ``real`` over Inception pool3."""
    values = frechet_distances(real, generated, inception, batch_size, kid=True)
    return {**values, "features": INCEPTION_FEATURES_NAME, "num_images": int(real.shape[0]),
            "ordered_own_composed_shuffled": values["own_slots"] < values["composed"] < values["shuffled"]}  # fmt: skip


#: How results name the standard network's features.
INCEPTION_FEATURES_NAME = "inception-v3 pool3 (TF 2015-12-05 FID network)"


def protocol_record(protocol: GenerationProtocol) -> dict[str, Any]:
    """The pinned settings as written to ``results.json``."""
    return {
        "num_images": protocol.num_images, "sampler": protocol.sampler,
        "num_inference_steps": protocol.num_inference_steps, "seed": protocol.seed, "guidance_scale": 1.0,
        "seeds": "image i: slot noise slot_noise(seed, i), sampler noise SeedSequence((seed, i, 1)); "
                 "compose and shuffle: torch.Generator().manual_seed(seed)",
    }  # fmt: skip


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
    :class:`~lsd.metrics.InceptionFeatureExtractor` for the ``"fid"`` record (else it is ``None``);
    the fallback-feature ``"distances"`` are always there.

    Returns the ``results.json`` record (plain floats, ints, bools and strings), plus ``"images"``:
    ``(N, 3, R, R)`` tensors in ``[-1, 1]`` (real, own_slots, composed, shuffled, edit_removal,
    edit_insertion, edit_background) for figures, to pop before writing JSON."""
    start = time.perf_counter()
    p = protocol
    if p.num_images > len(dataset):
        raise ValueError(f"`num_images` {p.num_images} is more than the dataset's {len(dataset)} images")
    if decode is None:
        decode = slot_decoder(model, p.num_inference_steps, p.sampler)
    indices = list(range(p.num_images))
    real = torch.stack([dataset[i]["pixel_values"] for i in indices])
    scenes = edit_scenes(model, real, p, decode, progress)
    generators = lambda: image_generators(p.seed, indices, model.device)  # noqa: E731
    composed_slots = library.compose(p.num_images, torch.Generator().manual_seed(p.seed)).to(scenes.slots)
    bar = tqdm(total=3, desc="compositions, shuffled slots, distances", disable=not progress)
    composed = _batched(decode, composed_slots, generators(), p.batch_size)
    bar.update()
    shuffled_slots = shuffle_slots(scenes.slots, torch.Generator().manual_seed(p.seed))
    shuffled = _batched(decode, shuffled_slots, generators(), p.batch_size)
    bar.update()

    generated = {"own_slots": scenes.own, "composed": composed, "shuffled": shuffled}
    distances = frechet_distances(real, generated, FallbackFeatures(), p.batch_size)
    bar.update()
    bar.close()
    return {
        "protocol": protocol_record(p),
        "reconstruction": {
            "psnr_db": float(psnr(scenes.own, real).mean()),
            "neighbour_difference": float(neighbour_difference(scenes.own).mean()),
            "neighbour_difference_real": float(neighbour_difference(real).mean()),
        },
        "distances": {
            **distances,
            "features": FALLBACK_FEATURES_NAME,
            "comparable_with_paper_fid": False,
            "ordered_own_composed_shuffled": distances["own_slots"] < distances["composed"] < distances["shuffled"],
        },
        "fid": None if inception is None else fid_record(real, generated, inception, p.batch_size),
        "concept_library": {
            "num_concepts": library.num_concepts, "num_background_concepts": library.num_background_concepts,
            "num_slots": library.num_slots, **{k: v for k, v in library.meta.items() if k in ("num_images", "seed")},
        },  # fmt: skip
        "edits": score_edits(scenes, model.slot_attention.config.num_slots),
        "seconds": time.perf_counter() - start,
        "images": {"real": real, "own_slots": scenes.own, "composed": composed, "shuffled": shuffled,
                   **{f"edit_{k}": v[0] for k, v in scenes.edited.items()}},
    }  # fmt: skip
