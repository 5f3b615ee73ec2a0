"""``lsd compose``, ``lsd edit`` and ``lsd evaluate-generation`` (registered by :mod:`lsd.cli`).

Each writes ``results.json`` (the pinned protocol: images, sampler, steps, seeds; the checkpoint
and data) and PNG figures into ``--output``. Figures are 64 px tiles at 2x (nearest neighbour).
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

    from lsd.evaluation.loading import build_dataset, input_resolution, resolve_checkpoint
    from lsd.models.lsd import LatentSlotDiffusion

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


def _library(args: argparse.Namespace, model, dataset_of):
    """Load ``--library`` when it holds one, else build it from ``--library-split`` and save it there."""
    from lsd.generation.concepts import META_NAME, ConceptLibrary

    folder = Path(args.library)
    if (folder / META_NAME).is_file():
        library = ConceptLibrary.load(folder)
        if library.num_slots != model.slot_attention.config.num_slots:
            raise ValueError(f"--library {folder}: built for {library.num_slots} slots, the model has "
                             f"{model.slot_attention.config.num_slots}")  # fmt: skip
        return library
    train = dataset_of(args.library_split)
    library = ConceptLibrary.from_model(
        model, train, min(args.library_images, len(train)), args.num_concepts, args.num_background_concepts,
        seed=args.seed, batch_size=args.batch_size, progress=True,
    )  # fmt: skip
    library.meta.update({"split": args.library_split, "data": str(Path(args.data).resolve())})
    library.save(folder)
    return library


def _tiles(images: torch.Tensor, columns: int) -> list[torch.Tensor]:
    """``(N, 3, R, R)`` -> the column list :func:`lsd.figures.grid_png` takes (row-major order)."""
    import torch

    rows = -(-len(images) // columns)
    padded = (
        torch.cat([images, torch.ones(rows * columns - len(images), *images.shape[1:])])
        if len(images) % columns
        else images
    )
    return [padded[c::columns] for c in range(columns)]


def _write_grid(columns: list[torch.Tensor], path: Path) -> None:
    import torch

    from lsd.figures import grid_png

    grid_png([torch.nn.functional.interpolate(c.float().cpu(), scale_factor=2, mode="nearest") for c in columns], path)


def _write_results(output: Path, record: dict[str, Any]) -> None:
    output.mkdir(parents=True, exist_ok=True)
    (output / "results.json").write_text(json.dumps(record, indent=2) + "\n")


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
    library = _library(args, model, dataset_of)
    slots = library.compose(args.num, torch.Generator().manual_seed(args.seed)).to(model.device)
    decode = slot_decoder(model, args.steps, args.sampler)
    from tqdm.auto import tqdm

    images = torch.cat([
        decode(slots[i : i + args.batch_size], image_generators(args.seed, range(i, min(i + args.batch_size, args.num)), model.device)).cpu()
        for i in tqdm(range(0, args.num, args.batch_size), desc="compose")
    ])  # fmt: skip
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    _write_grid(_tiles(images, args.columns), output / "compositions.png")
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
    columns = {
        "edits.png": [scenes.real, removal_mask, scenes.own, scenes.edited["removal"][0], donor,
                      scenes.edited["insertion"][0], scenes.edited["background"][0]],
    }  # fmt: skip
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    for name, cols in columns.items():
        _write_grid(cols, output / name)
    record = {
        "command": "edit", "protocol": protocol_record(protocol), "edits": score_edits(scenes, num_slots),
        "per_image": [{"image": i, "background_slot": int(scenes.background[i]), "removed_slot": scenes.removed[i],
                       "donor": scenes.donor[i], "inserted_slot": scenes.inserted[i]} for i in range(len(real))],
        "figures": {"edits.png": "columns: image | its slots | decoded from its slots | largest object removed | "
                                 "donor (next image) | donor's largest object inserted | donor's background"},
        **_base_record(args, folder, start),
    }  # fmt: skip
    _write_results(output, record)
    print(json.dumps(record["edits"], indent=2))
    print(f"results in {output}")
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
    library = _library(args, model, dataset_of)
    record = evaluate_generation(model, dataset, library, _protocol(args, args.num_images), inception=inception,
                                 progress=True)  # fmt: skip
    images = record.pop("images")
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    shown = min(8, args.num_images)
    _write_grid([images["real"][:shown], images["own_slots"][:shown]], output / "reconstructions.png")
    _write_grid(_tiles(images["composed"][:16], 4), output / "compositions.png")
    _write_grid(_tiles(images["shuffled"][:16], 4), output / "shuffled.png")
    record |= {"command": "evaluate-generation", "library": {"folder": str(Path(args.library).resolve()), **library.meta},
               **_base_record(args, folder, start),
               "figures": {"reconstructions.png": "columns: image | decoded from its own slots",
                           "compositions.png": "16 composed scenes", "shuffled.png": "16 scenes of shuffled slots"}}  # fmt: skip
    _write_results(output, record)
    print(json.dumps({k: record[k] for k in ("reconstruction", "distances", "fid")}, indent=2))
    print(f"results in {output}")
    return 0


def _common(parser: argparse.ArgumentParser, library: bool) -> None:
    from lsd.evaluation.loading import DATASETS

    parser.add_argument("--checkpoint", required=True, help="lsd model folder or training checkpoint (or run)")
    parser.add_argument("--data", required=True, help="dataset folder (layout of the --dataset reader)")
    parser.add_argument("--dataset", default="synth", choices=DATASETS)
    parser.add_argument("--output", required=True, help="folder for results.json and the figures")
    parser.add_argument("--steps", type=int, default=25, help="sampler steps (the release's validation: 25)")
    parser.add_argument("--sampler", default="dpm", choices=["dpm", "ddim"], help="dpm: DPM-Solver++ (release)")
    parser.add_argument("--seed", type=int, default=0, help="slot, sampler, composition and shuffle noise")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default=None, choices=["cpu", "cuda"], help="default: cuda when available")
    if library:
        parser.add_argument("--library", required=True, help="concept library folder: loaded if there, else built")
        parser.add_argument("--library-split", default="train", help="images the library is built from")
        parser.add_argument("--library-images", type=int, default=1000)
        parser.add_argument("--num-concepts", type=int, default=32)
        parser.add_argument("--num-background-concepts", type=int, default=4)


def add_commands(add: Callable[..., argparse.ArgumentParser]) -> None:
    """Register the three subcommands through ``add(name, help=...)``, ``lsd``'s subparser factory
    (which gives every command the shared ``--debug`` flag)."""
    compose = add("compose", help="a grid of scenes composed from a visual concept library of slots")
    _common(compose, library=True)
    compose.add_argument("--num", type=int, default=16, help="scenes to compose")
    compose.add_argument("--columns", type=int, default=4)
    compose.set_defaults(func=_compose)

    edit = add("edit", help="before/after figures of object removal, insertion and background swap")
    _common(edit, library=False)
    edit.add_argument("--split", default="validation")
    edit.add_argument("--num-images", type=int, default=8)
    edit.set_defaults(func=_edit)

    evaluate = add("evaluate-generation", help="reconstruction PSNR, Frechet distances, edit measures")
    _common(evaluate, library=True)
    evaluate.add_argument("--split", default="validation", help="held-out images (real set and edits)")
    evaluate.add_argument("--num-images", type=int, default=64)
    evaluate.add_argument("--inception-weights", default=None, help="a pytorch-fid Inception weights file for FID")
    evaluate.add_argument("--fid", default="auto", choices=["auto", "on", "off"],
                          help="FID and KID with the standard network (`lsd weights fetch fid-inception`); "
                               "auto: when available")  # fmt: skip
    evaluate.set_defaults(func=_evaluate_generation)
