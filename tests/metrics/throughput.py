"""Images/second of ``segmentation_scores`` at 256x256, 24 slots, ~20 GT objects, batch 32.

Not a test (no timing assertions anywhere): ``python tests/metrics/throughput.py [--threads N]``.
The maps are blocky (16x16-pixel GT cells over 21 ids, 8x8-pixel slot cells over 24 slots), so
every image has about 20 objects and dense, overlapping contingency tables.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lsd.metrics import segmentation_scores


def blocky(batch: int, side: int, cell: int, num_ids: int, gen: torch.Generator) -> torch.Tensor:
    small = torch.randint(0, num_ids, (batch, side // cell, side // cell), generator=gen)
    return small.repeat_interleave(cell, dim=1).repeat_interleave(cell, dim=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batch, side, num_slots, num_obj = 32, 256, 24, 20
    gen = torch.Generator().manual_seed(0)
    true = blocky(batch, side, 16, num_obj + 1, gen).to(torch.uint8)
    pred = blocky(batch, side, 8, num_slots, gen)
    for matching, ties in (("cosine", "canonical"), ("cosine", "release"), ("iou", "canonical")):
        segmentation_scores(true, pred, num_slots=num_slots, matching=matching, ties=ties)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            segmentation_scores(true, pred, num_slots=num_slots, matching=matching, ties=ties)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(
            f"matching={matching:6s} ties={ties:9s} threads={torch.get_num_threads()}: "
            f"{median * 1e3:7.1f} ms / batch of {batch} -> {batch / median:7.0f} images/s (median of {args.repeats})"
        )


if __name__ == "__main__":
    main()
