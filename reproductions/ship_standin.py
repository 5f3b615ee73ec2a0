#!/usr/bin/env python
"""Ship a checkpoint of a long stand-in run as reproductions/checkpoints/movi-e-standin/.

    python reproductions/ship_standin.py --run outputs/standin-long [--step 6000] [--command CMD ...]

The run must have been trained with the cpu budget's recipe (`lsd train --config synth-cpu`):
only `train.max_steps`, `checkpoint.*`, `output_dir`, `data.root` and the learning-rate schedule
(`optim.lr_scheduler`, e.g. a final linear decay) may differ; anything else is refused. The whole
training checkpoint is copied (so a later session can continue it with `lsd train --resume`),
with the run's log up to that step, then evaluated by the reproduction pipeline on the held-out
stand-in scenes; the README beside it records the commands (`--command`, verbatim, in order),
the learning rate over the run (read from the log) and the table. The folder is replaced
atomically (built beside it, then renamed into place).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE / "checkpoints" / "movi-e-standin"
#: Fields of the training config a shipped run may change from `synth-cpu`.
RUN_ONLY_FIELDS = {("train", "max_steps"), ("checkpoint", "every"), ("checkpoint", "total_limit"), ("data", "root")}
SCHEDULE_FIELDS = {("optim", "lr_scheduler")}


def recipe_differences(saved: dict) -> dict[str, tuple]:
    """Fields of a checkpoint's saved training config that differ from `synth-cpu`, as
    ``{"section.field": (recipe value, saved value)}``; raises ValueError naming any field
    outside :data:`RUN_ONLY_FIELDS` and :data:`SCHEDULE_FIELDS` (or a model other than `standin`)."""
    from lsd.training.config import load_train_config
    from lsd.training.trainer import same_model_config

    if not same_model_config(saved.get("model"), "standin"):
        raise ValueError("the run's model is not the `standin` config")
    recipe = load_train_config("synth-cpu").to_dict()
    differences = {
        f"{section}.{key}": (value, saved.get(section, {}).get(key))
        for section in ("data", "autoencoder", "optim", "train", "checkpoint")
        for key, value in recipe[section].items()
        if saved.get(section, {}).get(key) != value
    }
    allowed = {f"{s}.{k}" for s, k in RUN_ONLY_FIELDS | SCHEDULE_FIELDS}
    refused = sorted(set(differences) - allowed)
    if refused:
        raise ValueError(f"not the synth-cpu recipe: {', '.join(refused)} differ")
    return differences


def _pick(run: Path, step: int | None) -> Path:
    from lsd.training.trainer import list_checkpoints

    found = list_checkpoints(run)
    if not found:
        raise FileNotFoundError(f"{run}: no complete training checkpoint under checkpoints/")
    if step is None:
        return found[-1]
    by_step = {int(p.name.split("-")[-1]): p for p in found}
    if step not in by_step:
        raise FileNotFoundError(f"{run}: no checkpoint at step {step}; have {sorted(by_step)}")
    return by_step[step]


def _training_seconds(records: list[dict]) -> float:
    """Total training time of a log whose ``seconds`` restart at every resume."""
    total, last = 0.0, 0.0
    for record in records:
        seconds = float(record.get("seconds", 0.0))
        if seconds < last:  # a resumed process: its clock started again
            total += last
        last = seconds
    return total + last


def _differences_text(saved: dict) -> str:
    differences = recipe_differences(saved)
    quiet = {f"{s}.{k}" for s, k in RUN_ONLY_FIELDS if s != "train"}  # where files go, not what is trained
    shown = {name: pair for name, pair in differences.items() if name not in quiet}
    return ", ".join(f"`{name}` {old!r} -> {new!r}" for name, (old, new) in shown.items()) or "none"


def _lr_lines(records: list[dict]) -> str:
    from lsd.reproduction.movi_e import learning_rate_phases

    lines = []
    for phase in learning_rate_phases(records):
        span = f"steps {phase['first_step']:,} to {phase['last_step']:,}"
        if phase["kind"] == "constant":
            lines.append(f"- {span}: constant {phase['first_lr']:.2e}")
        else:
            lines.append(f"- {span}: {phase['kind']} from {phase['first_lr']:.2e} to {phase['last_lr']:.2e}")
    return "\n".join(lines) or "- (the log records no learning rate)"


def _readme(step: int, seconds: float, saved: dict, records: list[dict], commands: list[str], table: str) -> str:
    data = saved["data"]
    hours = f"about {seconds / 3600:.1f} h of training" if seconds else ""
    scenes = f'{data["synth_num_train"]:,} "{data["synth_level"]}" scenes at {data["resolution"]} px'
    scheduler = saved["optim"]["lr_scheduler"]
    schedule_set = f" --set optim.lr_scheduler={scheduler}" if scheduler != "constant_with_warmup" else ""
    if not commands:
        commands = [
            f"OMP_NUM_THREADS=1 lsd train --config synth-cpu --output-dir outputs/standin-long{schedule_set} "
            f"--set train.max_steps={step} --set checkpoint.total_limit=100"
        ]
    if scheduler == "constant_with_warmup":
        restart = ""
    else:
        restart = (
            f"\nThe last phase used `optim.lr_scheduler={scheduler}` over `train.max_steps="
            f"{saved['train']['max_steps']}`; resuming with a larger `train.max_steps` stretches that schedule "
            "(the learning rate jumps back up), so pick the schedule of the next phase on purpose.\n"
        )
    return f"""# Shipped stand-in checkpoint (MOVi-E reproduction, synthetic stand-in)

