"""The compositional-generation table (paper: FID of LSD, SLATE and SLATE+ on CLEVRTex, MOVi-C,
MOVi-E and FFHQ), run with the same phases as the segmentation tables, once per dataset.

Per dataset: the data phase of that dataset's segmentation table (its stand-in, or ``--data
DIR/<dataset>``), a model trained at the budget (or ``--checkpoint DIR/<dataset>``; MOVi-E also
the shipped stand-in checkpoint), a visual concept library of slots from the training split
(:class:`lsd.generation.concepts.ConceptLibrary`), then :func:`lsd.generation.evaluate.evaluate_generation`
on the held-out images: Frechet distances to the real held-out images of compositions (the
paper's column), own-slot reconstructions and slots shuffled across images, and reconstruction
PSNR. Beside them, a learning-free reference: the distance between the held-out images and as
many real training images, the floor any generator could reach on this many images.

Features: the Frechet distances over the fallback features of :mod:`lsd.metrics.generation` (NOT
comparable with published FID) always, and beside them FID and KID over the standard Inception
network (:func:`lsd.metrics.inception.load_fid_inception`, the ``[fid]`` extra; or the pytorch-fid
file ``LSD_INCEPTION_WEIGHTS`` names) when it is available; the table says when it is not.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from lsd._atomic import check_output_dir, write_text_atomic
from lsd.reproduction.runner import (
    Budget,
    DataPlan,
    Method,
    RunOptions,
    RunState,
    check_options,
    data_phase,
    slot_diagnostic,
    train_config_of,
    train_model,
)
from lsd.reproduction.table import MetricRow, results_table, to_markdown, to_terminal

__all__ = ["GENERATION_BUDGETS", "GENERATION_DATASETS", "GENERATION_DESCRIPTION", "run_generation_table"]

#: Dataset -> its segmentation table (whose data phase this table reuses), in the paper's order.
GENERATION_DATASETS = ("clevrtex", "movi-c", "movi-e", "ffhq")
_NAMES = {"clevrtex": "CLEVRTex", "movi-c": "MOVi-C", "movi-e": "MOVi-E", "ffhq": "FFHQ"}

GENERATION_BUDGETS = {
    "smoke": Budget("smoke", "synth-smoke", "CI check of the whole pipeline (minutes): numbers mean nothing",
                    num_train=32, num_validation=8, eval_images=8, sample_steps=5, figure_images=4),
    "cpu": Budget("cpu", "synth-cpu", "the default: 400 steps from scratch per dataset, 32 held-out images",
                  ("train.max_steps=400",), num_train=2000, num_validation=200, eval_images=32, sample_steps=25,
                  figure_images=8),
    "paper": Budget("paper", "movi-e-paper", "each dataset's paper recipe (GPUs, days); needs --data"),
}  # fmt: skip

GENERATION_DESCRIPTION = (
    "generation: compositional generation (paper: FID on CLEVRTex, MOVi-C, MOVi-E, FFHQ)\n"
    "  data: the four stand-ins (or --data DIR with DIR/clevrtex, DIR/movi-c, DIR/movi-e, DIR/ffhq)\n"
    "  measures: Frechet distance of concept-library compositions, own-slot reconstructions and shuffled\n"
    "    slots to held-out images, as FID / KID (the [fid] extra) and over fallback features;\n"
    "    reconstruction PSNR\n"
    "  beside: a real-vs-real reference (held-out vs training images); on MOVi-E also the shipped\n"
    "    stand-in checkpoint\n"
    "  paper columns: FID of LSD / SLATE / SLATE+"
)

#: Concept library per budget: training images, object concepts (at least the slot count), background concepts.
_LIBRARY = {"smoke": (16, 8, 2), "cpu": (400, 16, 4), "paper": (1000, 32, 4)}


def _rows() -> tuple[MetricRow, ...]:
    rows = []
    for name in GENERATION_DATASETS:
        n = _NAMES[name]
        rows += [
            MetricRow(f"{n}: FID compositions", ("generation", f"{name}.fid_composed"), ("generation_fid", "fid"),
                      False, f"{n[:6]} FID", paper_dataset=name),
            MetricRow(f"{n}: FID own-slot reconstructions", ("generation", f"{name}.fid_own_slots"), None, False,
                      f"{n[:6]} FIDo"),
            MetricRow(f"{n}: FID shuffled slots", ("generation", f"{name}.fid_shuffled"), None, False,
                      f"{n[:6]} FIDs"),
            MetricRow(f"{n}: FID real vs real", ("generation", f"{name}.fid_real_vs_real"), None, False,
                      f"{n[:6]} FIDr"),
            MetricRow(f"{n}: KID compositions", ("generation", f"{name}.kid_composed"), None, False, f"{n[:6]} KID"),
            MetricRow(f"{n}: FD compositions", ("generation", f"{name}.composed"), None, False, f"{n[:6]} comp"),
            MetricRow(f"{n}: FD own-slot reconstructions", ("generation", f"{name}.own_slots"), None, False,
                      f"{n[:6]} own"),
            MetricRow(f"{n}: FD shuffled slots", ("generation", f"{name}.shuffled"), None, False, f"{n[:6]} shuf"),
            MetricRow(f"{n}: FD real vs real", ("generation", f"{name}.real_vs_real"), None, False, f"{n[:6]} real"),
            MetricRow(f"{n}: reconstruction PSNR dB", ("generation", f"{name}.psnr_db"), None, False, f"{n[:6]} PSNR"),
        ]  # fmt: skip
    return tuple(rows)


def _inception():
    """The FID network: ``LSD_INCEPTION_WEIGHTS`` (a pytorch-fid file), else the standard one when
    available; ``None`` (with a note) when neither is."""
    from lsd.metrics.inception import InceptionFeatureExtractor, load_fid_inception
    from lsd.weights import PretrainedNotFound

    path = os.environ.get("LSD_INCEPTION_WEIGHTS")
    if path:
        return InceptionFeatureExtractor.from_file(path).eval()
    try:
        return load_fid_inception()
    except PretrainedNotFound as err:
        print(f"generation table: no FID, fallback-feature distances only: {err}", file=sys.stderr)
        return None


def _per_dataset_options(opts: RunOptions, name: str) -> RunOptions:
    data = None if opts.data is None else Path(opts.data) / name
    if name in ("movi-c", "movi-e") and data is not None and not data.is_dir():
        data = Path(opts.data)  # the release's MOVi dump root holds movi-c/ and movi-e/ itself
    checkpoint = None if opts.checkpoint is None else Path(opts.checkpoint) / name
    return replace(opts, data=data, checkpoint=checkpoint, shipped=opts.shipped if name == "movi-e" else None)


def _real_reference(train_images, held_out: torch.Tensor, extractor, batch_size: int) -> float:
    """The distance between ``held_out`` and as many real training images, over ``extractor``."""
    from lsd.generation.evaluate import frechet_distances

    count = min(len(train_images), held_out.shape[0])
    real_train = torch.stack([train_images[i]["pixel_values"] for i in range(count)])
    return frechet_distances(held_out, {"real_train": real_train}, extractor, batch_size)["real_train"]


def _dataset_phase(name: str, opts: RunOptions, budget: Budget, output: Path, inception) -> dict[str, Any]:
    """Data, training and the generation measures of one dataset; returns its methods' numbers."""
    from lsd.evaluation.loading import input_resolution
    from lsd.generation.concepts import ConceptLibrary
    from lsd.generation.evaluate import GenerationProtocol, evaluate_generation
    from lsd.metrics.generation import FallbackFeatures
    from lsd.models.lsd import LatentSlotDiffusion
    from lsd.reproduction.runner import load_any_checkpoint, read_train_log
    from lsd.reproduction.tables import SEGMENTATION_TABLES
    from lsd.training.data import build_train_dataset

    spec = SEGMENTATION_TABLES[name]
    if budget.name == "paper":  # each dataset's own paper recipe
        budget = spec.budgets["paper"]
    sub = _per_dataset_options(opts, name)
    plan: DataPlan = data_phase(spec, sub, budget)
    state = RunState(spec, sub, budget, output, plan)
    train_config = train_config_of(sub, budget, plan, output / "train" / name)
    models: list[Method] = []
    if sub.checkpoint is None:
        trained = train_model(train_config, progress=opts.progress)
        if trained is None:
            return {}
        model, result, log = trained
        models.append(Method(f"LSD trained now{state.tag}", "trained", model,
                             {"steps": result.step, "diagnostic": slot_diagnostic(log)}))  # fmt: skip
    else:
        model, kind, _ = load_any_checkpoint(sub.checkpoint)
        models.append(Method(f"LSD checkpoint{state.tag}", "checkpoint", model, {"kind": kind}))
    if plan.standin and sub.shipped is not None:
        shipped_log = read_train_log(Path(sub.shipped).parent / "train_log.jsonl")
        models.append(Method(f"LSD shipped checkpoint{state.tag}", "shipped",
                             LatentSlotDiffusion.from_pretrained(sub.shipped),
                             {"diagnostic": slot_diagnostic(shipped_log)}))  # fmt: skip
    train_images = build_train_dataset(train_config.data, seed=sub.seed)
    library_images, concepts, background = _LIBRARY[budget.name]
    out: dict[str, Any] = {"data": plan.record, "models": {}}
    for method in models:
        model = method.model
        dataset = plan.open_eval(input_resolution(model))
        count = min(budget.eval_images or 64, len(dataset))
        # a composed scene takes one slot from each of num_slots - 1 distinct object concepts
        num_concepts = max(concepts, model.slot_attention.config.num_slots)
        library = ConceptLibrary.from_model(model, train_images, min(library_images, len(train_images)),
                                            num_concepts, background, seed=sub.seed, progress=opts.progress)  # fmt: skip
        protocol = GenerationProtocol(num_images=count, num_inference_steps=budget.sample_steps, seed=sub.seed)
        record = evaluate_generation(model, dataset, library, protocol, inception=inception, progress=opts.progress)
        images = record.pop("images")
        record["distances"]["real_vs_real"] = _real_reference(train_images, images["real"], FallbackFeatures(), 16)
        if record["fid"] is not None:
            record["fid"]["real_vs_real"] = _real_reference(train_images, images["real"], inception, 16)
        out["models"][method.label] = {"role": method.role, **method.extra, **record, "images": images}
    return out


