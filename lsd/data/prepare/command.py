"""``lsd data prepare movi-e|movi-c --out DIR``: the CLI entry over :func:`prepare_movi`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from lsd.data.prepare.convert import DEFAULT_SPLITS, TFDS_NAMES, prepare_movi
from lsd.data.prepare.source import PUBLIC_TFDS


def _prepare(args: argparse.Namespace) -> int:
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    if not splits:
        raise ValueError(f"--splits {args.splits!r} names no split")
    results = prepare_movi(
        args.dataset,
        args.out,
        splits=splits,
        source=args.source,
        limit=args.limit,
        resolution=args.resolution,
        progress=not args.no_progress,
        workers=args.workers,
        retries=args.retries,
    )
    for r in results:
        rate = f", {r.videos_per_second:.2f} videos/s" if r.written else ""
        print(
            f"{args.dataset} {r.split}: {r.videos} videos in {r.folder} ({r.written} written, {r.verified} already "
            f"there and verified; {r.bytes_read / 1e6:.1f} MB read in {r.seconds:.1f} s{rate})"
        )
    print(f"read it with --data {args.out}")
    return 0


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register ``lsd data prepare`` through ``add(name, help=...)``, ``lsd``'s subparser factory."""
    data = add("data", help="prepare real datasets in the layouts the readers read")
    sub = data.add_subparsers(dest="data_command", required=True, help="what to prepare")
    prepare = sub.add_parser(
        "prepare",
        help="MOVi-C / MOVi-E from their TFDS release (no TensorFlow) into the LSD release's dump layout",
        description="Reads MOVi's TFDS release (a local folder or, by default, the public bucket over HTTPS) "
        "and writes OUT/<dataset>/<dataset>-<split>-with-label/{images,labels}/ as the LSD release's dump "
        "script does. Reruns skip (and verify) the videos already written.",
    )
    prepare.add_argument("dataset", choices=sorted(TFDS_NAMES), help="which MOVi dataset")
    prepare.add_argument("--out", required=True, help="root folder (what --data takes)")
    prepare.add_argument(
        "--splits", default=",".join(DEFAULT_SPLITS), help="comma-separated (also: test) (default: %(default)s)"
    )
    prepare.add_argument(
        "--source", default=None, help=f"TFDS release folder, data_dir or http(s) URL (default: {PUBLIC_TFDS})"
    )
    prepare.add_argument("--limit", type=int, default=None, help="the first N videos of each split")
    prepare.add_argument(
        "--resolution",
        type=int,
        default=256,
        choices=[256, 128],
        help="which release of the public bucket (default: %(default)s)",
    )
    prepare.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes decoding and writing (default: CPUs)",
    )
    prepare.add_argument(
        "--retries", type=int, default=5, help="reconnections per dropped download (default: %(default)s)"
    )
    prepare.add_argument("--no-progress", action="store_true", help="no progress bars")
    prepare.add_argument("--debug", action="store_true", help="show the traceback of an error")
    prepare.set_defaults(func=_prepare)
