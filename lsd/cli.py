"""The ``lsd`` command line: ``lsd train``, ``lsd synth``, ``lsd evaluate``, ``lsd reconstruct``,
``lsd compose``, ``lsd edit``, ``lsd evaluate-generation``, ``lsd bench-report``,
``lsd convert-checkpoint``, ``lsd cache build|info|verify``, ``lsd data prepare`` (also ``python -m lsd ...``).

Multi-GPU / multi-node: ``accelerate launch [--num_processes N ...] -m lsd train --config ...``.

A bad input (a config value, a path, a damaged checkpoint) ends the command with one line naming
the file, field or argument, on stderr, and exit code 2; ``--debug`` shows the traceback instead.
Output paths are checked before any compute.
"""

from __future__ import annotations

import argparse
import sys
import warnings

#: Errors that are the user's input, reported in one line (exit code 2) unless ``--debug``.
USER_ERRORS = (ValueError, OSError)


def _train(args: argparse.Namespace) -> int:
    from lsd.runs import Interrupted
    from lsd.training.config import load_train_config
    from lsd.training.trainer import NonFiniteLossError, train

    overrides = list(args.set or [])
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.cache:
        from lsd.configs import load_config

        frozen = load_config(load_train_config(args.config, overrides).model).get("frozen") or []
        overrides += ["cache.latents=true", *(["cache.backbone=true"] if "backbone" in frozen else [])]
    config = load_train_config(args.config, overrides)
    try:
        result = train(
            config, resume=args.resume, overwrite=args.overwrite, rebuild_cache=args.rebuild_cache,
            progress=not args.no_progress,
        )  # fmt: skip
    except NonFiniteLossError as err:  # a training outcome, not a bad input: exit 1, one line
        if args.debug:
            raise
        print(f"lsd train: stopped: {err}", file=sys.stderr)
        return 1
    except Interrupted as err:  # SIGINT / SIGTERM: stopped at a safe point, exit 130 / 143
        print(f"lsd train: {err}", file=sys.stderr)
        return err.exit_code
    print(f"trained to step {result.step} in {result.seconds:.1f} s; last checkpoint: {result.checkpoint}")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from lsd._atomic import check_output_dir
    from lsd.data.synthetic import SynthSpec, write_dataset

    check_output_dir(args.output, "--output")
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

    from lsd._atomic import check_output_dir
    from lsd.evaluation import build_dataset, evaluate, input_resolution, load_model, markdown_table, write_report

    start = time.perf_counter()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible to torch")
    output = Path(
        args.output or Path("evaluation") / f"{Path(args.checkpoint).resolve().name}-{args.dataset}-{args.split}"
    )
    check_output_dir(output, "--output")  # before the evaluation, not after it
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
        mask_resolution=None if args.mask_resolution == "native" else int(args.mask_resolution),
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


#: ``lsd reconstruct``'s figure: the first :data:`FIGURE_IMAGES` inputs beside their reconstructions.
FIGURE_NAME, FIGURE_IMAGES = "inputs-vs-reconstructions.png", 8


def _reconstruct(args: argparse.Namespace) -> int:
    """Images -> slots -> decoded images, one PNG per input (same relative path, ``.png``), and a
    figure of the first inputs beside their reconstructions (:data:`FIGURE_NAME`)."""
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image, UnidentifiedImageError
    from tqdm.auto import tqdm

    from lsd._atomic import atomic_write, check_output_dir
    from lsd.data.images import GlobImageDataset
    from lsd.pipelines import LSDPipeline

    if not Path(args.images).is_dir():
        raise FileNotFoundError(f"images folder {args.images} does not exist")
    check_output_dir(args.output, "--output")
    if args.steps < 1 or args.batch_size < 1:
        raise ValueError(f"--steps and --batch-size must be >= 1, got {args.steps} and {args.batch_size}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible to torch")
    pipe = LSDPipeline.from_pretrained(args.model, vae=args.vae)
    if args.guidance_scale > 1.0 and pipe.null_embedding is None:
        raise ValueError(
            f"--guidance-scale {args.guidance_scale}: {args.model} has no null embedding (plain LSD has no "
            "unconditional branch); use 1.0, or save one with LSDPipeline.set_null_embedding + save_pretrained"
        )
    dinov2 = pipe.backbone.config.input_resolution if type(pipe.backbone).__name__ == "DINOv2Backbone" else None
    dataset = GlobImageDataset(args.images, resolution=pipe.resolution, pattern=args.pattern, dinov2_resolution=dinov2)
    for path in dataset.files:  # every file opens as an image, before any sampling
        try:
            Image.open(path).close()
        except (OSError, UnidentifiedImageError) as err:
            raise ValueError(f"cannot read image {path}: {err}") from err
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    root, output = Path(args.images), Path(args.output)
    figure = output / FIGURE_NAME
    if any(output / Path(f).relative_to(root).with_suffix(".png") == figure for f in dataset.files):
        raise ValueError(f"{args.images}: an input would be written to {figure}, the figure's name; rename it")
    shown: list[tuple[str, torch.Tensor, torch.Tensor]] = []  # (name, input, reconstruction) for the figure
    for start in tqdm(range(0, len(dataset), args.batch_size), desc="reconstruct", unit="batch"):
        indices = range(start, min(start + args.batch_size, len(dataset)))
        items = [dataset[i] for i in indices]
        # one generator per image, seeded by (seed, index): results do not depend on --batch-size
        seeds = [
            int(np.random.SeedSequence((args.seed, i)).generate_state(1, dtype=np.uint64)[0] >> 1) for i in indices
        ]
        view = torch.stack([item["backbone_pixel_values"] for item in items]) if dinov2 else None
        out = pipe(
            images=torch.stack([item["pixel_values"] for item in items]),
            backbone_images=view,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance_scale,
            sampler=args.sampler,
            generator=[torch.Generator().manual_seed(s) for s in seeds],
        )
        for i, image, item in zip(indices, out.images, items, strict=True):
            target = output / Path(dataset.files[i]).relative_to(root).with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, lambda tmp, image=image: image.save(tmp, format="PNG"))
            if len(shown) < FIGURE_IMAGES:
                decoded = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
                shown.append((str(Path(dataset.files[i]).relative_to(root)), item["pixel_values"], decoded))
    from lsd.figures import plot_image_grid

    pairs = torch.stack([torch.stack([inp, rec]) for _, inp, rec in shown])  # (n, 2, 3, R, R)
    plot_image_grid(pairs, figure, ["input", "decoded from its slots"], [name for name, _, _ in shown], cell=2.0)
    print(f"{len(dataset)} reconstructions in {output}; the first {len(shown)} beside their inputs in {figure}")
    return 0


