"""The command line every ``reproductions/<table>.py`` shares (``--data``, ``--checkpoint``,
``--budget smoke|cpu|paper``, ``--seed`` or ``--seeds 0,1,2``, ``--mask-resolution``, ``--output``,
...) and ``--list``.

Errors a user can fix (a missing folder, a bad flag or config field, an output that cannot be
written) print one line and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["build_parser", "describe_all", "main", "run_from_args"]

_EXAMPLES = """examples:
  python reproductions/{script}.py                        # stand-in, cpu budget
  python reproductions/{script}.py --budget smoke         # the whole pipeline in a minute or two (CI)
  python reproductions/{script}.py --seeds 0,1,2          # train and evaluate per seed: mean +- std
  python reproductions/{script}.py --data DIR             # real data in its own layout
  python reproductions/{script}.py --data DIR --checkpoint CKPT   # evaluate a checkpoint, no training
  accelerate launch reproductions/{script}.py --data DIR --budget paper   # the paper's recipe, GPUs
"""


def _spec(table: str):
    from lsd.reproduction.tables import SEGMENTATION_TABLES

    return SEGMENTATION_TABLES.get(table)


def describe_all() -> str:
    """``--list``: each table, what it measures and on what (the generation table last)."""
    from lsd.reproduction.generation_table import GENERATION_DESCRIPTION
    from lsd.reproduction.tables import SEGMENTATION_TABLES, table_names

    parts = [SEGMENTATION_TABLES[name].describe() for name in table_names() if name in SEGMENTATION_TABLES]
    return "\n\n".join([*parts, GENERATION_DESCRIPTION])


def build_parser(table: str) -> argparse.ArgumentParser:
    """The parser of ``reproductions/<table>.py`` (the same flags for every table)."""
    from lsd.defaults import SEED
    from lsd.reproduction.generation_table import GENERATION_BUDGETS, GENERATION_DESCRIPTION

    spec = _spec(table)
    budgets = spec.budgets if spec is not None else GENERATION_BUDGETS
    description = spec.describe() if spec is not None else GENERATION_DESCRIPTION
    script = table.replace("-", "_")
    parser = argparse.ArgumentParser(
        prog=f"reproductions/{script}.py",
        description=description,
        epilog=_EXAMPLES.format(script=script),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--list", action="store_true", help="name every table with a reproduction, and exit")
    parser.add_argument("--data", type=Path, help="the real dataset in its own layout (default: the stand-in)")
    parser.add_argument("--checkpoint", type=Path, help="evaluate this checkpoint (ours or the release's); no training")
    parser.add_argument("--budget", choices=list(budgets), default="cpu",
                        help="; ".join(f"{b.name}: {b.description}" for b in budgets.values()))  # fmt: skip
    parser.add_argument("--seed", type=int, default=SEED, help=f"training and evaluation seed (default {SEED})")
    if spec is not None:
        parser.add_argument("--seeds", metavar="S0,S1,...",
                            help="train and evaluate once per seed (into <output>/seed-<n>), then report mean +- std "
                            "and each seed; replaces --seed")  # fmt: skip
        parser.add_argument("--mask-resolution", choices=("native", "320", "224"), default="native",
                            help="ground-truth mask size scored at: native (the reader's), or N = short side N, "
                            "centre N x N crop (DINOSAUR 320, SPOT and later work 224) (default: native)")  # fmt: skip
    parser.add_argument("--output", type=Path, help=f"default: outputs/reproduce-{table}-<budget>")
    parser.add_argument(
        "--cache", type=Path, default=Path("data"), help="where stand-ins are generated (default data/)"
    )
    shipped = (spec or _spec("movi-e")).shipped
    if shipped is not None:
        parser.add_argument("--shipped", type=Path, help=f"stand-in checkpoint evaluated beside the new run "
                            f"(default: reproductions/{shipped}{'' if spec else ', for MOVi-E'})")  # fmt: skip
        parser.add_argument("--no-shipped", action="store_true", help="do not evaluate the shipped checkpoint")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override a field of the budget's training config")  # fmt: skip
    parser.add_argument("--device", choices=("cpu", "cuda"), help="evaluation device (default: cuda when available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


def run_from_args(table: str, args: argparse.Namespace, here: Path) -> dict:
    """Run ``table`` with parsed ``args``; ``here`` is the reproductions folder (shipped checkpoints)."""
    from lsd.reproduction.runner import RunOptions

    spec = _spec(table)
    shipped, default = None, (spec or _spec("movi-e")).shipped  # generation: MOVi-E's
    if default is not None and not args.no_shipped and args.data is None:
        shipped = args.shipped or here / default
    options = RunOptions(
        output=args.output or Path("outputs") / f"reproduce-{table}-{args.budget}",
        data=args.data, checkpoint=args.checkpoint, budget=args.budget, seed=args.seed, shipped=shipped,
        cache=args.cache, overrides=args.overrides, device=args.device, progress=not args.no_progress,
    )  # fmt: skip
    if spec is not None and args.mask_resolution != "native":
        options.mask_resolution = int(args.mask_resolution)
    if spec is not None and args.seeds is not None:
        from lsd.reproduction.seeds import parse_seeds, run_seeds

        return run_seeds(spec, options, parse_seeds(args.seeds))
    if spec is None:
        from lsd.reproduction.generation_table import run_generation_table

        return run_generation_table(options, here)
    from lsd.reproduction.runner import run_table

    return run_table(spec, options)


def main(table: str, argv: list[str] | None = None, here: Path | None = None) -> int:
    """Entry point of ``reproductions/<table>.py``; returns the exit status."""
    from lsd.reproduction.tables import table_names

    if table not in table_names():
        print(f"unknown table {table!r}; expected one of {', '.join(table_names())}", file=sys.stderr)
        return 2
    args = build_parser(table).parse_args(argv)
    if args.list:
        print(describe_all())
        return 0
    here = here or Path(__file__).resolve().parents[2] / "reproductions"
    try:
        run_from_args(table, args, here)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError, KeyError) as err:
        if args.debug:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"reproductions/{table.replace('-', '_')}.py: error: {message}", file=sys.stderr)
        return 2
    return 0


def list_main(argv: list[str] | None = None) -> int:
    """``python -m lsd.reproduction [--list | TABLE [FLAGS...]]`` (``nox -s reproduce -- --list``)."""
    from lsd.reproduction.tables import table_names

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("--list", "-l"):
        print(describe_all())
        print(f"\nrun one: nox -s reproduce-<table> [-- FLAGS]\ntables: {', '.join(table_names())}")
        return 0
    if argv[0] in ("-h", "--help"):
        print("usage: python -m lsd.reproduction [--list | TABLE [FLAGS...]]")
        return 0
    return main(argv[0], argv[1:])
