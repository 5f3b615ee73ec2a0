"""The ``lsd`` command line: ``lsd train``, ``lsd synth`` (also ``python -m lsd ...``).

Multi-GPU / multi-node: ``accelerate launch [--num_processes N ...] -m lsd train --config ...``.
"""

from __future__ import annotations

import argparse
import sys


def _train(args: argparse.Namespace) -> int:
    from lsd.training.config import load_train_config
    from lsd.training.trainer import train

    overrides = list(args.set or [])
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    config = load_train_config(args.config, overrides)
    result = train(config, resume=args.resume)
    print(f"trained to step {result.step} in {result.seconds:.1f} s; last checkpoint: {result.checkpoint}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from lsd.data.synthetic import SynthSpec, write_dataset

    spec = SynthSpec(
        name=args.name or f"synth-{args.level}-{args.resolution}",
        level=args.level,
        resolution=args.resolution,
        seed=args.seed,
        num_train=args.num_train,
        num_validation=args.num_validation,
        num_test=args.num_test,
    )
    folder = write_dataset(args.output, spec)
    print(f"synthetic scenes in {folder}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lsd", description="Latent Slot Diffusion")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an LSD model from a training config")
    train.add_argument("--config", required=True, help="shipped training config name or a JSON file")
    train.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override a config field")
    train.add_argument("--resume", default=None, help="'latest' or a checkpoint folder")
    train.add_argument("--output-dir", default=None, help="shortcut for --set output_dir=...")
    train.add_argument("--max-steps", type=int, default=None, help="shortcut for --set train.max_steps=...")
    train.set_defaults(func=_train)

    synth = sub.add_parser("synth", help="generate synthetic multi-object scenes in the MOVi layout")
    synth.add_argument("--output", required=True, help="root folder; scenes go to OUTPUT/NAME/")
    synth.add_argument("--name", default=None)
    synth.add_argument("--level", default="hard", choices=["easy", "medium", "hard"])
    synth.add_argument("--resolution", type=int, default=64)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--num-train", type=int, default=1000)
    synth.add_argument("--num-validation", type=int, default=100)
    synth.add_argument("--num-test", type=int, default=0)
    synth.set_defaults(func=_synth)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as err:
        print(f"lsd {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
