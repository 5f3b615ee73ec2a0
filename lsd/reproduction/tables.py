"""The paper's segmentation tables as :class:`~lsd.reproduction.runner.TableSpec` descriptions.

One entry per table: its data (real layout or stand-in), model and budgets, metrics, baselines and
paper columns. ``reproductions/<table>.py`` and ``nox -s reproduce-<table>`` run them through
:func:`lsd.reproduction.runner.run_table`; the compositional-generation table, which spans four
datasets, lives in :mod:`lsd.reproduction.generation_table`.

Stand-in budgets train the CPU-sized ``standin`` model (docs/model.md) with the ``synth-cpu``
recipe; the ``paper`` budget runs the table's paper recipe (``lsd/configs/train/<name>-paper.json``,
every field's source in ``lsd/configs/provenance/``) and needs ``--data``.
"""

from __future__ import annotations

import json
from pathlib import Path

from lsd.reproduction.runner import Budget, DataPlan, RunOptions, RunState, TableSpec, real_plan, standin_plan
from lsd.reproduction.table import CLASS_ROWS, ROWS, SEGMENTATION_ROWS, UNNAMED_PROPERTIES, MetricRow, probe_rows

__all__ = ["SEGMENTATION_TABLES", "standin_budgets", "table_names"]

_SMOKE = "CI check of the whole pipeline (minutes): numbers mean nothing"


def standin_budgets(
    paper_config: str, cpu_steps: int = 1500, cpu_train: int = 2000, cpu_validation: int = 200,
    cpu_note: str = "", extra: tuple[str, ...] = (),
) -> dict[str, Budget]:  # fmt: skip
    """smoke / cpu / paper budgets of a stand-in table (``extra``: training overrides for all three
    stand-in budgets, e.g. the slot count)."""
    return {
        "smoke": Budget("smoke", "synth-smoke", _SMOKE, extra, num_train=32, num_validation=8, eval_images=8,
                        probe_steps=50, kmeans_restarts=1, sample_steps=5, figure_images=2),
        "cpu": Budget("cpu", "synth-cpu", f"the default: {cpu_steps:,} steps from scratch on the stand-in{cpu_note}",
                      (f"train.max_steps={cpu_steps}", *extra), num_train=cpu_train, num_validation=cpu_validation),
        "paper": Budget("paper", paper_config, "the paper recipe (GPUs, days); needs --data"),
    }  # fmt: skip


# --------------------------------------------------------------------------------------------
# data phases
# --------------------------------------------------------------------------------------------


def _movi_e_data(spec: TableSpec, opts: RunOptions, budget: Budget) -> DataPlan:
    """MOVi-E: the embedded synthetic stand-in (``data.kind = "synth"``, the scenes the shipped
    checkpoint was trained on), or the release's MOVi dump trained with the release's split rule
    (glob of the training frames, sorted, shuffled with seed 42, first 90 %)."""
    from lsd.data.readers import open_dataset
    from lsd.training.config import load_train_config
    from lsd.training.data import synth_dataset_dir

    if opts.data is None:
        overrides = [f"data.root={opts.cache}"]
        data = load_train_config(budget.train_config, [*budget.train_overrides, *overrides, *opts.overrides]).data
        folder = synth_dataset_dir(data, progress=opts.progress)  # generated here, before training
        return DataPlan(
            standin=True,
            train_overrides=overrides,
            open_eval=lambda r: open_dataset("synth", folder, split="validation", resolution=r),
            record={
                "kind": "stand-in: synthetic scenes in the MOVi layout (not MOVi-E)",
                "folder": str(folder),
                "spec": json.loads((folder / "synth_spec.json").read_text()),
            },  # fmt: skip
        )
    return _movi_real(spec, opts, budget, "movi-e")


