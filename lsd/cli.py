"""The ``lsd`` command line: ``lsd train``, ``lsd synth``, ``lsd evaluate``, ``lsd bench-report``, ``lsd compose``,
``lsd edit``, ``lsd evaluate-generation`` (also ``python -m lsd ...``).

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


def _evaluate(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch

    from lsd.evaluation import build_dataset, evaluate, input_resolution, load_model, markdown_table, write_report

    start = time.perf_counter()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible to torch")
    model, kind, folder = load_model(args.checkpoint)
    resolution = input_resolution(model)
    dataset = build_dataset(
        args.dataset, args.data, split=args.split, resolution=resolution, clevrtex_crop=args.clevrtex_crop
    )
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = evaluate(
        model,
        dataset,
        batch_size=args.batch_size,
        seed=args.seed,
        matching=args.matching,
        ties=args.ties,
        probe_steps=args.probe_steps,
        max_images=args.max_images,
        device=device,
        num_workers=args.num_workers,
    )
    output = Path(
        args.output or Path("evaluation") / f"{Path(args.checkpoint).resolve().name}-{args.dataset}-{args.split}"
    )
    options = {"crop": args.clevrtex_crop} if args.dataset == "clevrtex" else {}
    write_report(
        result,
        output,
        checkpoint={"path": str(Path(args.checkpoint).resolve()), "kind": kind, "model_folder": str(folder.resolve())},
        dataset={
            "name": args.dataset,
            "root": str(Path(args.data).resolve()),
            "split": args.split,
            "num_images": result.num_images,
            "image_resolution": resolution,
            "max_num_objects": result.max_num_objects,
            "options": options,
        },
        split=args.split,
        seed=args.seed,
        device=device,
        wall_time_s=time.perf_counter() - start,
    )
    print(markdown_table(result), end="")
    if result.probe_note:
        print(f"probes: {result.probe_note}")
    print(f"results in {output}")
    return 0


def _bench_report(args: argparse.Namespace) -> int:
    from lsd.bench_report import write_report

    md_path, png_path = write_report(args.json, args.output)
    print(f"wrote {md_path} and {png_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from lsd.data.synthetic import LEVELS

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
    synth.add_argument("--level", default="hard", choices=sorted(LEVELS))
    synth.add_argument("--resolution", type=int, default=64)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--num-train", type=int, default=1000)
    synth.add_argument("--num-validation", type=int, default=100)
    synth.add_argument("--num-test", type=int, default=0)
    synth.set_defaults(func=_synth)

    from lsd.evaluation.loading import DATASETS

    evaluate = sub.add_parser("evaluate", help="object-discovery scores and property probes of a checkpoint")
    evaluate.add_argument(
        "--checkpoint", required=True, help="lsd model folder, lsd training checkpoint (or run) or release checkpoint"
    )
    evaluate.add_argument("--data", required=True, help="dataset folder (layout of the --dataset reader)")
    evaluate.add_argument("--dataset", default="movi-e", choices=DATASETS)
    evaluate.add_argument("--split", default="validation")
    evaluate.add_argument("--output", default=None, help="default: evaluation/<checkpoint>-<dataset>-<split>")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--max-images", type=int, default=None, help="evaluate the first N images only")
    evaluate.add_argument("--matching", default="cosine", choices=["cosine", "iou"], help="cosine: the paper's")
    evaluate.add_argument("--ties", default="canonical", choices=["canonical", "release"])
    evaluate.add_argument("--seed", type=int, default=0, help="slot-initialisation noise")
    evaluate.add_argument("--probe-steps", type=int, default=4000, help="0 skips the property probes")
    evaluate.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available")
    evaluate.add_argument("--num-workers", type=int, default=0)
    evaluate.add_argument("--clevrtex-crop", default="lsd", choices=["lsd", "official"], help="CLEVRTex protocol")
    evaluate.set_defaults(func=_evaluate)

    from lsd.bench_report import add_arguments

    bench_report = sub.add_parser("bench-report", help="pytest-benchmark JSON -> markdown table of ratios and a chart")
    add_arguments(bench_report)
    bench_report.set_defaults(func=_bench_report)

    from lsd.generation.commands import add_commands

    add_commands(sub)  # compose, edit, evaluate-generation
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
