"""The reproduction runner: every paper table is a :class:`TableSpec` run through the same phases.

Phases (each a function of this module, called in order by :func:`run_table`):

1. :func:`data_phase`: the data. Real data (``--data``, in the dataset's own layout) or, without
   it, a stand-in written in that same layout and read back by the real reader
   (:mod:`lsd.data.standins`). Returns a :class:`DataPlan`: what training reads and how to open
   the held-out split.
2. :func:`train_phase`: the models. Train at the budget (a shipped training config, the data
   plan's ``data.*`` fields, this run's seed and the user's ``--set``), or load ``--checkpoint``;
   plus the shipped stand-in checkpoint where a table has one.
3. :func:`evaluate_phase`: every model and every learning-free baseline (colour k-means and
   colour+position k-means at each model's slot count, a 3x3 grid) on the same held-out images,
   through :func:`lsd.evaluation.evaluate` / :func:`~lsd.evaluation.evaluate_segmenter`.
4. The table's own extra phases (:attr:`TableSpec.extras`: CLEVR's LSD-Mix model, FFHQ's part
   swaps, COCO's guidance samples), each adding methods, results and figures.
5. :func:`report_phase`: ``table.md`` / ``table.csv`` (metrics as rows, every method a column,
   the paper's numbers in their own columns with provenance), ``results.json`` and figures; a
   terminal table with methods as rows that fits in 100 columns.

Every output says whether it was measured on a stand-in or on real data. Determinism: training
keys its randomness by (seed, step, image), the evaluation's slot noise and the baselines by
(seed, image index); two runs with the same seed on the same machine give identical metrics.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from lsd._atomic import check_output_dir, write_text_atomic

BUDGET_NAMES = ("smoke", "cpu", "paper")


@dataclass(frozen=True)
class Budget:
    """How much a budget trains and how thoroughly it evaluates.

    ``train_config``: a shipped training config (:func:`lsd.training.config.load_train_config`);
    ``train_overrides``: ``section.field=value`` applied to it before the user's ``--set``.
    ``num_train`` / ``num_validation``: the stand-in's split sizes (ignored on real data).
    ``eval_images``: held-out images evaluated (None: the whole split).
    """

    name: str
    train_config: str
    description: str
    train_overrides: tuple[str, ...] = ()
    num_train: int = 2000
    num_validation: int = 200
    eval_images: int | None = None
    probe_steps: int = 4000
    kmeans_restarts: int = 3
    sample_steps: int = 25
    figure_images: int = 4


@dataclass
class RunOptions:
    """The command line's flags (``reproductions/<table>.py --help``)."""

    output: Path
    data: Path | None = None
    checkpoint: Path | None = None
    budget: str = "cpu"
    seed: int = 42
    shipped: Path | None = None  # a stand-in checkpoint evaluated beside the new run
    cache: Path = Path("data")  # where stand-ins are generated
    overrides: list[str] = field(default_factory=list)  # `--set section.field=value` for training
    device: str | None = None
    progress: bool = True
    mask_resolution: int | None = None  # GT size scored at: None = native (the reader's), else N (N x N centre crop)


@dataclass
class DataPlan:
    """What the data phase decided.

    ``train_overrides``: the ``data.*`` fields of the training config (where the training split
    is and which reader reads it). ``open_eval(resolution)``: the held-out labelled dataset at a
    model's input size. ``record``: what ``results.json`` says about the data (``kind`` starts
    with ``"stand-in"`` on a stand-in). ``folders``: extra folders a table's phases use (e.g.
    the second stand-in of CLEVR's LSD-Mix).
    """

    standin: bool
    train_overrides: list[str]
    open_eval: Callable[[int], Any]
    record: dict[str, Any]
    folders: dict[str, Path] = field(default_factory=dict)