def _movi_real(spec: TableSpec, opts: RunOptions, budget: Budget, name: str) -> DataPlan:
    from lsd.training.config import load_train_config

    images = Path(opts.data) / name / f"{name}-train-with-label" / "images"
    if not images.is_dir():
        raise FileNotFoundError(f"--data {opts.data}: no {images} (the release's {name} training frames)")
    overrides = ["data.kind=glob", f"data.root={images}", "data.pattern=**/*.png"]
    if load_train_config(budget.train_config).data.kind != "glob":  # a CPU budget on real frames
        overrides.append("data.portion=[0.0, 0.9]")  # the release's split rule
    plan = real_plan(name, opts, train_overrides=overrides)
    plan.record["kind"] = {"movi-e": "MOVi-E", "movi-c": "MOVi-C"}[name]
    return plan


def _movi_c_data(spec: TableSpec, opts: RunOptions, budget: Budget) -> DataPlan:
    """MOVi-C: its stand-in (the ``medium`` scenes of the MOVi-E table's embedded stand-in, so the
    same distribution, but other scenes: seed 1), or the release's MOVi dump (glob, 90 % split)."""
    if opts.data is None:
        return standin_plan("movi-c", "movi-c", opts, budget, seed=1)
    return _movi_real(spec, opts, budget, "movi-c")


def _reader_data(kind: str, reader: str):
    def plan(spec: TableSpec, opts: RunOptions, budget: Budget) -> DataPlan:
        if opts.data is None:
            return standin_plan(kind, reader, opts, budget)
        return real_plan(reader, opts)

    return plan


def _coco_data(spec: TableSpec, opts: RunOptions, budget: Budget) -> DataPlan:
    """COCO: the stand-in's train split through the COCO reader; on real COCO the release's
    training set (every ``train2017/*.jpg``, ``configs/coco``), evaluated on val2017."""
    if opts.data is None:
        return standin_plan("coco", "coco", opts, budget)
    images = Path(opts.data) / "train2017"
    if not images.is_dir():
        raise FileNotFoundError(f"--data {opts.data}: no {images} (COCO 2017 training images)")
    return real_plan("coco", opts, train_overrides=["data.kind=glob", f"data.root={images}", "data.pattern=*.jpg"])


# --------------------------------------------------------------------------------------------
# extra phases
# --------------------------------------------------------------------------------------------


def _clevr_mix(state: RunState) -> None:
    """CLEVR's analysis (paper: LSD trained on CLEVR against LSD-Mix, trained on CLEVR and
    CLEVRTex together): a second model trained on the CLEVR training images plus CLEVRTex's
    (stand-ins of both, or ``--data`` CLEVR with ``--set data.mix_root=...`` CLEVRTex), evaluated on
    the same CLEVR held-out images. Skipped (with a note) when a checkpoint is evaluated."""
    from lsd.reproduction.runner import (
        Method,
        evaluate_model,
        slot_diagnostic,
        standin_plan,
        train_config_of,
        train_model,
    )

    opts = state.opts
    if opts.checkpoint is not None:
        state.notes.append("LSD-Mix is not trained when --checkpoint is given (evaluation only).")
        return
    if state.plan.standin:
        mix = standin_plan("clevrtex", "clevrtex", opts, state.budget)
        root = mix.folders["standin"]
        from lsd.data.standins import standin_reader_root

        extra = ["data.mix_dataset=clevrtex", f"data.mix_root={standin_reader_root(root)}"]
    else:
        if not any(o.startswith("data.mix_root=") for o in opts.overrides):
            state.notes.append("LSD-Mix needs CLEVRTex: add --set data.mix_root=DIR (CLEVRTex in its real layout).")
            return
        extra = ["data.mix_dataset=clevrtex"]
    config = train_config_of(opts, state.budget, state.plan, state.output / "train-mix", extra)
    trained = train_model(config)
    if trained is None:
        return
    model, result, log = trained
    label = f"LSD-Mix trained now{state.tag}"
    state.logs[label] = log
    method = Method(label, "trained", model, {"checkpoint": str(result.checkpoint), "steps": result.step,
                                              "diagnostic": slot_diagnostic(log), "train_config": config.to_dict()})  # fmt: skip
    state.models.append(method)
    evaluate_model(state, method)
    models = [m.label for m in state.models]  # models first, then the baselines, in the table
    state.methods = {k: state.methods[k] for k in [*models, *(k for k in state.methods if k not in models)]}


