"""``segmentation_scores`` throughput (FG-ARI, mBO, mIoU of a batch) at 256x256, 24 slots, about
20 ground-truth objects, batch 32 (was ``tests/metrics/throughput.py``).

The maps are blocky (16x16-pixel ground-truth cells over 21 ids, 8x8-pixel slot cells over 24
slots), so every image has about 20 objects and dense, overlapping contingency tables. One group
per (matching, ties) variant; providers are devices: ``cpu`` (reference) and ``cuda`` (when a GPU
is visible; the metrics run on their inputs' device).

FLOPs: none that ``FlopCounterMode`` counts (no matmuls). Bytes: the label maps read once,
``B*H*W * (1 + 8)`` (uint8 ground truth, int64 predictions).
"""

from __future__ import annotations

import pytest
import torch

from lsd.metrics import segmentation_scores

from ._perf import Work, count_flops, measure, sync

PROVIDERS = ("cpu", "cuda")
REFERENCE = "cpu"
VARIANTS = (("cosine", "canonical"), ("cosine", "release"), ("iou", "canonical"))
BATCH, SIDE, NUM_SLOTS, NUM_OBJECTS = 32, 256, 24, 20


def blocky(batch: int, side: int, cell: int, num_ids: int, gen: torch.Generator) -> torch.Tensor:
    """``(batch, side, side)`` int64 maps of ``cell``-pixel squares with ids in ``[0, num_ids)``."""
    small = torch.randint(0, num_ids, (batch, side // cell, side // cell), generator=gen)
    return small.repeat_interleave(cell, dim=1).repeat_interleave(cell, dim=2)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("variant", VARIANTS, ids=["-".join(v) for v in VARIANTS])
def test_segmentation_scores(benchmark, variant: tuple[str, str], provider: str) -> None:
    """Ground truth ``(B, H, W)`` uint8 and predicted slot ids ``(B, H, W)`` -> five floats."""
    if provider == "cuda" and not torch.cuda.is_available():
        pytest.skip("provider cuda needs a CUDA GPU; none is visible")
    device = torch.device(provider)
    matching, ties = variant
    gen = torch.Generator().manual_seed(0)
    true = blocky(BATCH, SIDE, 16, NUM_OBJECTS + 1, gen).to(torch.uint8)
    pred = blocky(BATCH, SIDE, 8, NUM_SLOTS, gen)
    expected = segmentation_scores(true, pred, num_slots=NUM_SLOTS, matching=matching, ties=ties)
    true, pred = true.to(device), pred.to(device)

    def call() -> dict[str, float]:
        scores = segmentation_scores(true, pred, num_slots=NUM_SLOTS, matching=matching, ties=ties)
        sync(device)
        return scores

    got = call()
    assert got == pytest.approx(expected, rel=1e-5), f"{provider} scores differ from the CPU reference"
    assert 0.0 < expected["fg_ari"] < 1.0  # dense, overlapping tables: neither trivial extreme

    measure(
        benchmark,
        call,
        group=f"segmentation_scores {matching} {ties}",
        provider=provider,
        reference=REFERENCE,
        device=device,
        work=Work(
            flops=count_flops(call),
            bytes=true.nbytes + pred.nbytes,
            bytes_formula="B*H*W*(1+8): uint8 ground truth and int64 predictions read once",
            items=BATCH,
            shapes={"true": [BATCH, SIDE, SIDE], "pred": [BATCH, SIDE, SIDE]},
            dtype="uint8/int64",
            extra={"matching": matching, "ties": ties, "num_slots": NUM_SLOTS, "num_objects": NUM_OBJECTS},
        ),
    )
