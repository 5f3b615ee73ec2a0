"""Property prediction from slots: linear / MLP probes on matched (GT object, slot) pairs.

The protocol of the LSD release (docs/metrics.md, "Property prediction from slots"):

1. For every matched (GT object, slot) pair of the Hungarian matching
   (:func:`lsd.metrics.match_slots`), collect the slot vector and the object's labels
   (:func:`collect_matched`).
2. Shuffle with a fixed seed (``torch.randperm`` from a generator seeded with ``seed``: the same
   permutation as the release's ``torch.manual_seed(seed); torch.randperm(M)``); the first
   ``int(0.83 * M)`` samples train, the rest test (:func:`probe_split`).
3. Discrete labels: ``nn.Linear(D, num_classes)`` with cross-entropy; ``num_classes = max label + 1``
   over the collected set; report test accuracy.
   Continuous labels: ``Linear(D, D) -> ReLU -> Linear(D, dim)`` with MSE; each label dimension
   min/max-normalised to ``[-1, 1]`` over the collected set (the release; ``normalize=None`` for
   raw labels, as the paper's numbers were computed); report test MSE.
4. All probes train together, full batch, AdamW with default hyper-parameters (lr 1e-3), 4000
   steps, on ``sum of per-probe losses / num_train`` (the release divides by the train size; the
   probes share no parameters, so this equals training each alone on its loss / num_train).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

__all__ = ["ProbeKind", "collect_matched", "probe_split", "normalize_minmax", "fit_property_probes"]

ProbeKind = Literal["discrete", "continuous"]

DEFAULT_SEED = 666  # the release's evaluation seed
DEFAULT_TRAIN_FRACTION = 0.83
DEFAULT_STEPS = 4000


def collect_matched(
    slots: torch.Tensor,
    pairs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    labels: Mapping[str, torch.Tensor],
    *,
    label_offset: int = 1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Gather the slot vector and labels of every matched pair of a batch.

    Args:
        slots: ``(B, S, D)`` slot vectors (the model's output slots).
        pairs: per image ``(gt_ids, slot_ids)`` from :func:`lsd.metrics.match_slots`.
        labels: name -> ``(B, L, ...)`` per-object labels; object ``gt_id`` reads row
            ``gt_id - label_offset``.
        label_offset: 1 when label row ``j`` is segment id ``j + 1`` (MOVi, CLEVRTex); 0 when the
            label arrays include the background at row 0 (CLEVR with masks).

    Returns:
        ``(M, D)`` slots and name -> ``(M, ...)`` labels, in image order then GT-id order.
    """
    if slots.dim() != 3:
        raise ValueError(f"`slots` must have shape (B, S, D), got {tuple(slots.shape)}")
    if len(pairs) != slots.shape[0]:
        raise ValueError(f"`pairs` has {len(pairs)} images but `slots` has {slots.shape[0]}")
    device = slots.device
    empty = [torch.zeros(0, dtype=torch.int64)]  # keeps torch.cat defined for an empty batch
    image = torch.cat(empty + [torch.full((len(gt),), b, dtype=torch.int64) for b, (gt, _) in enumerate(pairs)])
    gt_ids = torch.cat(empty + [torch.as_tensor(gt, dtype=torch.int64).reshape(-1).cpu() for gt, _ in pairs])
    slot_ids = torch.cat(empty + [torch.as_tensor(s, dtype=torch.int64).reshape(-1).cpu() for _, s in pairs])
    image, gt_ids, slot_ids = image.to(device), gt_ids.to(device), slot_ids.to(device)
    rows = gt_ids - label_offset
    out: dict[str, torch.Tensor] = {}
    for name, value in labels.items():
        value = torch.as_tensor(value)
        if value.dim() < 2 or value.shape[0] != slots.shape[0]:
            raise ValueError(f"labels[{name!r}] must have shape (B, L, ...) with B = {slots.shape[0]}")
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= value.shape[1]):
            raise ValueError(
                f"labels[{name!r}] has {value.shape[1]} rows per image; GT ids {int(gt_ids.min())}.."
                f"{int(gt_ids.max())} with label_offset={label_offset} fall outside"
            )
        out[name] = value.to(device)[image, rows]
    return slots[image, slot_ids], out


def probe_split(
    num_samples: int, *, seed: int = DEFAULT_SEED, train_fraction: float = DEFAULT_TRAIN_FRACTION
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic shuffle-and-split: ``(train_idx, test_idx)`` int64, train first ``int(f * M)``."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"`train_fraction` must be in (0, 1), got {train_fraction}")
    perm = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))
    num_train = int(num_samples * train_fraction)
    return perm[:num_train], perm[num_train:]


def normalize_minmax(values: torch.Tensor) -> torch.Tensor:
    """``(M, d)`` -> each column mapped linearly to ``[-1, 1]`` by its min/max.

    A constant column maps to 0 (the release would divide by zero and produce NaN).
    """
    low = values.amin(dim=0, keepdim=True)
    span = values.amax(dim=0, keepdim=True) - low
    scaled = (values - low) / torch.where(span > 0, span, torch.ones_like(span)) * 2 - 1
    return torch.where(span > 0, scaled, torch.zeros_like(scaled))