def _figure(per_dataset: dict[str, dict[str, Any]], path: Path, shown: int) -> None:
    """One block per dataset: held-out images, own-slot reconstructions, compositions (first model);
    every row labelled with its dataset and kind, columns numbered."""
    from lsd.figures import plot_image_grid

    rows, labels = [], []
    for name, record in per_dataset.items():
        images = next(iter(record["models"].values()))["images"]
        count = min(shown, *(images[kind].shape[0] for kind in ("real", "own_slots", "composed")))
        for kind, title in (("real", "held-out"), ("own_slots", "own slots"), ("composed", "composed")):
            rows.append(images[kind][:count].float().cpu())
            labels.append(f"{_NAMES[name]}\n{title}")
    count, size = min(r.shape[0] for r in rows), rows[0].shape[-2:]
    same = [torch.nn.functional.interpolate(r[:count], size=size, mode="nearest") for r in rows]  # datasets' sizes
    grid = torch.stack(same)  # (rows, count, 3, R, R)
    plot_image_grid(grid, path, [f"image {j}" for j in range(count)], labels, cell=1.1)


def run_generation_table(opts: RunOptions, here: Path | None = None) -> dict[str, Any]:
    """Run the generation table (module docstring); returns the ``results.json`` record."""
    from lsd.evaluation.report import versions
    from lsd.metrics.generation import FALLBACK_FEATURES_NAME
    from lsd.reproduction.tables import SEGMENTATION_TABLES

    start = time.perf_counter()
    table = replace(
        SEGMENTATION_TABLES["movi-e"], dataset="CLEVRTex, MOVi-C, MOVi-E and FFHQ", budgets=GENERATION_BUDGETS
    )
    budget = check_options(table, opts)
    output = check_output_dir(opts.output, "--output")
    inception = _inception()  # a bad weights file fails here, before any training
    output.mkdir(parents=True, exist_ok=True)
    per_dataset = {name: _dataset_phase(name, opts, budget, output, inception) for name in GENERATION_DATASETS}
    if any(not v for v in per_dataset.values()):
        return {}  # a non-main process of a multi-process run
    standin = opts.data is None
    methods: dict[str, dict[str, Any]] = {}
    for name, record in per_dataset.items():
        for label, model_record in record["models"].items():
            entry = methods.setdefault(label, {"generation": {}})
            fid = {
                f"fid_{k}" if not k.startswith("kid_") else k: v
                for k, v in (model_record["fid"] or {}).items()
                if isinstance(v, float)
            }
            entry["generation"][name] = {**{k: v for k, v in model_record["distances"].items()
                                            if isinstance(v, float)}, **fid, **model_record["reconstruction"]}  # fmt: skip
    _figure(per_dataset, output / "generation.png", min(budget.figure_images, 8))
    table = results_table(methods, "movi-e", _rows())
    label = "stand-in" if standin else "real"
    features = FALLBACK_FEATURES_NAME
    where = "stand-ins: not the paper's datasets" if standin else "real data, validation splits"
    title = f"# Compositional generation ({where})\n\n"
    fid_note = (
        f"FID / KID: the standard Inception-v3, {budget.eval_images or 64} {'stand-in ' if standin else ''}images"
        f"{' (not comparable with the paper)' if standin else ''}"
        if inception is not None
        else "FID: not measured (no Inception network here: `lsd weights fetch fid-inception`)"
    )
    heading = title + (
        f"budget `{budget.name}`, seed {opts.seed}. {fid_note}; FD: Frechet distances over {features} (NOT "
        "comparable with the paper FID). Lower is better. Our columns beside the paper's (provenance last; "
        "n/r = not recovered).\n\n"
    )
    write_text_atomic(output / "table.csv", f"# data: {label}\n" + table.to_csv(float_format="%.4f"))
    write_text_atomic(output / "table.md", heading + to_markdown(table) + "\n")
    for record in per_dataset.values():
        for model_record in record["models"].values():
            model_record.pop("images")
    record = {
        "task": "generation", "data_label": label, "budget": asdict(budget), "seed": opts.seed,
        "features": features, "fid": inception is not None, "comparable_with_paper_fid": False,
        "datasets": per_dataset, "methods": methods, "figures": {"generation": "generation.png"},
        "versions": versions(), "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "wall_seconds": time.perf_counter() - start,
    }  # fmt: skip
    write_text_atomic(output / "results.json", json.dumps(record, indent=2, default=str) + "\n")
    print(title.strip())
    print(fid_note)
    print(to_terminal(table))
    print(f"results.json, table.md, table.csv and generation.png in {record['wall_seconds']:.0f} s:\n{output}")
    return record
