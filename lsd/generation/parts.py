"""Face-part swapping between two faces, scored automatically (FFHQ; see docs/generation.md).

The paper shows faces whose matched part slots were exchanged; it publishes no code and no number.
Our protocol (docs/generation.md, "Face-part swapping"):

- Pairs: items ``(2i, 2i + 1)`` for ``i < num_pairs``; ``a = 2i`` is edited, ``b = 2i + 1`` is the donor.
- Each image is encoded with :func:`~lsd.generation.decoding.encode_images` (slot noise of
  ``(seed, index)``) and segmented by the release's argmax rule at the image size. The slot of part
  ``p`` is the slot whose hard mask has the highest IoU with the GT part mask (:func:`part_slots`).
- For every part ``p`` present in both faces: ``a``'s ``p``-slot and ``b``'s ``p``-slot are exchanged
  (:func:`~lsd.generation.editing.swap_slots`) and ``a'`` is decoded with ``a``'s sampler noise,
  the same noise as ``a``'s reconstruction ``rec(a)`` from its unedited slots.
- Region ``R_p`` = GT part ``p`` of ``a`` OR of ``b``. *Success*: ``a'`` is closer (mean absolute
  error over ``R_p``) to ``b`` than to ``rec(a)``. *Kept*: over the pixels outside ``R_p`` dilated by
  ``max(1, R // 32)`` pixels, ``a'`` is closer to ``rec(a)`` than to ``b``. Both comparisons are
  strict, so leaving ``rec(a)`` unchanged scores success 0 and kept 1, and pasting ``b``'s pixels
  into ``R_p`` of ``rec(a)`` scores success 1 and kept 1 (the two controls of the record).
  *Changed*: ``a'`` differs from ``rec(a)`` over ``R_p`` by more than :data:`CHANGE_TOLERANCE`
  (one 8-bit level): a swap that changed nothing is kept trivially, and ``changed_rate`` says so.

Shapes: images ``(B, 3, R, R)`` in ``[-1, 1]``; ``segmentation`` ``(B, R, R)`` int64 slot ids;
part masks ``(B, R, R)`` int64 GT part ids (0 = background, ``1..P`` the parts of ``part_names``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lsd.generation.decoding import SlotDecoder, encode_images, image_generators
from lsd.generation.editing import swap_slots
from lsd.models.lsd import attention_to_segmentation

__all__ = ["CHANGE_TOLERANCE", "keep_margin", "part_slots", "part_swap_scores", "plot_part_swaps", "score_part_edit"]

#: The keep region leaves out ``R_p`` dilated by ``max(1, R // KEEP_MARGIN_DIVISOR)`` pixels.
KEEP_MARGIN_DIVISOR = 32

#: Mean absolute error over the part's region (pixels in [-1, 1]) above which a swap changed the
#: image: one 8-bit level, 2 / 255. Below it the decoded PNG is the unswapped reconstruction.
CHANGE_TOLERANCE = 2 / 255


def keep_margin(resolution: int) -> int:
    """Pixels by which ``R_p`` is dilated before the "kept" comparison: ``max(1, R // 32)``."""
    return max(1, resolution // KEEP_MARGIN_DIVISOR)


def part_slots(segmentation: torch.Tensor, part_masks: torch.Tensor, num_slots: int, num_parts: int) -> torch.Tensor:
    """The slot of each GT part, ``(B, P)`` int64.

    ``segmentation`` ``(B, H, W)`` slot ids in ``[0, num_slots)``; ``part_masks`` ``(B, H, W)`` GT
    part ids in ``[0, num_parts]`` (0 = background, not a part). Entry ``[b, p - 1]`` is the slot
    whose hard mask (``segmentation[b] == s``) has the highest IoU with part ``p`` of image ``b``
    (ties: the lower slot id), or -1 when part ``p`` is absent from image ``b``.
    """
    if segmentation.ndim != 3 or segmentation.shape != part_masks.shape:
        raise ValueError(
            "`segmentation` and `part_masks` must both be (B, H, W) of the same size, got "
            f"{tuple(segmentation.shape)} and {tuple(part_masks.shape)}"
        )
    seg, parts = segmentation.long().flatten(1).cpu(), part_masks.long().flatten(1).cpu()
    if seg.numel() and (seg.min() < 0 or seg.max() >= num_slots):
        raise ValueError(f"`segmentation` has slot ids outside [0, {num_slots})")
    if parts.numel() and (parts.min() < 0 or parts.max() > num_parts):
        raise ValueError(f"`part_masks` has part ids outside [0, {num_parts}]")
    batch = seg.shape[0]
    # joint[b, s, q]: pixels of image b in slot s and GT id q (q = 0 the background)
    joint = torch.zeros(batch, num_slots * (num_parts + 1), dtype=torch.long)
    joint.scatter_add_(1, seg * (num_parts + 1) + parts, torch.ones_like(seg))
    joint = joint.reshape(batch, num_slots, num_parts + 1)[:, :, 1:]  # (B, S, P)
    slot_area = joint.new_zeros(batch, num_slots).scatter_add_(1, seg, torch.ones_like(seg))  # (B, S)
    part_area = joint.sum(1)  # (B, P)
    union = slot_area.unsqueeze(2) + part_area.unsqueeze(1) - joint
    iou = joint.double() / union.clamp_min(1).double()
    best = iou.argmax(dim=1)  # the first maximum: the lower slot id
    return torch.where(part_area > 0, best, torch.full_like(best, -1))


def _mae(x: torch.Tensor, y: torch.Tensor, region: torch.Tensor) -> float:
    """Mean absolute error of ``(3, H, W)`` images over a boolean ``(H, W)`` region."""
    return (x[:, region] - y[:, region]).abs().mean().item()


def score_part_edit(
    edited: torch.Tensor, original: torch.Tensor, donor: torch.Tensor, region: torch.Tensor, margin: int
) -> dict[str, Any]:
    """Score one part swap (the rules of the module docstring).

    ``edited`` ``a'``, ``original`` ``rec(a)`` and ``donor`` ``b``: ``(3, R, R)`` in ``[-1, 1]``;
    ``region`` ``R_p`` boolean ``(R, R)`` (not empty). Returns ``success`` / ``kept`` (``kept`` is
    None when nothing lies outside the dilated region) and the errors behind them.
    """
    if not region.any():
        raise ValueError("`region` is empty: a swapped part must cover at least one pixel")
    dilated = F.max_pool2d(region[None, None].float(), 2 * margin + 1, stride=1, padding=margin)[0, 0] > 0
    outside = ~dilated
    to_donor, to_original = _mae(edited, donor, region), _mae(edited, original, region)
    record: dict[str, Any] = {
        "mae_to_donor": to_donor,
        "mae_to_original": to_original,
        "success": to_donor < to_original,
        "changed": to_original > CHANGE_TOLERANCE,
        "kept": None,
        "rest_mae_to_original": None,
        "rest_mae_to_donor": None,
    }
    if outside.any():
        rest_original, rest_donor = _mae(edited, original, outside), _mae(edited, donor, outside)
        record.update(kept=rest_original < rest_donor, rest_mae_to_original=rest_original, rest_mae_to_donor=rest_donor)
    return record


def _load(dataset, count: int, num_parts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` items: pixels ``(count, 3, R, R)`` and GT part ids ``(count, R, R)``
    (nearest-resized to ``R``), checked before any compute."""
    pixels, parts = [], []
    for i in range(count):
        item = dataset[i]
        for key in ("pixel_values", "masks"):
            if key not in item:
                raise ValueError(f"dataset item {i}: no `{key}` field (part swapping needs labelled faces)")
        image, masks = item["pixel_values"], torch.as_tensor(item["masks"])
        if image.ndim != 3 or image.shape[0] != 3 or image.shape[1] != image.shape[2]:
            raise ValueError(f"dataset item {i}: `pixel_values` must be (3, R, R), got {tuple(image.shape)}")
        if pixels and image.shape != pixels[0].shape:
            raise ValueError(f"dataset item {i}: `pixel_values` {tuple(image.shape)} differs from item 0's")
        if masks.ndim != 2 or masks.is_floating_point():
            raise ValueError(f"dataset item {i}: `masks` must be (M, M) integer part ids, got {masks.dtype} {tuple(masks.shape)}")  # fmt: skip
        if masks.min() < 0 or masks.max() > num_parts:
            raise ValueError(
                f"dataset item {i}: `masks` has part ids outside [0, {num_parts}] "
                f"(found {int(masks.min())}..{int(masks.max())}; `part_names` names {num_parts} parts)"
            )
        side = image.shape[-1]
        if tuple(masks.shape) != (side, side):
            masks = F.interpolate(masks[None, None].float(), size=(side, side), mode="nearest")[0, 0]
        pixels.append(image.float())
        parts.append(masks.long())
    return torch.stack(pixels), torch.stack(parts)


def _decode(
    decode: SlotDecoder, slots: torch.Tensor, generators: list[torch.Generator], size: int, bar
) -> torch.Tensor:
    out = []
    for i in range(0, len(slots), size):
        out.append(decode(slots[i : i + size], generators[i : i + size]).float().cpu())
        bar.update(len(out[-1]))
    return torch.cat(out) if out else slots.new_zeros(0)


def _mean(values: list[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    kept = [float(r["kept"]) for r in rows if r["kept"] is not None]
    return {
        "pairs": len(rows),
        "success_rate": _mean([float(r["success"]) for r in rows]),
        "changed_rate": _mean([float(r["changed"]) for r in rows]),
        "kept_rate": _mean(kept),
        "mae_to_donor": _mean([r["mae_to_donor"] for r in rows]),
        "mae_to_original": _mean([r["mae_to_original"] for r in rows]),
    }


def part_swap_scores(
    model,
    dataset,
    *,
    num_pairs: int,
    seed: int,
    decode: SlotDecoder,
    part_names: Sequence[str],
    batch_size: int = 16,
    progress: bool = False,
) -> dict[str, Any]:
    """Swap matched face-part slots between the faces of ``num_pairs`` pairs and score each swap.

    ``dataset`` items are :class:`~lsd.data.sample.LabelledSample`: ``pixel_values`` ``(3, R, R)``
    in ``[-1, 1]`` and ``masks`` ``(M, M)`` int64 GT part ids (0 = background, ``p`` = ``part_names[p - 1]``),
    nearest-resized to ``R`` when ``M != R``. ``decode`` is a :data:`~lsd.generation.decoding.SlotDecoder`
    (e.g. :func:`~lsd.generation.decoding.slot_decoder`); image ``i``'s sampler noise comes from
    ``image_generators(seed, [i])``.

    Returns the ``results.json`` record: ``parts`` (per part name: ``pairs``, ``success_rate``,
    ``kept_rate``, ``mae_to_donor``, ``mae_to_original``; rates None for a part with no pair),
    ``mean`` (the same averaged over the parts that have pairs), the ``no_swap`` / ``copy_donor_part``
    controls, ``protocol``, plus ``"images"`` (pop it before writing JSON): ``a``, ``b``,
    ``reconstruction`` (``rec(a)``), ``swapped`` (``a'``), each ``(n, 3, R, R)`` in ``[-1, 1]``, for
    the ``n`` pairs sharing a part, ``part`` (the part shown per pair: the shared part with the
    largest ``R_p``) and ``pair`` (their pair numbers).
    """
    start = time.perf_counter()
    names = list(part_names)
    if not names or len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"`part_names` must be distinct non-empty strings, got {part_names!r}")
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int) or num_pairs < 1:
        raise ValueError(f"`num_pairs` must be a positive int, got {num_pairs!r}")
    if 2 * num_pairs > len(dataset):
        raise ValueError(f"`num_pairs` {num_pairs} needs {2 * num_pairs} images, the dataset has {len(dataset)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int, got {batch_size!r}")
    num_parts, count = len(names), 2 * num_pairs
    real, parts = _load(dataset, count, num_parts)
    if real.min() < -1 or real.max() > 1:
        raise ValueError("dataset `pixel_values` must lie in [-1, 1]")
    side, margin = real.shape[-1], keep_margin(real.shape[-1])
    num_slots = model.slot_attention.config.num_slots

    slots, segmentation = [], []
    for i in range(0, count, batch_size):
        batch = list(range(i, min(i + batch_size, count)))
        encoding = encode_images(model, real[batch], seed, batch)
        slots.append(encoding.slots.float().cpu())
        segmentation.append(attention_to_segmentation(encoding.attn, (side, side)).cpu())
    slots, segmentation = torch.cat(slots), torch.cat(segmentation)
    chosen = part_slots(segmentation, parts, num_slots, num_parts)  # (2N, P)

    edits = [  # (pair, part id p >= 1) for every part present in both faces
        (i, p) for i in range(num_pairs) for p in range(1, num_parts + 1)
        if chosen[2 * i, p - 1] >= 0 and chosen[2 * i + 1, p - 1] >= 0
    ]  # fmt: skip
    edited_slots = [
        swap_slots(slots[2 * i], slots[2 * i + 1], [(int(chosen[2 * i, p - 1]), int(chosen[2 * i + 1, p - 1]))])[0]
        for i, p in edits
    ]
    originals = list(range(0, count, 2))
    bar = tqdm(total=num_pairs + len(edits), desc="part swaps", unit="image", disable=not progress)
    reconstruction = _decode(
        decode, slots[originals], image_generators(seed, originals, model.device), batch_size, bar
    )  # rec(a) per pair
    swapped = _decode(
        decode,
        torch.stack(edited_slots) if edits else slots[:0],
        image_generators(seed, [2 * i for i, _ in edits], model.device),
        batch_size,
        bar,
    )
    bar.close()

    rows: dict[int, list[dict[str, Any]]] = {p: [] for p in range(1, num_parts + 1)}
    controls: dict[str, list[dict[str, Any]]] = {"no_swap": [], "copy_donor_part": []}
    shown: dict[int, tuple[int, int, int]] = {}  # pair -> (region area, part, edit number)
    for number, (i, p) in enumerate(edits):
        b, rec = real[2 * i + 1], reconstruction[i]
        region = (parts[2 * i] == p) | (parts[2 * i + 1] == p)
        rows[p].append(score_part_edit(swapped[number], rec, b, region, margin))
        controls["no_swap"].append(score_part_edit(rec, rec, b, region, margin))
        controls["copy_donor_part"].append(score_part_edit(torch.where(region, b, rec), rec, b, region, margin))
        area = int(region.sum())
        if i not in shown or area > shown[i][0]:
            shown[i] = (area, p, number)

    per_part = {names[p - 1]: _summary(r) for p, r in rows.items()}
    with_pairs = [s for s in per_part.values() if s["pairs"]]
    mean = {
        key: _mean([s[key] for s in with_pairs if s[key] is not None])
        for key in ("success_rate", "changed_rate", "kept_rate", "mae_to_donor", "mae_to_original")
    }
    pairs_shown = sorted(shown)
    return {
        "protocol": {
            "num_pairs": num_pairs,
            "seed": seed,
            "part_names": names,
            "resolution": side,
            "pairs": "items (2i, 2i + 1): a = 2i edited, b = 2i + 1 the donor",
            "part_slot": "highest IoU of a slot's argmax mask with the GT part mask",
            "success": "MAE(a', b) < MAE(a', rec(a)) over R_p = part p of a OR of b",
            "kept": f"MAE(a', rec(a)) < MAE(a', b) outside R_p dilated by {margin} px",
            "changed": f"MAE(a', rec(a)) > {CHANGE_TOLERANCE:.4f} over R_p (one 8-bit level)",
            "keep_margin_px": margin,
            "seeds": "image i: slot noise slot_noise(seed, i), sampler noise SeedSequence((seed, i, 1))",
        },  # fmt: skip
        "parts": per_part,
        "mean": {"over": "parts with pairs", "parts": len(with_pairs), **mean},
        "swaps": len(edits),
        "pairs_without_shared_part": num_pairs - len(shown),
        "controls": {name: _summary(r) for name, r in controls.items()},
        "seconds": time.perf_counter() - start,
        "images": {
            "a": real[[2 * i for i in pairs_shown]] if pairs_shown else real[:0],
            "b": real[[2 * i + 1 for i in pairs_shown]] if pairs_shown else real[:0],
            "reconstruction": reconstruction[pairs_shown] if pairs_shown else real[:0],
            "swapped": swapped[[shown[i][2] for i in pairs_shown]] if pairs_shown else real[:0],
            "part": [names[shown[i][1] - 1] for i in pairs_shown],
            "pair": pairs_shown,
        },
    }


def plot_part_swaps(images: dict[str, Any], path: str | os.PathLike) -> None:
    """Figure of :func:`part_swap_scores`' ``"images"``: one row per pair (labelled with the part
    swapped), columns face ``a``, donor ``b``, ``rec(a)``, ``a'``."""
    from lsd.figures import plot_image_grid

    keys = ("a", "b", "reconstruction", "swapped")
    if not images.get("part"):
        raise ValueError("`images` holds no pair (no pair shared a part): nothing to draw")
    grid = torch.stack([images[k].float().cpu() for k in keys], dim=1)  # (n, 4, 3, R, R)
    titles = ["face a", "face b (donor)", "a reconstructed", "a with b's part"]
    plot_image_grid(
        grid, path, titles, [f"pair {n}: {part}" for n, part in zip(images["pair"], images["part"], strict=True)]
    )