FIGURE_PAIRS = 6


def _ffhq_part_swaps(state: RunState) -> None:
    """FFHQ's face-part swapping (paper figure): for each model with a decoder, exchange the slots
    of matched parts between pairs of held-out faces and score the swap in the part's region
    (:func:`lsd.generation.parts.part_swap_scores`); a figure of the first pairs."""
    from lsd.data.standins import FFHQ_STANDIN_PARTS
    from lsd.generation.decoding import slot_decoder
    from lsd.generation.parts import part_swap_scores, plot_part_swaps

    if not state.plan.standin:
        state.notes.append("FFHQ has no part labels: part swaps are not scored on real faces.")
        return
    num_pairs = max(1, min(len(state.dataset) // 2, 8 if state.budget.name == "smoke" else 32))
    for method in state.models:
        if method.model.vae is None:
            continue
        decode = slot_decoder(method.model, state.budget.sample_steps)
        scores = part_swap_scores(
            method.model, state.dataset, num_pairs=num_pairs, seed=state.opts.seed, decode=decode,
            part_names=FFHQ_STANDIN_PARTS, progress=state.opts.progress,
        )  # fmt: skip
        images = scores.pop("images")
        state.methods[method.label]["part_swap"] = scores
        changed = scores["mean"]["changed_rate"]
        if changed is not None and changed < 1:
            state.notes.append(
                f"{method.label}: {100 * (1 - changed):.1f} % of part swaps changed nothing in the part's region "
                "(within one 8-bit level of the unswapped reconstruction); 'rest kept' counts those too."
            )
        if "part_swaps" not in state.figures:  # the first pairs (every score covers all of them)
            shown = {k: v[:FIGURE_PAIRS] for k, v in images.items()}
            plot_part_swaps(shown, state.output / "part_swaps.png")
            state.figures["part_swaps"] = "part_swaps.png"


def _coco_guidance(state: RunState) -> None:
    """COCO's classifier-free-guidance samples at the release's scales (DPM-Solver++, 100 steps,
    seeds 0..9; :func:`lsd.generation.guidance.guidance_samples`) for a model whose folder holds
    Stable-LSD's null embedding (``null_embedding.safetensors``); otherwise a note says why none
    were drawn. Two held-out images; the smoke budget draws 2 seeds at 5 steps."""
    from lsd.generation.guidance import RELEASE_GUIDANCE_SCALES, guidance_samples, plot_guidance_grid
    from lsd.pipelines import LSDPipeline
    from lsd.pipelines.lsd_pipeline import NULL_EMBEDDING_FILE, load_null_embedding

    for method in state.models:
        file = Path(method.extra.get("model_folder", "")) / NULL_EMBEDDING_FILE
        if not file.is_file():
            state.notes.append(
                f"{method.label}: no guidance samples (classifier-free guidance needs Stable-LSD's null "
                f"embedding, {NULL_EMBEDDING_FILE} in the model folder, from SD 2.1's text encoder)."
            )
            continue
        smoke = state.budget.name == "smoke"
        seeds, steps = range(2 if smoke else 10), 5 if smoke else 100
        pixels = state.examples["pixel_values"][:2]
        pipe = LSDPipeline.from_model(method.model, null_embedding=load_null_embedding(file))
        samples = guidance_samples(pipe, pixels, scales=RELEASE_GUIDANCE_SCALES, seeds=seeds,
                                   num_inference_steps=steps, seed_for_slots=state.opts.seed)  # fmt: skip
        name = "guidance.png" if "guidance" not in state.figures else f"guidance-{len(state.figures)}.png"
        plot_guidance_grid(samples, state.output / name, RELEASE_GUIDANCE_SCALES, seeds=tuple(seeds))
        state.figures["guidance" if name == "guidance.png" else name.removesuffix(".png")] = name
        state.results.setdefault("guidance", []).append(
            {"model": method.label, "scales": list(RELEASE_GUIDANCE_SCALES), "seeds": list(seeds),
             "num_inference_steps": steps, "images": int(pixels.shape[0]), "figure": name}
        )  # fmt: skip


def _ffhq_data(spec: TableSpec, opts: RunOptions, budget: Budget) -> DataPlan:
    """FFHQ: the stand-in faces (FFHQ layout, read by the real FFHQ reader for training; their
    part labels, written beside, for scoring), or real FFHQ (first 60k train, last 10k held out)."""
    from lsd.data.standins import FFHQPartsDataset, read_standin_spec, standin_reader_root

    if opts.data is None:
        plan = standin_plan("ffhq", "ffhq", opts, budget)
        folder = plan.folders["standin"]
        num_train = read_standin_spec(folder).num_train
        root = standin_reader_root(folder)
        plan.train_overrides.append(f"data.ffhq_num_train={num_train}")
        plan.open_eval = lambda r: FFHQPartsDataset(root, "validation", resolution=r, num_train=num_train)
        return plan
    # real FFHQ: the first 60,000 sorted files train, the rest validate (``--set data.ffhq_num_train=N``
    # for another count, e.g. a subset on disk); the held-out faces have no labels (figures only)
    from lsd.data.ffhq import FFHQ_NUM_TRAIN
    from lsd.data.readers import open_dataset

    given = [o.split("=", 1)[1] for o in opts.overrides if o.startswith("data.ffhq_num_train=")]
    num_train = int(given[-1]) if given else FFHQ_NUM_TRAIN
    plan = real_plan("ffhq", opts)
    plan.train_overrides.append(f"data.ffhq_num_train={num_train}")
    root = Path(opts.data)
    plan.open_eval = lambda r: open_dataset("ffhq", root, split="validation", resolution=r, ffhq_num_train=num_train)
    return plan


def _ffhq_budgets() -> dict[str, Budget]:
    return standin_budgets("ffhq-paper", extra=("model.slot_attention.num_slots=9",))


# --------------------------------------------------------------------------------------------
# the tables
# --------------------------------------------------------------------------------------------

MOVI_PROBES = {
    "category": "discrete",
    "image_positions": "continuous",
    "bboxes_3d": "continuous",
    "scale": "continuous",
}
CLEVR_PROBES = {"color": "discrete", "material": "discrete", "shape": "discrete", "size": "discrete",
                "x": "continuous", "y": "continuous", "z": "continuous", "pixel_coords": "continuous",
                "rotation": "continuous"}  # fmt: skip
CLEVRTEX_PROBES = {k: v for k, v in CLEVR_PROBES.items() if k not in ("x", "y", "z")}
_SHORT = {"image_positions": "img pos", "bboxes_3d": "box MSE", "pixel_coords": "pix xy", "material": "material"}


def _with_unnamed_properties(rows: tuple[MetricRow, ...]) -> tuple[MetricRow, ...]:
    """Probe rows with the paper's property-prediction numbers beside shape and material accuracy:
    the paper's table whose source does not name the dataset (CLEVR or CLEVRTex; never MOVi-E,
    whose release evaluation has only a category label), labelled so."""
    paper = {"shape": "shape_accuracy", "material": "material_accuracy"}
    out = []
    for row in rows:
        key = row.ours[1] if row.ours and row.ours[0] == "probes" else None
        if key in paper:
            label = f"{row.label} (paper: dataset not named, CLEVR or CLEVRTex)"
            row = MetricRow(label, row.ours, ("properties", paper[key]), True, row.short, UNNAMED_PROPERTIES)
        out.append(row)
    return tuple(out)


_CLEVR_ROWS = (
    SEGMENTATION_ROWS[0],
    MetricRow("mBO % (object-averaged)", ("metrics", "mbo"), ("analysis", "mbo"), True, "mBO"),
    MetricRow("mIoU % (object-averaged)", ("metrics", "miou"), ("analysis", "miou"), True, "mIoU"),
    *SEGMENTATION_ROWS[3:],
    MetricRow("FID (generation)", None, ("analysis", "fid"), False, "FID"),
    *_with_unnamed_properties(probe_rows(CLEVR_PROBES, _SHORT)),
)
_FFHQ_ROWS = (
    *(MetricRow(f"part {r.label}", r.ours, None, r.percent, r.short) for r in SEGMENTATION_ROWS),
    MetricRow("part swap success %", ("part_swap", "mean.success_rate"), None, True, "swap ok"),
    MetricRow("part swap: part changed %", ("part_swap", "mean.changed_rate"), None, True, "changed"),
    MetricRow("part swap: rest kept %", ("part_swap", "mean.kept_rate"), None, True, "kept"),
    MetricRow("part swap MAE to donor", ("part_swap", "mean.mae_to_donor"), None, False, "MAE donor"),
    MetricRow("part swap MAE to original", ("part_swap", "mean.mae_to_original"), None, False, "MAE orig"),
    MetricRow("FID (generation)", None, ("generation_fid", "fid"), False, "FID"),
)
_COCO_ROWS = (
    MetricRow("FG-ARI % (overlaps ignored)", ("metrics", "fg_ari"), ("segmentation", "fg_ari"), True, "FG-ARI"),
    MetricRow("mBO % (object-averaged)", ("metrics", "mbo"), ("segmentation", "mbo"), True, "mBO"),
    *SEGMENTATION_ROWS[2:],
    *CLASS_ROWS,
)

SEGMENTATION_TABLES: dict[str, TableSpec] = {
    "movi-c": TableSpec(
        standin_text="synthetic scenes (3-6 textured objects; seed 1, other scenes than MOVi-E's) in the MOVi dump layout",
        name="movi-c",
        title="MOVi-C reproduction",
        dataset="MOVi-C",
        paper_dataset="movi-c",
        metrics="FG-ARI, ARI, mBO, mIoU (object- and image-averaged); probes: category, image position, 3-D box, scale",
        baselines_text="colour k-means, colour+position k-means (k = slot count), 3x3 grid",
        paper_columns="mIoU of LSD / SLATE / SLATE+ (FG-ARI, mBO n/r); anchors: CODA, DINOSAUR (image-averaged)",
        budgets=standin_budgets("movi-c-paper"),
        data=_movi_c_data,
        paper_config="movi-c-paper",
        rows=(*SEGMENTATION_ROWS, *probe_rows(MOVI_PROBES, _SHORT)),
    ),
    "movi-e": TableSpec(
        standin_text="the embedded synthetic scenes in the MOVi layout",
        name="movi-e",
        title="MOVi-E reproduction",
        dataset="MOVi-E",
        paper_dataset="movi-e",
        metrics="FG-ARI, ARI, mBO, mIoU (object- and image-averaged); probes: category, image position, 3-D box, scale",
        baselines_text="colour k-means, colour+position k-means (k = slot count), 3x3 grid",
        paper_columns="mIoU of LSD / SLATE / SLATE+; anchors: CODA, DINOSAUR (image-averaged)",
        budgets={
            "smoke": Budget(
                "smoke",
                "synth-smoke",
                _SMOKE,
                eval_images=16,
                probe_steps=50,
                kmeans_restarts=1,
                sample_steps=5,
                figure_images=2,
            ),
            "cpu": Budget("cpu", "synth-cpu", "the default: 1,500 steps from scratch (a measured time: README)"),
            "paper": Budget("paper", "movi-e-paper", "the release's recipe (GPUs, days); needs --data"),
        },  # fmt: skip
        data=_movi_e_data,
        paper_config="movi-e-paper",
        rows=ROWS,
        shipped=Path("checkpoints/movi-e-standin/model"),
    ),
    "clevr": TableSpec(
        standin_text="CLEVR-like scenes in the converted CLEVR-with-masks layout (and CLEVRTex-like ones for LSD-Mix)",
        name="clevr",
        title="CLEVR reproduction (LSD against LSD-Mix)",
        dataset="CLEVR",
        paper_dataset="clevr",
        metrics="FG-ARI, ARI, mBO, mIoU (object- and image-averaged); probes: colour, material, shape, size, x, y, z, "
        "pixel coordinates, rotation; LSD-Mix (trained on CLEVR + CLEVRTex) on the same images",
        baselines_text="colour k-means, colour+position k-means (k = slot count), 3x3 grid",
        paper_columns="the CLEVR analysis: mBO, mIoU, FID of LSD (CLEVR) and LSD-Mix; shape and material accuracy "
        "of the property table whose dataset the source does not name (CLEVR or CLEVRTex)",
        budgets=standin_budgets("clevr-paper", cpu_steps=1000, cpu_note=", twice (LSD and LSD-Mix)"),
        data=_reader_data("clevr", "clevr"),
        paper_config="clevr-paper",
        rows=_CLEVR_ROWS,
        extras=(_clevr_mix,),
    ),  # fmt: skip
    "clevrtex": TableSpec(
        standin_text="textured scenes in the CLEVRTex layout",
        name="clevrtex",
        title="CLEVRTex reproduction",
        dataset="CLEVRTex",
        paper_dataset="clevrtex",
        metrics="FG-ARI, ARI, mBO, mIoU (object- and image-averaged; the LSD release's 240 px centre crop); probes: "
        "colour, material, shape, size, pixel coordinates, rotation",
        baselines_text="colour k-means, colour+position k-means (k = slot count), 3x3 grid",
        paper_columns="mIoU of LSD / SLATE / SLATE+ (FG-ARI, mBO n/r); shape and material accuracy of the property "
        "table whose dataset the source does not name (CLEVR or CLEVRTex)",
        budgets=standin_budgets("clevrtex-paper"),
        data=_reader_data("clevrtex", "clevrtex"),
        paper_config="clevrtex-paper",
        rows=(*SEGMENTATION_ROWS, *_with_unnamed_properties(probe_rows(CLEVRTEX_PROBES, _SHORT))),
    ),  # fmt: skip
    "ffhq": TableSpec(
        standin_text="synthetic faces built from 7 parts in the FFHQ layout, part labels beside",
        name="ffhq",
        title="FFHQ reproduction (face parts)",
        dataset="FFHQ",
        paper_dataset="ffhq",
        metrics="part segmentation (FG-ARI, mBO, mIoU over face parts; stand-in only: real FFHQ has no part "
        "labels) and face-part swapping (success in the part, rest kept)",
        baselines_text="colour k-means, colour+position k-means (k = slot count), 3x3 grid",
        paper_columns="FID of LSD / SLATE / SLATE+ (the generation table measures ours)",
        budgets=_ffhq_budgets(),
        data=_ffhq_data,
        paper_config="ffhq-paper",
        rows=_FFHQ_ROWS,
        extras=(_ffhq_part_swaps,),
    ),  # fmt: skip
    "coco": TableSpec(
        standin_text="synthetic scenes as COCO instances (amodal, overlapping masks; crowds)",
        name="coco",
        title="COCO reproduction (object discovery; the paper's model: Stable-LSD)",
        dataset="COCO 2017",
        paper_dataset="coco",
        metrics="FG-ARI and ARI with pixels of overlapping instances ignored, mBO / mIoU over instance masks "
        "(mBO^i) and over class masks (mBO^c, mIoU^c; DINOSAUR-style masks: short side 320, centre crop); guidance "
        "samples at the release's scales (Stable-LSD only)",
        baselines_text="colour k-means, colour+position k-means (k = slot count), 3x3 grid",
        paper_columns="FG-ARI of Stable-LSD and DINOSAUR; anchors: CODA, SPOT, DINOSAUR, FT-DINOSAUR, LSD and "
        "SlotDiffusion as evaluated by others (FG-ARI, mBO^i, mBO^c, mIoU^i, mIoU^c, image-averaged)",
        budgets=standin_budgets("coco-paper"),
        data=_coco_data,
        paper_config="coco-paper",
        rows=_COCO_ROWS,
        extras=(_coco_guidance,),
    ),  # fmt: skip
}


def table_names() -> list[str]:
    """Every table with a reproduction, in the paper's order, the generation table last."""
    return ["movi-c", "movi-e", "clevr", "clevrtex", "ffhq", "coco", "generation"]
