#!/usr/bin/env python
"""Reproduce the paper's MOVi-E table (segmentation + property prediction); ``nox -s reproduce-movi-e``.

    python reproductions/movi_e.py                      # stand-in, cpu budget (7 to 14 min on 2 cores)
    python reproductions/movi_e.py --budget smoke       # the whole pipeline in about 2 minutes (CI)
    python reproductions/movi_e.py --data /data/movi    # real MOVi-E (the release's dump layout)
    python reproductions/movi_e.py --data /data/movi --checkpoint release/checkpoint-200000
    accelerate launch reproductions/movi_e.py --data /data/movi --budget paper   # the paper's recipe, GPUs

See lsd/reproduction/movi_e.py for what runs and what lands in --output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The stand-in checkpoint trained longer by this same pipeline: a model + recipe folder (no optimizer
#: state; continued with `init_from`, not `--resume`) whose `model/` is evaluated; README.md and
#: train_log.jsonl beside it.
SHIPPED = HERE / "checkpoints" / "movi-e-standin" / "model"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from lsd.reproduction.movi_e import BUDGET_NAMES, BUDGETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="the release's MOVi dump (default: the synthetic stand-in)")
    parser.add_argument("--checkpoint", type=Path, help="evaluate this checkpoint (ours or the release's); no training")
    parser.add_argument(
        "--budget",
        choices=BUDGET_NAMES,
        default="cpu",
        help="; ".join(f"{b.name}: {b.description}" for b in BUDGETS.values()),
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="training and evaluation seed (default 42, the shipped run's)"
    )
    parser.add_argument("--output", type=Path, help="default: outputs/reproduce-movi-e-<budget>")
    parser.add_argument("--cache", type=Path, default=Path("data"), help="where the stand-in scenes are generated")
    parser.add_argument(
        "--shipped",
        type=Path,
        default=SHIPPED,
        help="stand-in checkpoint evaluated beside the new run (default: the one committed here)",
    )
    parser.add_argument("--no-shipped", action="store_true", help="do not evaluate the shipped checkpoint")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override a field of the budget's training config")  # fmt: skip
    parser.add_argument("--device", choices=("cpu", "cuda"), help="evaluation device (default: cuda when available)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from lsd.reproduction.movi_e import ReproduceOptions, reproduce_movi_e

    options = ReproduceOptions(
        output=args.output or Path("outputs") / f"reproduce-movi-e-{args.budget}",
        data=args.data,
        checkpoint=args.checkpoint,
        budget=args.budget,
        seed=args.seed,
        shipped=None if args.no_shipped or args.data is not None else args.shipped,
        cache=args.cache,
        overrides=args.overrides,
        device=args.device,
    )
    reproduce_movi_e(options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