@dataclass
class Method:
    """One evaluated model: its table label, role (``trained``, ``checkpoint``, ``shipped``,
    ``extra``), the model and what ``results.json`` records beside its metrics."""

    label: str
    role: str
    model: Any
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunState:
    """Everything the phases have produced so far (passed to a table's extra phases)."""

    spec: TableSpec
    opts: RunOptions
    budget: Budget
    output: Path
    plan: DataPlan
    models: list[Method] = field(default_factory=list)
    train_config: Any = None
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    dataset: Any = None
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    predictions: dict[str, tuple[torch.Tensor, int]] = field(default_factory=dict)
    examples: dict[str, torch.Tensor] | None = None
    figures: dict[str, str | None] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)  # extra phases' records
    notes: list[str] = field(default_factory=list)  # lines under the table (what was not run, and why)

    @property
    def tag(self) -> str:
        return " (stand-in)" if self.plan.standin else ""

    @property
    def device(self) -> str:
        return self.opts.device or ("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class TableSpec:
    """One paper table: what it measures, on which data, with which models, against what.

    ``data``: the data phase for this table (``(spec, opts, budget) -> DataPlan``).
    ``rows``: the table's rows (:class:`lsd.reproduction.table.MetricRow`), ours beside the paper's.
    ``paper_dataset``: its key in ``paper_numbers.json``.
    ``extras``: phases run after the evaluation (``RunState -> None``), in order.
    ``shipped``: the stand-in checkpoint evaluated beside a new run by default (None: none is shipped).
    """

    name: str
    title: str
    dataset: str
    paper_dataset: str
    metrics: str
    baselines_text: str
    paper_columns: str
    budgets: dict[str, Budget]
    data: Callable[[TableSpec, RunOptions, Budget], DataPlan]
    rows: tuple[Any, ...]
    paper_config: str | None = None
    extras: tuple[Callable[[RunState], None], ...] = ()
    shipped: Path | None = None
    baselines: bool = True
    standin_text: str = ""

    def describe(self, width: int = 100) -> str:
        """A few lines for ``--list`` and the script's ``--help`` (wrapped to ``width``)."""
        if self.shipped:
            shipped = f"shipped stand-in checkpoint: reproductions/{self.shipped}"
        else:
            shipped = "no shipped stand-in checkpoint"
        lines = [
            f"data: {self.dataset} in its real layout (--data), else {self.standin_text or 'its stand-in'}",
            f"measures: {self.metrics}",
            f"beside: {self.baselines_text}; {shipped}",
            f"paper columns: {self.paper_columns}",
            f"paper recipe: lsd/configs/train/{self.paper_config}.json" if self.paper_config else "paper recipe: none",
        ]
        body = [textwrap.fill(line, width, initial_indent="  ", subsequent_indent="    ") for line in lines]
        return "\n".join([f"{self.name}: {self.title}", *body])


# --------------------------------------------------------------------------------------------
# training logs
# --------------------------------------------------------------------------------------------


def read_train_log(path: Path) -> list[dict[str, Any]]:
    """Records of a ``train_log.jsonl`` (empty when missing)."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {number}: not JSON ({err})") from err
    return records


def learning_rate_phases(records: list[dict[str, Any]], rel_tol: float = 1e-6) -> list[dict[str, Any]]:
    """The learning rate of a training log as phases: runs of logged records whose rate is
    constant, rising or falling.

    Each phase is ``{"kind": "constant" | "rising" | "falling", "first_step", "last_step",
    "first_lr", "last_lr"}`` (steps and rates of its first and last logged record; consecutive
    phases share their boundary record). Records without ``lr`` are skipped; an empty log gives [].
    """
    logged = [(int(r["step"]), float(r["lr"])) for r in records if "lr" in r]
    phases: list[dict[str, Any]] = []
    for (step0, lr0), (step1, lr1) in itertools.pairwise(logged):
        if abs(lr1 - lr0) <= rel_tol * max(abs(lr0), abs(lr1)):
            kind = "constant"
        else:
            kind = "rising" if lr1 > lr0 else "falling"
        if phases and phases[-1]["kind"] == kind:
            phases[-1].update(last_step=step1, last_lr=lr1)
        else:
            phases.append({"kind": kind, "first_step": step0, "last_step": step1, "first_lr": lr0, "last_lr": lr1})
    if not phases and logged:
        step, lr = logged[0]
        phases.append({"kind": "constant", "first_step": step, "last_step": step, "first_lr": lr, "last_lr": lr})
    return phases


def slot_diagnostic(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Summary of the "does the decoder use its slots" diagnostic in a training log.

    Averages the last quarter (at least one) of the last stage's records that carry it: the
    denoising loss with each image's own slots and with slots shuffled across the batch, and their
    ratio (> 1: the decoder uses the slots). A stage starts where the record's ``stage`` changes or
    its step counter restarts (a run continued with ``init_from``); stages may train other
    networks on other losses, so their losses are not averaged together. ``curve`` keeps every
    stage. None when the log has no diagnostic.
    """
    diag = [r for r in records if "loss_right_slots" in r and "loss_shuffled_slots" in r]
    if not diag:
        return None
    first = max(
        (i for i in range(1, len(diag)) if diag[i].get("stage") != diag[i - 1].get("stage") or diag[i]["step"] <= diag[i - 1]["step"]),
        default=0,
    )  # fmt: skip
    stage = diag[first:]
    tail = stage[-max(1, len(stage) // 4) :]
    right = sum(r["loss_right_slots"] for r in tail) / len(tail)
    shuffled = sum(r["loss_shuffled_slots"] for r in tail) / len(tail)
    return {
        "steps_averaged": [r["step"] for r in tail],
        "loss_right_slots": right,
        "loss_shuffled_slots": shuffled,
        "shuffled_over_right": shuffled / right if right > 0 else None,
        "curve": [
            {"step": r["step"], "right": r["loss_right_slots"], "shuffled": r["loss_shuffled_slots"]} for r in diag
        ],
    }


# --------------------------------------------------------------------------------------------
# 1. data
# --------------------------------------------------------------------------------------------


def check_options(spec: TableSpec, opts: RunOptions) -> Budget:
    """The budget of ``opts``, after checking every flag (before any compute)."""
    budget = spec.budgets.get(opts.budget)
    if budget is None:
        raise ValueError(f"unknown budget {opts.budget!r}; expected one of {', '.join(spec.budgets)}")
    if budget.name == "paper" and opts.data is None and opts.checkpoint is None:
        raise ValueError(
            f"--budget paper trains the paper's recipe on real {spec.dataset}: give --data DIR (its real layout)"
        )
    if opts.data is not None and not Path(opts.data).is_dir():
        raise FileNotFoundError(f"--data {opts.data}: no such folder (expected {spec.dataset} in its real layout)")
    if opts.checkpoint is not None and not Path(opts.checkpoint).exists():
        raise FileNotFoundError(f"--checkpoint {opts.checkpoint}: no such file or folder")
    if opts.shipped is not None and not (Path(opts.shipped) / "lsd_config.json").is_file():
        raise FileNotFoundError(f"shipped checkpoint {opts.shipped}: no lsd_config.json (not an lsd model folder)")
    if not isinstance(opts.seed, int) or isinstance(opts.seed, bool) or not 0 <= opts.seed < 2**32:
        raise ValueError(f"--seed {opts.seed!r}: must be an integer in [0, 2**32)")
    return budget


def data_phase(spec: TableSpec, opts: RunOptions, budget: Budget) -> DataPlan:
    """Phase 1: the table's data plan (real data with ``--data``, else its stand-in)."""
    return spec.data(spec, opts, budget)


def standin_plan(
    kind: str, reader: str, opts: RunOptions, budget: Budget, *, train_extra: tuple[str, ...] = (), seed: int = 0
) -> DataPlan:
    """A data plan over the stand-in ``kind`` (:func:`lsd.data.standins.write_standin`, cached
    under ``opts.cache``), trained on its train split and evaluated on its validation split
    through the real reader ``reader``."""
    from lsd.data.readers import open_dataset
    from lsd.data.standins import StandinSpec, read_standin_spec, standin_reader_root, write_standin

    standin = StandinSpec(kind=kind, num_train=budget.num_train, num_validation=budget.num_validation, seed=seed)
    folder = write_standin(Path(opts.cache), standin, progress=opts.progress)
    root = standin_reader_root(folder)
    overrides = ["data.kind=dataset", f"data.dataset={reader}", f"data.root={root}", "data.split=train"]
    overrides += list(train_extra)
    return DataPlan(
        standin=True,
        train_overrides=overrides,
        open_eval=lambda resolution: open_dataset(reader, root, split="validation", resolution=resolution),
        record={
            "kind": f"stand-in (not {reader}): {kind} scenes in the real {reader} layout",
            "folder": str(folder),
            "reader": reader,
            "spec": asdict(read_standin_spec(folder)),
        },  # fmt: skip
        folders={"standin": folder},
    )


def real_plan(reader: str, opts: RunOptions, *, train_overrides: list[str] | None = None) -> DataPlan:
    """A data plan over real data in ``opts.data``: trained on the reader's train split (or on
    ``train_overrides``, e.g. the release's glob and portion), evaluated on its validation split."""
    from lsd.data.readers import open_dataset

    root = Path(opts.data)
    if train_overrides is None:
        train_overrides = ["data.kind=dataset", f"data.dataset={reader}", f"data.root={root}", "data.split=train"]
    return DataPlan(
        standin=False,
        train_overrides=train_overrides,
        open_eval=lambda resolution: open_dataset(reader, root, split="validation", resolution=resolution),
        record={"kind": reader, "folder": str(root), "split": "validation"},
    )


# --------------------------------------------------------------------------------------------
# 2. training
# --------------------------------------------------------------------------------------------


def train_config_of(opts: RunOptions, budget: Budget, plan: DataPlan, output_dir: Path, extra: list[str] = ()):
    """The training config of a run: the budget's shipped config and overrides, this run's seed and
    output folder, the data plan's ``data.*`` fields, then ``extra`` and the user's ``--set``."""
    from lsd.training.config import load_train_config

    overrides = [*budget.train_overrides, f"output_dir={output_dir}", f"train.seed={opts.seed}"]
    overrides += list(plan.train_overrides) + list(extra) + list(opts.overrides)
    return load_train_config(budget.train_config, overrides)


def check_resumable(train_config) -> None:
    """An output folder already holding a training run may only be resumed by the same recipe
    (any ``train.max_steps``): otherwise this run's numbers would mix two configurations."""
    from lsd.runs import list_checkpoints
    from lsd.training.trainer import same_model_config

    found = list_checkpoints(train_config.output_dir)
    if not found:
        return
    saved = json.loads((found[-1] / "train_config.json").read_text())
    current = train_config.to_dict()
    differs = [] if same_model_config(saved.get("model"), current["model"]) else ["model"]
    for section, values in current.items():
        if isinstance(values, dict) and section not in ("checkpoint", "validation"):
            differs += [
                f"{section}.{key}"
                for key, value in values.items()
                if (section, key) != ("train", "max_steps") and saved.get(section, {}).get(key) != value
            ]
    if differs:
        raise ValueError(
            f"{train_config.output_dir} holds a training run with different settings ({', '.join(differs)}); "
            "choose another --output or remove that folder"
        )


def train_model(train_config, progress: bool = True):
    """Train (or resume the same recipe in) ``train_config.output_dir``; returns ``(model, result,
    log)``, or None on a non-main process of a multi-process run. ``progress``: the trainer's bar."""
    from lsd.models.lsd import LatentSlotDiffusion
    from lsd.training.trainer import train

    check_resumable(train_config)
    result = train(train_config, resume="latest", progress=progress)
    if int(os.environ.get("RANK", "0")) != 0:
        return None  # multi-process training: the main process evaluates
    if result.checkpoint is None:
        raise RuntimeError(f"training into {result.output_dir} saved no checkpoint")
    model = LatentSlotDiffusion.from_pretrained(result.checkpoint / "model")
    return model, result, read_train_log(Path(train_config.output_dir) / "train_log.jsonl")


def load_any_checkpoint(path: Path):
    """An lsd model folder, an lsd training checkpoint or a release checkpoint: ``(model, kind,
    folder)`` (``folder``: the model folder that was read)."""
    from lsd.models.lsd import LatentSlotDiffusion
    from lsd.runs import resolve_checkpoint

    kind, folder = resolve_checkpoint(path)
    if kind == "release":
        from lsd.official import load_official_checkpoint

        return load_official_checkpoint(folder, vae=None), kind, folder
    return LatentSlotDiffusion.from_pretrained(folder), kind, folder


def train_phase(state: RunState) -> bool:
    """Phase 2: train at the budget (or load ``--checkpoint``), plus the shipped checkpoint.
    Returns False on a non-main process of a multi-process run (which stops there)."""
    from lsd.models.lsd import LatentSlotDiffusion

    opts, tag = state.opts, state.tag
    if opts.checkpoint is None:
        state.train_config = train_config_of(opts, state.budget, state.plan, state.output / "train")
        trained = train_model(state.train_config, progress=opts.progress)
        if trained is None:
            return False
        model, result, log = trained
        label = f"LSD trained now{tag}"
        state.logs[label] = log
        extra = {"checkpoint": str(result.checkpoint), "steps": result.step, "diagnostic": slot_diagnostic(log),
                 "model_folder": str(result.checkpoint / "model")}  # fmt: skip
        state.models.append(Method(label, "trained", model, extra))
    else:
        model, kind, folder = load_any_checkpoint(Path(opts.checkpoint))
        label = f"LSD checkpoint {Path(opts.checkpoint).name}{tag}"
        state.models.append(Method(label, "checkpoint", model, {"kind": kind, "model_folder": str(folder)}))
    if state.plan.standin and opts.shipped is not None:
        shipped = LatentSlotDiffusion.from_pretrained(opts.shipped)
        folder = Path(opts.shipped)  # a model folder, or `model/` inside a training checkpoint
        log = read_train_log(folder / "train_log.jsonl") or read_train_log(folder.parent / "train_log.jsonl")
        label = f"LSD shipped checkpoint{tag}"
        if log:
            state.logs[label] = log
        extra = {"checkpoint": str(opts.shipped), "diagnostic": slot_diagnostic(log), "model_folder": str(folder)}
        state.models.append(Method(label, "shipped", shipped, extra))
    elif state.plan.standin and state.spec.shipped is None:
        state.notes.append(
            f"No stand-in checkpoint is shipped for {state.spec.name}: only the model trained now is shown."
        )
    return True


# --------------------------------------------------------------------------------------------
# 3. evaluation
# --------------------------------------------------------------------------------------------


def _record(result, label: str, role: str, **extra: Any) -> dict[str, Any]:
    return {"label": label, "role": role, **extra, **result.to_dict()}


def evaluate_model(state: RunState, method: Method) -> None:
    """Score one model on the held-out images (adds its record and its example predictions)."""
    from lsd.evaluation.evaluate import evaluate

    budget = state.budget
    result = evaluate(
        method.model, state.dataset, seed=state.opts.seed, probe_steps=budget.probe_steps,
        max_images=budget.eval_images, device=state.device, num_examples=budget.figure_images,
        progress=state.opts.progress, mask_resolution=state.opts.mask_resolution,
    )  # fmt: skip
    state.methods[method.label] = _record(result, method.label, method.role, **method.extra)
    state.predictions[method.label] = (result.examples["pred"], result.num_slots)
    if state.examples is None:
        state.examples = result.examples


def segment_unlabelled(state: RunState) -> None:
    """Held-out images without labels (real FFHQ has no part masks): nothing can be scored, so
    each model segments the first images for the figures and a note says so."""
    from lsd.generation.decoding import segment_images

    count = min(state.budget.figure_images, len(state.dataset))
    pixels = torch.stack([state.dataset[i]["pixel_values"] for i in range(count)])
    state.examples = {"pixel_values": pixels, "masks": None}
    for method in state.models:
        segmentation = segment_images(method.model, pixels.to(method.model.device), state.opts.seed, range(count))
        num_slots = method.model.slot_attention.config.num_slots
        state.methods[method.label] = {"label": method.label, "role": method.role, **method.extra, "metrics": {},
                                       "num_images": len(state.dataset), "num_slots": num_slots}  # fmt: skip
        state.predictions[method.label] = (segmentation.cpu(), num_slots)
    state.notes.append(f"The held-out {state.spec.dataset} images have no labels: no segmentation score, figures only.")


def baseline_segmenters(counts: list[int], restarts: int, seed: int) -> dict[str, tuple[Callable, int]]:
    """The learning-free baselines at each segment count: colour k-means, colour+position k-means
    (k = each evaluated model's slot count) and a 3x3 grid; label -> (segmenter, segments)."""
    from lsd.baselines import grid_segmentation, kmeans_segmentation

    baselines: dict[str, tuple[Callable, int]] = {}
    for count in counts:
        baselines[f"k-means RGB, k={count}"] = (
            lambda px, idx, k=count: kmeans_segmentation(px, k, restarts=restarts, seed=seed, indices=idx),
            count,
        )
    for count in counts:
        baselines[f"k-means RGB+xy, k={count}"] = (
            lambda px, idx, k=count: kmeans_segmentation(
                px, k, position_weight=1.0, restarts=restarts, seed=seed, indices=idx
            ),  # fmt: skip
            count,
        )
    baselines["grid 3x3"] = (lambda px, idx: grid_segmentation(px.shape[0], px.shape[-2], px.shape[-1], 3, 3), 9)
    return baselines


def evaluate_phase(state: RunState) -> None:
    """Phase 3: every model, then the baselines, on the same held-out images."""
    from lsd.evaluation.evaluate import evaluate_segmenter
    from lsd.evaluation.loading import input_resolution

    state.dataset = state.plan.open_eval(input_resolution(state.models[0].model))
    if not hasattr(state.dataset, "max_num_objects"):  # unlabelled held-out images (real FFHQ)
        segment_unlabelled(state)
        return
    for method in state.models:
        evaluate_model(state, method)
    if not state.spec.baselines:
        return
    counts = sorted({m.model.slot_attention.config.num_slots for m in state.models})
    for label, (segmenter, count) in baseline_segmenters(counts, state.budget.kmeans_restarts, state.opts.seed).items():
        result = evaluate_segmenter(
            segmenter, state.dataset, num_segments=count, batch_size=32, max_images=state.budget.eval_images,
            num_examples=state.budget.figure_images, progress=state.opts.progress, description=label,
            mask_resolution=state.opts.mask_resolution,
        )  # fmt: skip
        state.methods[label] = _record(result, label, "baseline")
        state.predictions[label] = (result.examples["pred"], count)


# --------------------------------------------------------------------------------------------
# 5. report
# --------------------------------------------------------------------------------------------


def reconstruct(model, pixel_values: torch.Tensor, seed: int, steps: int) -> torch.Tensor:
    """Decode each image's slots back to an image (DPM-Solver++, ``steps`` steps); ``(n, 3, R, R)`` in [-1, 1]."""
    from lsd.generation.decoding import encode_images  # the evaluation's per-image slot noise
    from lsd.pipelines import LSDPipeline

    slots = encode_images(model, pixel_values, seed, range(pixel_values.shape[0])).slots
    generator = torch.Generator(device=model.device).manual_seed(seed)
    pipe = LSDPipeline.from_model(model)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(slots=slots, num_inference_steps=steps, generator=generator, output_type="pt").images
    return (images * 2 - 1).float().cpu()  # [0, 1] -> [-1, 1]


def figures_phase(state: RunState) -> None:
    """Segmentations of every method, training curves, and reconstructions of every model with a decoder."""
    from lsd.figures import plot_reconstructions, plot_segmentation_comparison, plot_training_curves

    ex, out = state.examples, state.output
    plot_segmentation_comparison(ex["pixel_values"], ex["masks"], state.predictions, out / "segmentations.png")
    state.figures["segmentations"] = "segmentations.png"
    state.figures.setdefault("training_curve", None)
    if state.logs:
        plot_training_curves(state.logs, out / "training_curve.png")
        state.figures["training_curve"] = "training_curve.png"
    from tqdm.auto import tqdm

    decoders = [m for m in state.models if m.model.vae is not None]
    recons = {
        m.label: reconstruct(m.model, ex["pixel_values"], state.opts.seed, state.budget.sample_steps)
        for m in tqdm(decoders, desc="reconstructions", unit="model", disable=not state.opts.progress)
    }
    state.figures["reconstructions"] = None
    if recons:
        plot_reconstructions(ex["pixel_values"], recons, out / "reconstructions.png")
        state.figures["reconstructions"] = "reconstructions.png"


def heading(state: RunState) -> str:
    """The first lines of ``table.md``: which table, on what data, at which budget and seed."""
    spec, standin = state.spec, state.plan.standin
    where = f"stand-in: not {spec.dataset}" if standin else f"{spec.dataset}, validation split"
    ours = " are measured on the stand-in and" if standin else ""
    return (
        f"# {spec.title} ({where})\n\n"
        f"budget `{state.budget.name}`, seed {state.opts.seed}. Our columns{ours} sit beside the paper's "
        "(own columns, provenance last; n/r = not recovered). Percentages x100.\n\n"
    )


def budget_record(state: RunState) -> dict[str, Any]:
    """The budget as ``results.json`` records it: the split sizes are the ones the data phase used
    (a table's stand-in may have its own; real data has its own), not the budget's defaults."""
    record = asdict(state.budget)
    spec = state.plan.record.get("spec") or {}
    for key in ("num_train", "num_validation"):
        if state.plan.standin and key in spec:
            record[key] = spec[key]
        elif not state.plan.standin:
            record.pop(key)
    return record


def report_phase(state: RunState, start: float) -> dict[str, Any]:
    """Phase 5: table.md, table.csv, results.json; the terminal table. Returns the results record."""
    from lsd.evaluation.report import versions
    from lsd.reproduction.table import TERMINAL_WIDTH, anchor_notes, results_table, to_markdown, to_terminal
    from lsd.reproduction.verdict import verdict_notes

    spec, out = state.spec, state.output
    state.notes += verdict_notes(state.methods, state.budget.name)
    table = results_table(state.methods, spec.paper_dataset, spec.rows)
    label = "stand-in" if state.plan.standin else "real"
    anchors = "".join(f"# {line}\n" for line in anchor_notes(table))
    write_text_atomic(out / "table.csv", f"# data: {label}\n{anchors}" + table.to_csv(float_format="%.4f"))
    notes = "".join(f"- {line}\n" for line in [*state.notes, *anchor_notes(table)])
    write_text_atomic(out / "table.md", heading(state) + to_markdown(table) + "\n" + (f"\n{notes}" if notes else ""))
    record = {
        "task": spec.name,
        "data_label": label,
        "data": state.plan.record,
        "budget": budget_record(state),
        "seed": state.opts.seed,
        "mask_resolution": state.opts.mask_resolution or "native",
        "anchors": table.attrs.get("anchors", {}),
        "train_config": state.train_config.to_dict() if state.train_config is not None else None,
        "methods": state.methods,
        **({"results": state.results} if state.results else {}),  # the extra phases' records
        "notes": state.notes,
        "figures": state.figures,
        "versions": versions(),
        "machine": {
            "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "device": str(state.models[0].model.device) if state.models else state.device,
        },  # fmt: skip
        "wall_seconds": time.perf_counter() - start,
    }
    write_text_atomic(out / "results.json", json.dumps(record, indent=2, default=str) + "\n")
    print(heading(state).splitlines()[0])
    print(to_terminal(table))
    for line in state.notes:
        print(textwrap.fill(line, TERMINAL_WIDTH, subsequent_indent="  "))
    print(f"results.json, table.md, table.csv and figures in {record['wall_seconds']:.0f} s:\n{out}")
    return record


def run_table(spec: TableSpec, opts: RunOptions) -> dict[str, Any]:
    """Run every phase of ``spec`` (see the module docstring); returns the ``results.json`` record."""
    start = time.perf_counter()
    budget = check_options(spec, opts)
    output = check_output_dir(opts.output, "--output")  # before any compute
    output.mkdir(parents=True, exist_ok=True)
    state = RunState(spec, opts, budget, output, data_phase(spec, opts, budget))
    if not train_phase(state):
        return {}
    evaluate_phase(state)
    for extra in spec.extras:
        extra(state)
    figures_phase(state)
    return report_phase(state, start)


__all__ = [
    "BUDGET_NAMES", "Budget", "DataPlan", "Method", "RunOptions", "RunState", "TableSpec", "baseline_segmenters",
    "budget_record", "check_options", "check_resumable", "data_phase", "evaluate_model", "evaluate_phase", "figures_phase",
    "learning_rate_phases", "load_any_checkpoint", "real_plan", "read_train_log", "reconstruct", "report_phase",
    "run_table", "slot_diagnostic", "standin_plan", "train_config_of", "train_model", "train_phase",
]  # fmt: skip
