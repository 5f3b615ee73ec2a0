"""Reproduce the MOVi-E table: object segmentation (FG-ARI, mBO, mIoU) and property prediction.

One function, :func:`reproduce_movi_e`, runs the whole job; ``reproductions/movi_e.py`` and
``nox -s reproduce-movi-e`` are its command line.

- With ``data`` (the release's MOVi dump): train at the chosen budget on MOVi-E's training
  frames and evaluate on its validation split, or evaluate ``checkpoint`` (ours or the
  release's) without training.
- Without ``data``: the embedded synthetic stand-in (:mod:`lsd.data.synthetic`, generated once
  into ``cache``) in the MOVi layout, read by the real MOVi reader. The run trains from scratch
  at the budget and evaluates that model, the shipped stand-in checkpoint (trained longer by the
  same pipeline) and two baselines that need no learning (colour k-means, a fixed grid) on the
  same held-out scenes (k-means with k = the slot count of each evaluated model). Every stand-in
  number is labelled as such.

Outputs in ``output``: ``results.json`` (every metric, the configs, seed, versions, wall time),
``table.md`` / ``table.csv`` (our columns beside the paper's, with provenance), and the figures
``segmentations.png``, ``reconstructions.png`` and ``training_curve.png``.

Determinism: training keys all randomness by (seed, step, image) (:mod:`lsd.training`), the
evaluation seeds each image's slot noise by (seed, image index) and the baselines by (seed,
image index); two runs with the same seed on the same machine give identical metrics.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from lsd._atomic import check_output_dir, write_text_atomic

#: How much each budget trains and evaluates.
BUDGET_NAMES = ("smoke", "cpu", "paper")


@dataclass(frozen=True)
class Budget:
    """What a budget trains (a shipped training config) and how thoroughly it evaluates."""

    name: str
    train_config: str
    eval_images: int | None  # None: the whole validation split
    probe_steps: int
    kmeans_restarts: int
    sample_steps: int
    figure_images: int
    description: str


BUDGETS = {
    "smoke": Budget(
        "smoke", "synth-smoke", 16, 50, 1, 5, 2, "CI check of the whole pipeline (minutes): numbers mean nothing"
    ),
    "cpu": Budget(
        "cpu",
        "synth-cpu",
        None,
        4000,
        3,
        25,
        4,
        "the default: 1,500 steps from scratch, 7 to 14 minutes on 2 CPU cores",
    ),
    "paper": Budget("paper", "movi-e-paper", None, 4000, 3, 25, 4, "the release's recipe (GPUs, days); needs --data"),
}


@dataclass
class ReproduceOptions:
    """Arguments of :func:`reproduce_movi_e` (the command line's flags)."""

    output: Path
    data: Path | None = None
    checkpoint: Path | None = None
    budget: str = "cpu"
    seed: int = 42
    shipped: Path | None = None  # the stand-in checkpoint to evaluate beside the new run
    cache: Path = Path("data")
    overrides: list[str] = field(default_factory=list)  # `--set section.field=value` for training
    device: str | None = None
    progress: bool = True


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

    Averages the last quarter (at least one) of the records that carry it: the denoising loss
    with each image's own slots and with slots shuffled across the batch, and their ratio
    (> 1: the decoder uses the slots). None when the log has no diagnostic.
    """
    diag = [r for r in records if "loss_right_slots" in r and "loss_shuffled_slots" in r]
    if not diag:
        return None
    tail = diag[-max(1, len(diag) // 4) :]
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


def _check_options(opts: ReproduceOptions, budget: Budget) -> None:
    if budget.name == "paper" and opts.data is None and opts.checkpoint is None:
        raise ValueError(
            "--budget paper trains the release's recipe on real MOVi-E: give --data DIR (the release's MOVi dump)"
        )
    if opts.data is not None and not Path(opts.data).is_dir():
        raise FileNotFoundError(f"--data {opts.data}: no such folder (expected the release's MOVi dump)")
    if opts.checkpoint is not None and not Path(opts.checkpoint).exists():
        raise FileNotFoundError(f"--checkpoint {opts.checkpoint}: no such file or folder")
    if opts.shipped is not None and not (Path(opts.shipped) / "lsd_config.json").is_file():
        raise FileNotFoundError(f"shipped checkpoint {opts.shipped}: no lsd_config.json (not an lsd model folder)")


def _train_config(opts: ReproduceOptions, budget: Budget):
    """The training config of this run: the budget's shipped config, this run's seed and output,
    the stand-in cache (or the real data), then the user's ``--set`` overrides."""
    from lsd.training.config import load_train_config

    overrides = [f"output_dir={opts.output / 'train'}", f"train.seed={opts.seed}"]
    if opts.data is None:
        overrides.append(f"data.root={opts.cache}")
    else:
        base = load_train_config(budget.train_config)
        images = Path(opts.data) / "movi-e" / "movi-e-train-with-label" / "images"
        if not images.is_dir():
            raise FileNotFoundError(f"--data {opts.data}: no {images} (the release's MOVi-E training frames)")
        overrides += ["data.kind=glob", f"data.root={images}", "data.pattern=**/*.png"]
        if base.data.kind == "synth":  # a CPU budget on real frames: the split rule of the release
            overrides.append("data.portion=[0.0, 0.9]")
    return load_train_config(budget.train_config, overrides + list(opts.overrides))


def _check_resumable(train_config) -> None:
    """An output folder already holding a training run may only be resumed by the same recipe
    (any ``train.max_steps``): otherwise this run's numbers would mix two configurations."""
    from lsd.training.trainer import list_checkpoints, same_model_config

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


def _standin_folder(train_config) -> Path:
    """The stand-in dataset the training config names (generated on first use)."""
    from lsd.training.data import synth_dataset_dir

    return synth_dataset_dir(train_config.data)


def _lsd_record(result, label: str, role: str, **extra: Any) -> dict[str, Any]:
    return {"label": label, "role": role, **extra, **result.to_dict()}


def _reconstruct(model, pixel_values: torch.Tensor, seed: int, steps: int) -> torch.Tensor:
    """Decode each image's slots back to an image (DPM-Solver++, ``steps`` steps); ``(n, 3, R, R)``."""
    from lsd.generation.decoding import encode_images  # the evaluation's per-image slot noise
    from lsd.pipelines import LSDPipeline

    slots = encode_images(model, pixel_values, seed, range(pixel_values.shape[0])).slots
    generator = torch.Generator(device=model.device).manual_seed(seed)
    pipe = LSDPipeline.from_model(model)
    pipe.set_progress_bar_config(disable=True)
    images = pipe(slots=slots, num_inference_steps=steps, generator=generator, output_type="pt").images
    return (images * 2 - 1).float().cpu()  # [0, 1] -> [-1, 1]


def reproduce_movi_e(opts: ReproduceOptions) -> dict[str, Any]:
    """Run the MOVi-E reproduction described in the module docstring; returns the ``results.json`` record."""
    from lsd.baselines import grid_segmentation, kmeans_segmentation
    from lsd.evaluation import build_dataset, evaluate, evaluate_segmenter, input_resolution
    from lsd.evaluation.loading import resolve_checkpoint
    from lsd.evaluation.report import versions
    from lsd.figures import plot_reconstructions, plot_segmentation_comparison, plot_training_curves
    from lsd.models.lsd import LatentSlotDiffusion
    from lsd.reproduction.table import results_table, to_markdown, to_terminal

    start = time.perf_counter()
    budget = BUDGETS.get(opts.budget)
    if budget is None:
        raise ValueError(f"unknown budget {opts.budget!r}; expected one of {', '.join(BUDGET_NAMES)}")
    _check_options(opts, budget)
    output = check_output_dir(opts.output, "--output")  # before any compute
    output.mkdir(parents=True, exist_ok=True)
    standin = opts.data is None
    tag = " (stand-in)" if standin else ""

    # 1. the model(s) to evaluate
    models: list[tuple[str, str, Any, dict[str, Any]]] = []  # (label, role, model, extra)
    train_config, logs = None, {}
    if opts.checkpoint is None:
        from lsd.training.trainer import train

        train_config = _train_config(opts, budget)
        _check_resumable(train_config)
        if standin:
            _standin_folder(train_config)
        result = train(train_config, resume="latest")
        if int(os.environ.get("RANK", "0")) != 0:
            return {}  # multi-process training: the main process evaluates
        if result.checkpoint is None:
            raise RuntimeError(f"training into {result.output_dir} saved no checkpoint")
        model = LatentSlotDiffusion.from_pretrained(result.checkpoint / "model")
        log = read_train_log(Path(train_config.output_dir) / "train_log.jsonl")
        logs[f"LSD trained now{tag}"] = log
        extra = {"checkpoint": str(result.checkpoint), "steps": result.step, "diagnostic": slot_diagnostic(log)}
        models.append((f"LSD trained now{tag}", "trained", model, extra))
    else:
        kind, folder = resolve_checkpoint(opts.checkpoint)
        if kind == "release":
            from lsd.official import load_official_checkpoint

            model = load_official_checkpoint(folder, vae=None)
        else:
            model = LatentSlotDiffusion.from_pretrained(folder)
        models.append((f"LSD checkpoint {Path(opts.checkpoint).name}{tag}", "checkpoint", model, {"kind": kind}))
    if standin and opts.shipped is not None:
        shipped = LatentSlotDiffusion.from_pretrained(opts.shipped)
        shipped_dir = Path(opts.shipped)  # a model folder, or `model/` inside a training checkpoint
        log = read_train_log(shipped_dir / "train_log.jsonl") or read_train_log(shipped_dir.parent / "train_log.jsonl")
        if log:
            logs[f"LSD shipped checkpoint{tag}"] = log
        extra = {"checkpoint": str(opts.shipped), "diagnostic": slot_diagnostic(log)}
        models.append((f"LSD shipped checkpoint{tag}", "shipped", shipped, extra))

    # 2. the held-out data, at the first model's input size
    resolution = input_resolution(models[0][2])
    if standin:
        if train_config is None:
            from lsd.training.config import load_train_config

            train_config = load_train_config(budget.train_config, [f"data.root={opts.cache}"])
        folder = _standin_folder(train_config)
        dataset = build_dataset("synth", folder, split="validation", resolution=resolution)
        data_record = {"kind": "synthetic stand-in (not MOVi-E)", "folder": str(folder),
                       "spec": json.loads((folder / "synth_spec.json").read_text())}  # fmt: skip
    else:
        dataset = build_dataset("movi-e", opts.data, split="validation", resolution=resolution)
        data_record = {"kind": "MOVi-E", "folder": str(opts.data), "split": "validation"}

    # 3. evaluate every model and the baselines on the same images
    device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    methods: dict[str, dict[str, Any]] = {}
    predictions: dict[str, tuple[torch.Tensor, int]] = {}
    examples = None
    for label, role, model, extra in models:
        result = evaluate(
            model, dataset, seed=opts.seed, probe_steps=budget.probe_steps, max_images=budget.eval_images,
            device=device, num_examples=budget.figure_images, progress=opts.progress,
        )  # fmt: skip
        methods[label] = _lsd_record(result, label, role, **extra)
        predictions[label] = (result.examples["pred"], result.num_slots)
        if examples is None:
            examples = result.examples
    # k-means with k = the slot count of every evaluated model (same number of segments as its slots)
    segment_counts = sorted({model.slot_attention.config.num_slots for _, _, model, _ in models})
    baselines = {}
    for count in segment_counts:
        baselines[f"k-means RGB, k={count}"] = (
            lambda px, idx, k=count: kmeans_segmentation(
                px, k, restarts=budget.kmeans_restarts, seed=opts.seed, indices=idx
            ),  # fmt: skip
            count,
        )
    for count in segment_counts:
        baselines[f"k-means RGB+xy, k={count}"] = (
            lambda px, idx, k=count: kmeans_segmentation(
                px, k, position_weight=1.0, restarts=budget.kmeans_restarts, seed=opts.seed, indices=idx
            ),  # fmt: skip
            count,
        )
    baselines |= {
        "grid 3x3": (lambda px, idx: grid_segmentation(px.shape[0], px.shape[-2], px.shape[-1], 3, 3), 9),
    }
    for label, (segmenter, count) in baselines.items():
        result = evaluate_segmenter(
            segmenter, dataset, num_segments=count, batch_size=32, max_images=budget.eval_images,
            num_examples=budget.figure_images, progress=opts.progress, description=label,
        )  # fmt: skip
        methods[label] = _lsd_record(result, label, "baseline")
        predictions[label] = (result.examples["pred"], count)

    # 4. figures
    figures = {"segmentations": "segmentations.png", "training_curve": None, "reconstructions": None}
    plot_segmentation_comparison(examples["pixel_values"], examples["masks"], predictions, output / "segmentations.png")
    if logs:
        plot_training_curves(logs, output / "training_curve.png")
        figures["training_curve"] = "training_curve.png"
    if models[0][2].vae is not None:
        recons = {}
        for label, _, model, _ in models:
            if model.vae is not None:
                recons[label] = _reconstruct(model, examples["pixel_values"], opts.seed, budget.sample_steps)
        plot_reconstructions(examples["pixel_values"], recons, output / "reconstructions.png")
        figures["reconstructions"] = "reconstructions.png"

    # 5. tables and results.json
    table = results_table(methods)
    write_text_atomic(output / "table.csv", table.to_csv(float_format="%.4f"))
    heading = (
        f"# MOVi-E reproduction ({'synthetic stand-in: not MOVi-E' if standin else 'MOVi-E validation'})\n\n"
        f"budget `{budget.name}`, seed {opts.seed}. Our columns{' are measured on the synthetic stand-in and' if standin else ''}"
        " sit beside the paper's (own columns, provenance last; n/r = not recovered). Percentages x100.\n\n"
    )
    write_text_atomic(output / "table.md", heading + to_markdown(table) + "\n")
    record = {
        "task": "movi-e",
        "data": data_record,
        "budget": asdict(budget),
        "seed": opts.seed,
        "train_config": train_config.to_dict() if train_config is not None and opts.checkpoint is None else None,
        "methods": methods,
        "figures": figures,
        "versions": versions(),
        "machine": {
            "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "device": str(models[0][2].device),
        },  # fmt: skip
        "wall_seconds": time.perf_counter() - start,
    }
    write_text_atomic(output / "results.json", json.dumps(record, indent=2, default=str) + "\n")
    print(heading.splitlines()[0])
    print(to_terminal(table))
    for label, method in methods.items():
        diag = method.get("diagnostic")
        if diag:
            print(
                f"{label}: denoising loss with own slots {diag['loss_right_slots']:.4f}, with shuffled slots "
                f"{diag['loss_shuffled_slots']:.4f} (x{diag['shuffled_over_right']:.2f})"
            )
    print(f"wrote {output}/results.json, table.md, table.csv and figures in {record['wall_seconds']:.0f} s")
    return record


__all__ = [
    "BUDGETS",
    "BUDGET_NAMES",
    "Budget",
    "ReproduceOptions",
    "read_train_log",
    "reproduce_movi_e",
    "slot_diagnostic",
]