def _prepare_labels(
    labels: Mapping[str, torch.Tensor], kinds: Mapping[str, ProbeKind], num_samples: int, normalize: str | None
) -> dict[str, torch.Tensor]:
    if set(labels) != set(kinds):
        raise ValueError(
            f"`labels` and `kinds` must name the same properties, got {sorted(labels)} and {sorted(kinds)}"
        )
    out = {}
    for name, value in labels.items():
        value = torch.as_tensor(value)
        if value.shape[0] != num_samples:
            raise ValueError(f"labels[{name!r}] has {value.shape[0]} rows but `slots` has {num_samples}")
        if kinds[name] == "discrete":
            if value.dim() > 2 or (value.dim() == 2 and value.shape[1] != 1):
                raise ValueError(f"discrete labels[{name!r}] must have shape (M,) or (M, 1), got {tuple(value.shape)}")
            if value.dtype.is_floating_point and not torch.equal(value, value.round()):
                raise ValueError(f"discrete labels[{name!r}] must be integer class ids")
            value = value.reshape(-1).to(torch.int64)
            if value.numel() and int(value.min()) < 0:
                raise ValueError(f"discrete labels[{name!r}] must be >= 0")
        elif kinds[name] == "continuous":
            value = value.reshape(num_samples, -1).to(torch.float32)
            if normalize == "minmax":
                value = normalize_minmax(value)
        else:
            raise ValueError(f"kinds[{name!r}] must be 'discrete' or 'continuous', got {kinds[name]!r}")
        out[name] = value
    return out


def fit_property_probes(
    slots: torch.Tensor,
    labels: Mapping[str, torch.Tensor],
    kinds: Mapping[str, ProbeKind],
    *,
    seed: int = DEFAULT_SEED,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    steps: int = DEFAULT_STEPS,
    normalize: Literal["minmax"] | None = "minmax",
    lr: float = 1e-3,
    progress: bool = False,
) -> dict[str, float]:
    """Train one probe per property on the first ``train_fraction`` of the shuffled pairs.

    Args:
        slots: ``(M, D)`` slot vectors of matched pairs (trained in float32 on their device).
        labels: name -> ``(M,)`` / ``(M, 1)`` class ids (discrete) or ``(M, ...)`` values
            (continuous; flattened to ``(M, dim)``).
        kinds: name -> ``"discrete"`` or ``"continuous"``.
        seed: seeds the shuffle and the probes' initialisation (the global RNG is untouched).
        train_fraction: share of the shuffled pairs used for training (release: 0.83).
        steps: full-batch AdamW steps (release: 4000).
        normalize: ``"minmax"`` (release) or ``None`` for continuous labels.
        lr: AdamW learning rate (release: torch's default, 1e-3).
        progress: a tqdm bar over the steps.

    Returns:
        name -> test accuracy (discrete, in [0, 1]) or test MSE (continuous, normalised units).
    """
    if slots.dim() != 2:
        raise ValueError(f"`slots` must have shape (M, D), got {tuple(slots.shape)}")
    if normalize not in ("minmax", None):
        raise ValueError(f"`normalize` must be 'minmax' or None, got {normalize!r}")
    if not labels:
        raise ValueError("`labels` is empty: nothing to probe")
    num_samples, dim = slots.shape
    targets = _prepare_labels(labels, kinds, num_samples, normalize)
    train_idx, test_idx = probe_split(num_samples, seed=seed, train_fraction=train_fraction)
    if train_idx.numel() == 0 or test_idx.numel() == 0:
        raise ValueError(f"{num_samples} samples leave an empty train or test split at train_fraction={train_fraction}")

    device = slots.device
    x = slots.detach().to(torch.float32)
    train_idx, test_idx = train_idx.to(device), test_idx.to(device)
    names = list(targets)  # property names may contain any character: index the probes by position
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probes = nn.ModuleList(
            nn.Linear(dim, int(targets[name].max()) + 1)
            if kinds[name] == "discrete"
            else nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, targets[name].shape[1]))
            for name in names
        ).to(device)
    y_train = [targets[name].to(device)[train_idx] for name in names]
    optimizer = torch.optim.AdamW(probes.parameters(), lr=lr)
    x_train = x[train_idx]
    with torch.enable_grad():
        for _ in tqdm(range(steps), desc="property probes", unit="step", disable=not progress, leave=False):
            optimizer.zero_grad(set_to_none=True)
            loss = sum(
                _loss(kinds[name], probe(x_train), y) for name, probe, y in zip(names, probes, y_train, strict=True)
            )
            (loss / train_idx.numel()).backward()  # the release divides the summed losses by the train size
            optimizer.step()

    x_test = x[test_idx]
    results = {}
    with torch.no_grad():
        for name, probe in zip(names, probes, strict=True):
            out, y = probe(x_test), targets[name].to(device)[test_idx]
            if kinds[name] == "discrete":
                results[name] = float((out.argmax(dim=1) == y).to(torch.float64).mean())
            else:
                results[name] = float(F.mse_loss(out, y))
    return results


def _loss(kind: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, target) if kind == "discrete" else F.mse_loss(output, target)