The `standin` model (`lsd/configs/standin.json`) trained by the cpu budget's recipe
(`lsd/configs/train/synth-cpu.json`, seed 42) for **{step:,} optimizer steps** on the synthetic
stand-in ({scenes}), on a 2-core CPU with one torch thread{", " + hours if hours else ""}.
This is NOT a MOVi-E model: it exists so that the default `nox -s reproduce-movi-e` shows what
longer training of the same pipeline gives, beside the short run it trains itself.

- `model/`: the `lsd.LatentSlotDiffusion` folder (safetensors), evaluated by the reproduction.
- `training_state.pt`, `train_config.json`, `trainer_state.json`: the rest of the training
  checkpoint, for exact resume.
- `train_log.jsonl`: the run's log up to this step, with the slot diagnostic (denoising loss
  with each image's own slots against slots shuffled across the batch).

How it was trained (each command resumed the previous one exactly; recipe fields changed from
`synth-cpu`: {_differences_text(saved)}):

```bash
{chr(10).join(commands)}
```

Learning rate over the run (from `train_log.jsonl`):
{_lr_lines(records)}

Train it further (exact resume: the same weights as one uninterrupted run), then ship again:

```bash
OMP_NUM_THREADS=1 lsd train --config synth-cpu --output-dir outputs/standin-long{schedule_set} \\
    --set train.max_steps={step + 20000} --set checkpoint.total_limit=100 \\
    --resume reproductions/checkpoints/movi-e-standin
python reproductions/ship_standin.py --run outputs/standin-long --command "..."
```
{restart}
Evaluation (`reproductions/movi_e.py --checkpoint reproductions/checkpoints/movi-e-standin/model
--no-shipped`, 200 held-out stand-in scenes, seed 42), written by `ship_standin.py`:

{table}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="output_dir of the long `lsd train` run")
    parser.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument("--cache", type=Path, default=Path("data"), help="where the stand-in scenes live")
    parser.add_argument(
        "--command", action="append", default=[], help="a command that trained the run, verbatim (repeat, in order)"
    )
    args = parser.parse_args(argv)

    from lsd.reproduction.movi_e import ReproduceOptions, read_train_log, reproduce_movi_e

    checkpoint = _pick(args.run, args.step)
    step = json.loads((checkpoint / "trainer_state.json").read_text())["step"]
    saved = json.loads((checkpoint / "train_config.json").read_text())
    recipe_differences(saved)  # refuse a run trained by another recipe before copying anything
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".movi-e-standin.", dir=TARGET.parent))
    try:
        build = staging / "movi-e-standin"
        shutil.copytree(checkpoint, build)
        records = read_train_log(args.run / "train_log.jsonl")
        if records and (TARGET / "train_log.jsonl").is_file():  # a run resumed from the shipped one
            first = min(r["step"] for r in records)
            records = [r for r in read_train_log(TARGET / "train_log.jsonl") if r["step"] < first] + records
        kept = [r for r in records if r["step"] <= step]
        (build / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
        evaluation = staging / "evaluation"
        record = reproduce_movi_e(
            ReproduceOptions(output=evaluation, checkpoint=build / "model", budget="cpu", cache=args.cache)
        )
        table = (evaluation / "table.md").read_text().split("\n\n", 2)[-1]
        seconds = _training_seconds(kept)
        (build / "README.md").write_text(_readme(step, seconds, saved, kept, args.command, table))
        (build / "evaluation.json").write_text(json.dumps(record["methods"], indent=2) + "\n")
        old = staging / "previous"
        if TARGET.exists():
            os.replace(TARGET, old)
        os.replace(build, TARGET)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"shipped step {step} from {checkpoint} to {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
