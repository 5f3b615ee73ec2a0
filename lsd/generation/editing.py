"""Object-based editing on slots: which slot holds what, and the edits (remove, insert, replace, swap).

Shapes: ``slots`` ``(B, S, D)``; ``attn`` ``(B, heads, N, S)`` (slot attention's last iteration,
softmax over slots); ``segmentation`` ``(B, H, W)`` int64 slot ids.

Rules (ours; the paper shows edits but publishes no code or rule, see docs/generation.md):

- The object of a slot is the set of pixels where that slot wins the argmax of its attention,
  bilinearly resized to the image (the segmentation rule of
  :func:`lsd.models.lsd.attention_to_segmentation`, so edits and evaluation agree).
- The background slot of an image is the slot that wins most pixels on the image's border (the
  outermost ring of pixels of the segmentation); ties go to the lower slot id.
- An object slot is a non-background slot that wins at least ``min_pixels`` pixels.

The edits return new slot tensors; decode them with a :data:`~lsd.generation.decoding.SlotDecoder`.
Removing or inserting changes the slot count (the decoder's cross-attention takes any count), as
the paper's object removal drops the slot from the conditioning.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

__all__ = [
    "background_slot",
    "insert_slot",
    "match_slots_by_mask",
    "object_slots",
    "remove_slot",
    "replace_slot",
    "slot_areas",
    "swap_slots",
]


def _index_vector(index: torch.Tensor | int, batch: int, num_slots: int, name: str) -> torch.Tensor:
    index = torch.as_tensor(index, dtype=torch.long).reshape(-1).cpu()
    if index.numel() == 1:
        index = index.expand(batch)
    if index.shape != (batch,):
        raise ValueError(f"`{name}` must be one slot id or one per image ({batch}), got {tuple(index.shape)}")
    if ((index < 0) | (index >= num_slots)).any():
        raise ValueError(f"`{name}` has slot ids outside [0, {num_slots}): {index.tolist()}")
    return index


def slot_areas(segmentation: torch.Tensor, num_slots: int) -> torch.Tensor:
    """Pixels won by each slot, ``(B, S)`` int64."""
    flat = segmentation.flatten(1)
    areas = torch.zeros(flat.shape[0], num_slots, dtype=torch.long, device=flat.device)
    return areas.scatter_add_(1, flat, torch.ones_like(flat))


def background_slot(segmentation: torch.Tensor, num_slots: int) -> torch.Tensor:
    """The slot winning most border pixels of each image, ``(B,)`` (ties: the lower id)."""
    if segmentation.ndim != 3:
        raise ValueError(f"`segmentation` must have shape (B, H, W), got {tuple(segmentation.shape)}")
    border = torch.cat(
        [segmentation[:, 0, :], segmentation[:, -1, :], segmentation[:, 1:-1, 0], segmentation[:, 1:-1, -1]], dim=1
    )
    return slot_areas(border, num_slots).argmax(dim=1)  # argmax returns the first maximum


def object_slots(
    segmentation: torch.Tensor, num_slots: int, min_pixels: int = 16, background: torch.Tensor | None = None
) -> list[list[int]]:
    """Per image, its object slots (not the background, winning >= ``min_pixels`` pixels), largest first."""
    areas = slot_areas(segmentation, num_slots).cpu()
    background = background_slot(segmentation, num_slots) if background is None else background
    found = []
    for row, bg in zip(areas, background.cpu().tolist(), strict=True):
        ids = [s for s in torch.argsort(row, descending=True, stable=True).tolist() if s != bg and row[s] >= min_pixels]
        found.append(ids)
    return found


def remove_slot(slots: torch.Tensor, index: torch.Tensor | int) -> torch.Tensor:
    """``slots`` without slot ``index[b]`` of each image, ``(B, S - 1, D)``; the others keep their order."""
    batch, num_slots, _ = slots.shape
    index = _index_vector(index, batch, num_slots, "index").to(slots.device)
    keep = torch.arange(num_slots, device=slots.device).unsqueeze(0) != index.unsqueeze(1)
    return slots[keep].reshape(batch, num_slots - 1, slots.shape[2])


def insert_slot(slots: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    """``slots`` ``(B, S, D)`` with ``slot`` ``(B, D)`` (e.g. another image's object slot) appended: ``(B, S + 1, D)``."""
    if slot.shape != (slots.shape[0], slots.shape[2]):
        raise ValueError(f"`slot` must have shape {(slots.shape[0], slots.shape[2])}, got {tuple(slot.shape)}")
    return torch.cat([slots, slot.unsqueeze(1).to(slots)], dim=1)


def replace_slot(slots: torch.Tensor, index: torch.Tensor | int, slot: torch.Tensor) -> torch.Tensor:
    """``slots`` with slot ``index[b]`` replaced by ``slot[b]`` (background replacement: the background
    slot by another image's), ``(B, S, D)``."""
    batch, num_slots, dim = slots.shape
    index = _index_vector(index, batch, num_slots, "index").to(slots.device)
    if slot.shape != (batch, dim):
        raise ValueError(f"`slot` must have shape {(batch, dim)}, got {tuple(slot.shape)}")
    out = slots.clone()
    out[torch.arange(batch, device=slots.device), index] = slot.to(slots)
    return out


def match_slots_by_mask(masks_a: torch.Tensor, masks_b: torch.Tensor) -> list[tuple[int, int]]:
    """Hungarian matching of two images' slots by the IoU of their hard masks.

    ``masks_a`` ``(Sa, H, W)`` and ``masks_b`` ``(Sb, H, W)`` booleans (``segmentation == s``);
    returns ``(slot of a, slot of b)`` pairs maximising the total IoU, pairs with IoU 0 left out
    (face parts on aligned faces: the same part sits at the same place).
    """
    a, b = masks_a.flatten(1).float(), masks_b.flatten(1).float()
    intersection = a @ b.T
    union = a.sum(1, keepdim=True) + b.sum(1).unsqueeze(0) - intersection
    iou = (intersection / union.clamp_min(1)).cpu().numpy()
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if iou[r, c] > 0]


def swap_slots(
    slots_a: torch.Tensor, slots_b: torch.Tensor, pairs: list[tuple[int, int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exchange matched slots between two images' slot sets ``(S, D)``: for each ``(i, j)`` in
    ``pairs``, ``a[i]`` takes ``b[j]`` and ``b[j]`` takes ``a[i]``. Returns new tensors."""
    if slots_a.ndim != 2 or slots_b.ndim != 2 or slots_a.shape[1] != slots_b.shape[1]:
        raise ValueError(
            f"slot sets must be (S, D) with equal D, got {tuple(slots_a.shape)} and {tuple(slots_b.shape)}"
        )
    ia = np.array([i for i, _ in pairs], dtype=np.int64)
    ib = np.array([j for _, j in pairs], dtype=np.int64)
    if len(set(ia.tolist())) != len(ia) or len(set(ib.tolist())) != len(ib):
        raise ValueError(f"`pairs` must use each slot at most once, got {pairs}")
    out_a, out_b = slots_a.clone(), slots_b.clone()
    out_a[torch.from_numpy(ia)] = slots_b[torch.from_numpy(ib)]
    out_b[torch.from_numpy(ib)] = slots_a[torch.from_numpy(ia)]
    return out_a, out_b