def _bench_report(args: argparse.Namespace) -> int:
    from lsd.bench_report import write_report

    md_path, png_path = write_report(args.json, args.output)
    print(f"wrote {md_path} and {png_path}")
    return 0


def _convert_checkpoint(args: argparse.Namespace) -> int:
    from lsd.training.state import convert_checkpoint

    folder = convert_checkpoint(args.folder)
    print(f"converted {folder}: training_state.pt -> training_state.json + .safetensors, manifest.json")
    return 0


def _int_at_least(low: int):
    """argparse type: an integer >= ``low`` (the message names the allowed range)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is not allowed (must be >= {low})")
        return value

    return parse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every option's default, except where there is none (None, a flag that is
    off) or its help already says it (``default: ...``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        no_default = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if no_default or "default" in help_text:
            return help_text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from lsd import __version__
    from lsd.data.synthetic import LEVELS, MIN_RESOLUTION
    from lsd.defaults import DATASET, SEED

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser = argparse.ArgumentParser(prog="lsd", description="Latent Slot Diffusion", formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"lsd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], formatter_class=HelpFormatter, **kwargs)

    train = add("train", help="train an LSD model from a training config")
    train.add_argument("--config", required=True, help="shipped training config name or a JSON file")
    train.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override a config field")
    train.add_argument("--resume", default=None, help="'latest' or a checkpoint folder")
    train.add_argument(
        "--overwrite", action="store_true", help="replace the earlier run in --output-dir (a fresh run only)"
    )
    train.add_argument("--output-dir", default=None, help="shortcut for --set output_dir=...")
    train.add_argument(
        "--max-steps", type=_int_at_least(1), default=None, help="shortcut for --set train.max_steps=..."
    )
    train.add_argument(
        "--cache",
        action="store_true",
        help="read the VAE posterior (and a frozen backbone's features) from a cache built once: "
        "shortcut for --set cache.latents=true [cache.backbone=true]",
    )
    train.add_argument("--rebuild-cache", action="store_true", help="rebuild a stale cache instead of refusing it")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(func=_train)

    synth = add("synth", help="generate synthetic multi-object scenes in the MOVi layout")
    synth.add_argument("--output", required=True, help="root folder; scenes go to OUTPUT/NAME/")
    synth.add_argument("--name", default=None, help="dataset name (default: synth-LEVEL-RESOLUTION)")
    synth.add_argument("--level", default="hard", choices=sorted(LEVELS), help="scene difficulty")
    synth.add_argument("--resolution", type=_int_at_least(MIN_RESOLUTION), default=64, help="image side in pixels")
    synth.add_argument("--seed", type=_int_at_least(0), default=0,
                       help="scene seed (0: the scenes of the embedded stand-in)")  # fmt: skip
    synth.add_argument("--num-train", type=_int_at_least(0), default=1000, help="training scenes")
    synth.add_argument("--num-validation", type=_int_at_least(0), default=100, help="validation scenes")
    synth.add_argument("--num-test", type=_int_at_least(0), default=0, help="test scenes")
    synth.set_defaults(func=_synth)

    from lsd.evaluation.loading import DATASETS

    evaluate = add("evaluate", help="object-discovery scores and property probes of a checkpoint")
    evaluate.add_argument(
        "--checkpoint", required=True, help="lsd model folder, lsd training checkpoint (or run) or release checkpoint"
    )
    evaluate.add_argument("--data", required=True, help="dataset folder (layout of the --dataset reader)")
    evaluate.add_argument("--dataset", default=DATASET, choices=DATASETS, help="reader of --data")
    evaluate.add_argument("--split", default="validation", help="split of --data to evaluate")
    evaluate.add_argument("--output", default=None, help="default: evaluation/<checkpoint>-<dataset>-<split>")
    evaluate.add_argument("--batch-size", type=_int_at_least(1), default=8, help="images per forward pass")
    evaluate.add_argument("--max-images", type=_int_at_least(1), default=None, help="evaluate the first N images only")
    evaluate.add_argument("--matching", default="cosine", choices=["cosine", "iou"], help="cosine: the paper's")
    evaluate.add_argument("--ties", default="canonical", choices=["canonical", "release"],
                          help="ties of the Hungarian matching: slots by pixel count, or the release's order (docs/metrics.md)")  # fmt: skip
    evaluate.add_argument("--seed", type=int, default=SEED, help="slot-initialisation noise (the reproductions')")
    evaluate.add_argument("--probe-steps", type=_int_at_least(0), default=4000, help="0 skips the property probes")
    evaluate.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available")
    evaluate.add_argument("--num-workers", type=_int_at_least(0), default=0, help="data-loading processes")
    evaluate.add_argument("--clevrtex-crop", default="lsd", choices=["lsd", "official"], help="CLEVRTex protocol")
    evaluate.add_argument("--mask-resolution", default="native", choices=["native", "320", "224"],
                          help="GT mask size scored at: the reader's, or short side N + centre N x N crop")  # fmt: skip
    evaluate.set_defaults(func=_evaluate)

    reconstruct = add(
        "reconstruct", help="decode every image of a folder from its own slots (images -> slots -> images)"
    )
    reconstruct.add_argument("images", help="folder of images (files matching --pattern)")
    reconstruct.add_argument(
        "--model", required=True, help="lsd model folder, lsd training checkpoint (or run) or release checkpoint"
    )
    reconstruct.add_argument("--output", required=True, help="folder for the reconstructions (PNG, same names) "
                             f"and {FIGURE_NAME}")  # fmt: skip
    reconstruct.add_argument(
        "--vae", default=None, help="autoencoder (local folder or cached repo id): release checkpoints"
    )
    reconstruct.add_argument("--pattern", default="**/*.png", help="glob under the images folder")
    reconstruct.add_argument("--steps", type=int, default=25, help="sampler steps (the release validates with 25)")
    reconstruct.add_argument(
        "--sampler", default="dpm", choices=["ddim", "dpm"], help="dpm: DPM-Solver++, the release's"
    )
    reconstruct.add_argument("--guidance-scale", type=float, default=1.0, help="> 1 needs a saved null embedding")
    reconstruct.add_argument("--batch-size", type=int, default=8, help="images per sampler call")
    reconstruct.add_argument("--seed", type=int, default=SEED, help="slot-init and sampler noise")
    reconstruct.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available")
    reconstruct.set_defaults(func=_reconstruct)

    from lsd.bench_report import add_arguments

    bench_report = add("bench-report", help="pytest-benchmark JSON -> markdown table of ratios and a chart")
    add_arguments(bench_report)
    bench_report.set_defaults(func=_bench_report)

    convert = add(
        "convert-checkpoint",
        help="rewrite an old checkpoint (pickled training_state.pt) without pickle; ONLY on files you trust",
    )
    convert.add_argument("folder", help="the checkpoint folder (checkpoint-N/) holding training_state.pt")
    convert.set_defaults(func=_convert_checkpoint)

    from lsd.generation.commands import add_commands
    from lsd.training.cache_commands import add_commands as add_cache_commands

    add_commands(add)  # compose, edit, evaluate-generation
    add_cache_commands(add)  # cache build|info|verify

    from lsd.data.prepare.command import add_commands as add_data_commands

    add_data_commands(add)  # data prepare

    from lsd.weights.commands import add_commands as add_weights_commands

    add_weights_commands(add)  # weights list | fetch
    return parser


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in text:
        text = f"{err.filename}: {text}"
    return text or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        if not args.debug:  # a warning (e.g. a skipped damaged checkpoint) in one line too
            warnings.showwarning = lambda message, *_, **__: print(
                f"lsd {args.command}: warning: {message}", file=sys.stderr
            )
        try:
            return args.func(args)
        except USER_ERRORS as err:
            if args.debug:
                raise
            print(f"lsd {args.command}: error: {_one_line(err)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # a second Ctrl-C, or one outside a training loop
            if args.debug:
                raise
            print(f"lsd {args.command}: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
