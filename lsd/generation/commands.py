"""``lsd compose``, ``lsd edit`` and ``lsd evaluate-generation`` (registered by :mod:`lsd.cli`).

Each writes ``results.json`` (the pinned protocol: images, sampler, steps, seeds; the checkpoint
and data) and PNG figures into ``--output``, every row and column labelled.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["add_commands"]


def _load(args: argparse.Namespace):
    """The model (with its autoencoder: decoding needs it) and the dataset split ``args.split``."""
    import torch

    from lsd._atomic import check_output_dir
    from lsd.evaluation.loading import build_dataset, input_resolution, resolve_checkpoint
    from lsd.models.lsd import LatentSlotDiffusion

    check_output_dir(args.output, "--output")  # before any compute
    kind, folder = resolve_checkpoint(args.checkpoint)
    if kind == "release":
        raise ValueError(f"--checkpoint {args.checkpoint}: a release checkpoint has no stand-in decoder here; "
                         "give an lsd model folder or training checkpoint")  # fmt: skip
    model = LatentSlotDiffusion.from_pretrained(folder)
    if model.vae is None:
        raise ValueError(f"--checkpoint {folder}: the model has no autoencoder, so slots cannot be decoded")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    return (
        model,
        folder,
        lambda split: build_dataset(args.dataset, args.data, split=split, resolution=input_resolution(model)),
    )


def library_recipe(library) -> dict[str, Any]:
    """What a concept library was built from and how (the fields a reuse must match)."""
    return {
        "checkpoint": library.meta.get("checkpoint"),
        "data": library.meta.get("data"),
        "split": library.meta.get("split"),
        "num_images": library.meta.get("num_images"),
        "num_concepts": library.num_concepts,
        "num_background_concepts": library.num_background_concepts,
        "seed": library.meta.get("seed"),
    }


def _library(args: argparse.Namespace, model, folder: Path, dataset_of):
    """``--library``: reused when it holds a library of the same recipe (checkpoint, data, split,
    images, concept counts, seed); refused, naming each difference, when the recipe differs, unless
    ``--rebuild-library``; else built from ``--library-split`` and written there atomically."""
    from lsd._atomic import atomic_dir
    from lsd.generation.concepts import META_NAME, ConceptLibrary

    target = Path(args.library)
    train = dataset_of(args.library_split)
    wanted = {
        "checkpoint": str(Path(folder).resolve()),
        "data": str(Path(args.data).resolve()),
        "split": args.library_split,
        "num_images": min(args.library_images, len(train)),
        "num_concepts": args.num_concepts,
        "num_background_concepts": args.num_background_concepts,
        "seed": args.seed,
    }
    if (target / META_NAME).is_file() and not args.rebuild_library:
        library = ConceptLibrary.load(target)
        built = library_recipe(library)
        differs = [
            f"{key} {built[key]!r} (this run: {value!r})" for key, value in wanted.items() if built[key] != value
        ]
        if differs:
            raise ValueError(f"--library {target} was built with another recipe: {'; '.join(differs)}. "
                             "Pass --rebuild-library to rebuild it, or give another --library folder")  # fmt: skip
        if library.num_slots != model.slot_attention.config.num_slots:
            raise ValueError(f"--library {target}: built for {library.num_slots} slots, the model has "
                             f"{model.slot_attention.config.num_slots}")  # fmt: skip
        return library
    if target.exists() and any(target.iterdir()) and not (target / META_NAME).is_file():
        raise FileExistsError(f"--library {target}: the folder holds other files, not a concept library")
    library = ConceptLibrary.from_model(
        model, train, wanted["num_images"], args.num_concepts, args.num_background_concepts,
        seed=args.seed, batch_size=args.batch_size, progress=True,
    )  # fmt: skip
    library.meta.update({"split": args.library_split, "data": wanted["data"], "checkpoint": wanted["checkpoint"]})
    with atomic_dir(target) as tmp:
        library.save(tmp)
    return library


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def edit_table(edits: dict[str, Any]) -> str:
    """The ``"edits"`` record as a short table: a row per measure, a column per edit (the rules
    stay in ``results.json``)."""
    import pandas as pd

    kinds = {k: {m: _cell(v) for m, v in v.items()} for k, v in edits.items() if isinstance(v, dict) and k != "rules"}
    table = pd.DataFrame(kinds).fillna("")
    counts = ", ".join(f"{k} {_cell(v)}" for k, v in edits.items() if not isinstance(v, dict))
    return f"edits ({counts}):\n{table.to_string()}"


def generation_table(record: dict[str, Any]) -> str:
    """Reconstruction and distances of ``evaluate-generation`` as a short two-column table."""
    import pandas as pd

    distances = record["distances"]
    rows = {f"reconstruction {k}": v for k, v in record["reconstruction"].items()}
    rows |= {f"distance to real, {k}": distances[k] for k in ("own_slots", "composed", "shuffled")}
    rows["distances ordered own < composed < shuffled"] = distances["ordered_own_composed_shuffled"]
    fid = record.get("fid")
    if fid:  # the standard network's FID and KID (stand-in sizes: not comparable with the paper's)
        rows |= {f"FID, {k}": fid[k] for k in ("own_slots", "composed", "shuffled")}
        rows |= {f"KID, {k}": fid[f"kid_{k}"] for k in ("own_slots", "composed", "shuffled")}
    table = pd.Series({k: _cell(v) for k, v in rows.items()}, name="value").to_frame()
    return f"features: {distances['features']}\n{table.to_string()}"


def _write_labelled(columns: dict[str, torch.Tensor], path: Path, row_labels: list[str]) -> None:
    """A figure of labelled columns (title -> ``(N, 3, R, R)`` in [-1, 1]), one row per image."""
    import torch

    from lsd.figures import plot_image_grid

    plot_image_grid(torch.stack([c.float().cpu() for c in columns.values()], dim=1), path, list(columns), row_labels)


def _write_scenes(images: torch.Tensor, columns: int, path: Path, what: str) -> None:
    """``(N, 3, R, R)`` scenes in rows of ``columns``: row ``i`` is labelled with its scene numbers,
    each column with its place in the row (scene = row's first + column - 1); blank tiles pad."""
    import torch

    from lsd.figures import plot_image_grid

    count = len(images)
    rows = -(-count // columns)
    padded = torch.cat([images.float().cpu(), torch.ones(rows * columns - count, *images.shape[1:])])
    labels = [f"{what} {r * columns + 1}-{min(count, (r + 1) * columns)}" for r in range(rows)]
    titles = [f"+{c}" if c else "first" for c in range(columns)]
    plot_image_grid(padded.reshape(rows, columns, *images.shape[1:]), path, titles, labels)


def _write_results(output: Path, record: dict[str, Any]) -> None:
    from lsd._atomic import write_text_atomic

    output.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output / "results.json", json.dumps(record, indent=2) + "\n")


def _base_record(args: argparse.Namespace, folder: Path, start: float) -> dict[str, Any]:
    return {
        "checkpoint": str(Path(folder).resolve()),
        "data": {
            "dataset": args.dataset,
            "root": str(Path(args.data).resolve()),
            "split": getattr(args, "split", None),
        },
        "wall_time_s": time.perf_counter() - start,
    }


def _protocol(args: argparse.Namespace, num_images: int):
    from lsd.generation.evaluate import GenerationProtocol

    return GenerationProtocol(num_images, args.sampler, args.steps, args.seed, args.batch_size)


def _compose(args: argparse.Namespace) -> int:
    import torch

    from lsd.generation.decoding import image_generators, slot_decoder
    from lsd.generation.evaluate import protocol_record

    start = time.perf_counter()
    if args.num < 1:
        raise ValueError(f"--num must be >= 1, got {args.num}")
    model, folder, dataset_of = _load(args)
    library = _library(args, model, folder, dataset_of)
    slots = library.compose(args.num, torch.Generator().manual_seed(args.seed)).to(model.device)
    decode = slot_decoder(model, args.steps, args.sampler)
    from tqdm.auto import tqdm

    images = torch.cat([
        decode(slots[i : i + args.batch_size], image_generators(args.seed, range(i, min(i + args.batch_size, args.num)), model.device)).cpu()
        for i in tqdm(range(0, args.num, args.batch_size), desc="compose")
    ])  # fmt: skip
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    _write_scenes(images, args.columns, output / "compositions.png", "composed scenes")
    record = {"command": "compose", "protocol": protocol_record(_protocol(args, max(args.num, 2))) | {"num_images": args.num},
              "library": {"folder": str(Path(args.library).resolve()), "num_concepts": library.num_concepts,
                          "num_background_concepts": library.num_background_concepts, **library.meta},
              **_base_record(args, folder, start), "figures": ["compositions.png"]}  # fmt: skip
    _write_results(output, record)
    print(f"{args.num} compositions in {output / 'compositions.png'}")
    return 0


def _edit(args: argparse.Namespace) -> int:
    import torch

    from lsd.figures import overlay
    from lsd.generation.decoding import slot_decoder
    from lsd.generation.evaluate import edit_scenes, protocol_record, score_edits

    start = time.perf_counter()
    model, folder, dataset_of = _load(args)
    dataset = dataset_of(args.split)
    protocol = _protocol(args, args.num_images)
    if args.num_images > len(dataset):
        raise ValueError(
            f"--num-images {args.num_images} is more than the {len(dataset)} images of split {args.split!r}"
        )
    real = torch.stack([dataset[i]["pixel_values"] for i in range(args.num_images)])
    scenes = edit_scenes(model, real, protocol, slot_decoder(model, args.steps, args.sampler), progress=True)
    num_slots = model.slot_attention.config.num_slots
    donor = scenes.real[torch.tensor(scenes.donor)]
    removal_mask = overlay(scenes.real, scenes.segmentation, num_slots)
    columns = {"image": scenes.real, "its slots": removal_mask, "decoded from\nits slots": scenes.own,
               "largest object\nremoved": scenes.edited["removal"][0], "donor\n(next image)": donor,
               "donor's object\ninserted": scenes.edited["insertion"][0],
               "donor's\nbackground": scenes.edited["background"][0]}  # fmt: skip
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    _write_labelled(columns, output / "edits.png", [f"image {i}" for i in range(len(real))])
    record = {
        "command": "edit", "protocol": protocol_record(protocol), "edits": score_edits(scenes, num_slots),
        "per_image": [{"image": i, "background_slot": int(scenes.background[i]), "removed_slot": scenes.removed[i],
                       "donor": scenes.donor[i], "inserted_slot": scenes.inserted[i]} for i in range(len(real))],
        "figures": {"edits.png": "columns: image | its slots | decoded from its slots | largest object removed | "
                                 "donor (next image) | donor's largest object inserted | donor's background"},
        **_base_record(args, folder, start),
    }  # fmt: skip
    _write_results(output, record)
    print(edit_table(record["edits"]))
    print(f"every measure and each image in {output / 'results.json'}")
    return 0


def _fid_network(args: argparse.Namespace):
    """The Inception network for the FID record: ``--inception-weights`` (a pytorch-fid file), else
    with ``--fid auto|on`` the standard one of :func:`lsd.metrics.inception.load_fid_inception`
    (``auto``: none, with a note, when it is not available); ``--fid off``: none."""
    if args.inception_weights is not None:
        from lsd.metrics.inception import InceptionFeatureExtractor

        return InceptionFeatureExtractor.from_file(args.inception_weights).eval()
    if args.fid == "off":
        return None
    from lsd.metrics.inception import load_fid_inception
    from lsd.weights import PretrainedNotFound

    try:
        return load_fid_inception()
    except PretrainedNotFound as err:
        if args.fid == "on":
            raise
        print(f"lsd evaluate-generation: no FID (fallback-feature distances only): {err}", file=sys.stderr)
        return None


def _evaluate_generation(args: argparse.Namespace) -> int:
    from lsd.generation.evaluate import evaluate_generation

    start = time.perf_counter()
    inception = _fid_network(args)  # before long compute: a bad weights file fails here
    model, folder, dataset_of = _load(args)
    dataset = dataset_of(args.split)
    if inception is not None:
        inception = inception.to(model.device)
    library = _library(args, model, folder, dataset_of)
    record = evaluate_generation(model, dataset, library, _protocol(args, args.num_images), inception=inception,
                                 progress=True)  # fmt: skip
    images = record.pop("images")
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    shown = min(8, args.num_images)
    _write_labelled({"held-out image": images["real"][:shown], "decoded from\nits own slots": images["own_slots"][:shown]},
                    output / "reconstructions.png", [f"image {i}" for i in range(shown)])  # fmt: skip
    _write_scenes(images["composed"][:16], 4, output / "compositions.png", "composed scenes")
    _write_scenes(images["shuffled"][:16], 4, output / "shuffled.png", "shuffled-slot scenes")
    record |= {"command": "evaluate-generation", "library": {"folder": str(Path(args.library).resolve()), **library.meta},
               **_base_record(args, folder, start),
               "figures": {"reconstructions.png": "columns: image | decoded from its own slots",
                           "compositions.png": "16 composed scenes", "shuffled.png": "16 scenes of shuffled slots"}}  # fmt: skip
    _write_results(output, record)
    print(generation_table(record))
    print(edit_table(record["edits"]))
    print(f"every measure in {output / 'results.json'}")
    return 0


def _common(parser: argparse.ArgumentParser, library: bool) -> None:
    from lsd.defaults import DATASET, SEED
    from lsd.evaluation.loading import DATASETS

    parser.add_argument("--checkpoint", required=True, help="lsd model folder or training checkpoint (or run)")
    parser.add_argument("--data", required=True, help="dataset folder (layout of the --dataset reader)")
    parser.add_argument("--dataset", default=DATASET, choices=DATASETS, help="reader of --data")
    parser.add_argument("--output", required=True, help="folder for results.json and the figures")
    parser.add_argument("--steps", type=int, default=25, help="sampler steps (the release's validation: 25)")
    parser.add_argument("--sampler", default="dpm", choices=["dpm", "ddim"], help="dpm: DPM-Solver++ (release)")
    parser.add_argument("--seed", type=int, default=SEED, help="slot, sampler, composition and shuffle noise")
    parser.add_argument("--batch-size", type=int, default=16, help="images per sampler call")
    parser.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available")
    if library:
        parser.add_argument("--library", required=True, help="concept library folder: reused if it holds one of "
                            "the same recipe (refused if the recipe differs), else built there")  # fmt: skip
        parser.add_argument("--rebuild-library", action="store_true", help="rebuild --library with this recipe")
        parser.add_argument("--library-split", default="train", help="images the library is built from")
        parser.add_argument("--library-images", type=int, default=1000, help="images the library is built from")
        parser.add_argument("--num-concepts", type=int, default=32, help="K-means concepts of object slots")
        parser.add_argument("--num-background-concepts", type=int, default=4, help="K-means concepts of backgrounds")


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register the three subcommands through ``add(name, help=...)``, ``lsd``'s subparser factory
    (which gives every command the shared ``--debug`` flag)."""
    compose = add("compose", help="a grid of scenes composed from a visual concept library of slots")
    _common(compose, library=True)
    compose.add_argument("--num", type=int, default=16, help="scenes to compose")
    compose.add_argument("--columns", type=int, default=4, help="scenes per row of the figure")
    compose.set_defaults(func=_compose)

    edit = add("edit", help="before/after figures of object removal, insertion and background swap")
    _common(edit, library=False)
    edit.add_argument("--split", default="validation", help="held-out images to edit")
    edit.add_argument("--num-images", type=int, default=8, help="images to edit (the first ones of --split)")
    edit.set_defaults(func=_edit)

    evaluate = add("evaluate-generation", help="reconstruction PSNR, Frechet distances, edit measures")
    _common(evaluate, library=True)
    evaluate.add_argument("--split", default="validation", help="held-out images (real set and edits)")
    evaluate.add_argument("--num-images", type=int, default=64, help="held-out images measured")
    evaluate.add_argument(
        "--inception-weights", default=None, help="a pytorch-fid Inception weights file for FID (else the standard one)"
    )
    evaluate.add_argument("--fid", default="auto", choices=["auto", "on", "off"],
                          help="FID and KID with the standard network (`lsd weights fetch fid-inception`); "
                               "auto: when available (default: auto)")  # fmt: skip
    evaluate.set_defaults(func=_evaluate_generation)
