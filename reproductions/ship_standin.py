#!/usr/bin/env python
"""Ship a checkpoint of a long stand-in run as reproductions/checkpoints/movi-e-standin/.

    python reproductions/ship_standin.py --run outputs/standin-long [--step 6000] [--command CMD ...]

The shipped checkpoint is built in stages. A stage is one `lsd train --config synth-cpu` run
(resumed any number of times): the first from scratch, a later one from the shipped weights
(`--set init_from=reproductions/checkpoints/movi-e-standin`, a fresh optimizer and schedule). A
run whose log starts after its first logged step (resumed from a checkpoint of the run that
trained the last stage) continues that stage. Each stage may differ from the cpu budget's recipe only in where files
go (`train.max_steps`, `checkpoint.*`, `output_dir`, `data.root`), its learning-rate schedule
(`optim.lr`, `optim.lr_scheduler`, `optim.warmup_steps`) and the model fields of
:data:`MODEL_STAGE_FIELDS` (none of which adds or reshapes a weight); anything else is refused.

The checkpoint's model (`model/`, safetensors) and recipe (`train_config.json`,
`trainer_state.json`) are copied WITHOUT the optimizer and RNG state: that state is as large as
the model again (18.5 MB here) and would grow the git history by that much at every re-ship, so
the shipped folder is a model + recipe, continued as a new stage with `init_from`, not an exact
resume. Beside them: `stages.json` (every stage: its steps, what it changed, its commands) and the
log of every stage (`train_log.jsonl`: `step` counts within the stage, `total_step` over all
stages); the folder is evaluated by the reproduction pipeline on the held-out stand-in scenes, the
README records the stages, the learning rate over the whole run and the table, and
`manifest.json` (written last) the size and sha256 of every file. The folder is replaced
atomically (:func:`lsd._atomic.atomic_dir`).

A **decoder stage** trains a new decoder on the shipped encoder: `init_from` the shipped
checkpoint with `init_from_components=["backbone", "slot_attention"]` (the synth-cpu-decoder
recipe). It may also change the autoencoder stage (`autoencoder.*`), the model's `vae`, `unet`,
`objective` and `frozen` fields and `optim.encoder_lr_scale` (:data:`DECODER_STAGE_FIELDS`), and it
is refused unless the backbone and slot-attention weights of the checkpoint to ship are bitwise
those shipped now (so segmentation cannot change).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from lsd._atomic import atomic_dir
from lsd._integrity import MANIFEST_NAME, write_manifest

HERE = Path(__file__).resolve().parent
TARGET = HERE / "checkpoints" / "movi-e-standin"
#: Fields of the training config that say where files go, not what is trained.
RUN_ONLY_FIELDS = {("train", "max_steps"), ("checkpoint", "every"), ("checkpoint", "total_limit"), ("data", "root")}
#: The learning-rate schedule of a stage (each stage documents its own).
SCHEDULE_FIELDS = {("optim", "lr"), ("optim", "lr_scheduler"), ("optim", "warmup_steps")}
#: Model-config fields a stage may change from `standin`: none adds, removes or reshapes a weight
#: (the slot attention has no per-slot weights with its Gaussian init), so a stage can start from
#: the previous stage's weights.
MODEL_STAGE_FIELDS = {
    ("slot_attention", "num_slots"),
    ("slot_attention", "num_iterations"),
    ("slot_attention", "logit_scale"),
    ("objective", "min_timestep"),
}
_IGNORED_MODEL_KEYS = ("name", "description")
#: The encoder a decoder stage copies from the shipped checkpoint and must leave bitwise unchanged.
ENCODER_COMPONENTS = ("backbone", "slot_attention")
#: What a decoder stage may change besides the above: the autoencoder stage, the decoder side of the
#: model and the encoder's learning rate (``section`` alone: every field of that section).
DECODER_STAGE_FIELDS = {"autoencoder", "model.vae", "model.unet", "model.objective", "model.frozen"}
DECODER_STAGE_FIELDS |= {"optim.encoder_lr_scale"}


def is_decoder_stage(saved: dict) -> bool:
    """Whether a saved training config trains a new decoder on the shipped encoder."""
    components = saved.get("init_from_components")
    return bool(saved.get("init_from")) and components is not None and set(components) == set(ENCODER_COMPONENTS)


def check_encoder_unchanged(model_folder: Path, shipped_model_folder: Path) -> None:
    """Raise ValueError naming the first backbone / slot-attention tensor (or config) of
    ``model_folder`` that is not bitwise the shipped one."""
    import torch
    from safetensors.torch import load_file

    for name in ENCODER_COMPONENTS:
        new_config = json.loads((model_folder / name / "config.json").read_text())
        old_config = json.loads((shipped_model_folder / name / "config.json").read_text())
        keys = (set(new_config) | set(old_config)) - {"_diffusers_version"}
        changed = sorted(k for k in keys if new_config.get(k) != old_config.get(k))
        if changed and changed != ["num_slots"]:
            raise ValueError(f"decoder stage: the {name} config differs from the shipped one in {changed}")
        new = load_file(str(model_folder / name / "diffusion_pytorch_model.safetensors"))
        old = load_file(str(shipped_model_folder / name / "diffusion_pytorch_model.safetensors"))
        if new.keys() != old.keys():
            raise ValueError(f"decoder stage: the {name} weights have other tensors than the shipped ones")
        for key in sorted(old):
            if new[key].shape != old[key].shape or not torch.equal(new[key], old[key]):
                raise ValueError(f"decoder stage: {name}.{key} differs from the shipped weights")


def _model_differences(saved_model: str | dict | None) -> dict[str, tuple]:
    """``{"model.section.field": (standin value, saved value)}`` of a saved model config."""
    from lsd.configs import load_config

    if saved_model is None:
        raise ValueError("the run's training config names no model")
    saved, recipe = load_config(saved_model), load_config("standin")
    differences = {}
    for section in sorted(set(saved) | set(recipe)):
        if section in _IGNORED_MODEL_KEYS:
            continue
        old, new = recipe.get(section), saved.get(section)
        if isinstance(old, dict) and isinstance(new, dict):
            for key in sorted(set(old) | set(new)):
                if old.get(key) != new.get(key):
                    differences[f"model.{section}.{key}"] = (old.get(key), new.get(key))
        elif old != new:
            differences[f"model.{section}"] = (old, new)
    return differences


def recipe_differences(saved: dict) -> dict[str, tuple]:
    """Fields of a checkpoint's saved training config that differ from `synth-cpu` (and its model
    from `standin`), as ``{"section.field": (recipe value, saved value)}``; ``init_from`` is not
    listed. Raises ValueError naming every field outside :data:`RUN_ONLY_FIELDS`,
    :data:`SCHEDULE_FIELDS` and :data:`MODEL_STAGE_FIELDS`."""
    from lsd.training.config import TrainConfig, load_train_config

    recipe = load_train_config("synth-cpu").to_dict()
    sections = ("data", "autoencoder", "optim", "train", "checkpoint")
    # a field added since the checkpoint was written (e.g. checkpoint.on_interrupt) counts as its default
    defaults = {section: TrainConfig.model_fields[section].default_factory().to_dict() for section in sections}
    differences = {
        f"{section}.{key}": (value, saved.get(section, {}).get(key, defaults[section].get(key)))
        for section in sections
        for key, value in recipe[section].items()
        if saved.get(section, {}).get(key, defaults[section].get(key)) != value
    }
    differences |= _model_differences(saved.get("model"))
    allowed = {f"{s}.{k}" for s, k in RUN_ONLY_FIELDS | SCHEDULE_FIELDS}
    allowed |= {f"model.{s}.{k}" for s, k in MODEL_STAGE_FIELDS}
    decoder = is_decoder_stage(saved)
    refused = sorted(
        name
        for name in set(differences) - allowed
        if not (decoder and any(name == f or name.startswith(f + ".") for f in DECODER_STAGE_FIELDS))
    )
    if refused:
        kind = "synth-cpu recipe (decoder stage)" if decoder else "synth-cpu recipe"
        raise ValueError(f"not the {kind}: {', '.join(refused)} differ")
    if decoder:
        differences["init_from_components"] = (None, list(saved["init_from_components"]))
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


def _same_folder(a: str | os.PathLike, b: Path) -> bool:
    return Path(a).resolve() in (b.resolve(), (b / "model").resolve())


def merge_stages(
    shipped_stages: list[dict],
    shipped_records: list[dict],
    run_records: list[dict],
    saved: dict,
    step: int,
    commands: list[str],
    init_from_is_shipped: bool,
) -> tuple[list[dict], list[dict]]:
    """The stages and the whole log of the checkpoint to ship.

    Args:
        shipped_stages, shipped_records: ``stages.json`` and ``train_log.jsonl`` of the checkpoint
            shipped now (empty when none).
        run_records: the run's ``train_log.jsonl`` (``step`` counts from the run's start).
        saved: the run's saved training config; step: the checkpoint's step in the run.
        commands: the commands that trained the run (verbatim).
        init_from_is_shipped: whether the run's ``init_from`` is the shipped checkpoint.

    The run is, in this order of checks: a continuation of the shipped last stage (its log starts
    after the first logged step: it was resumed from the shipped checkpoint), a new stage on top
    of the shipped stages (``init_from`` = the shipped checkpoint), or a first stage from scratch.
    Returns ``(stages, records)``; every record carries ``stage`` and ``total_step``.
    """
    run_records = [dict(r) for r in run_records if r["step"] <= step]
    if not run_records:
        raise ValueError("the run's train_log.jsonl has no record up to the shipped step")
    first = min(r["step"] for r in run_records)
    log_every = int(saved.get("train", {}).get("log_every", 1))
    differences = {k: list(v) for k, v in recipe_differences(saved).items()}
    if first > log_every:  # resumed from the shipped checkpoint: the same stage goes on
        if not shipped_stages:
            raise ValueError(f"the run's log starts at step {first} but no shipped stage precedes it")
        stage = dict(shipped_stages[-1])
        number = len(shipped_stages)
        earlier = [r for r in shipped_records if r["stage"] < number]
        same = [dict(r) for r in shipped_records if r["stage"] == number and r["step"] < first]
        if not same or same[-1]["step"] + log_every < first:
            raise ValueError(f"the shipped last stage's log does not reach step {first - log_every}")
        offset = stage["first_step"] - 1
        stage["commands"] = stage["commands"] + commands
        stage["differences"] = differences
        stages = shipped_stages[:-1]
        run_records = same + run_records
    elif saved.get("init_from"):
        if not init_from_is_shipped:
            raise ValueError(
                f"init_from {saved['init_from']} is not the shipped checkpoint: a new stage must start from it"
            )
        number = len(shipped_stages) + 1
        offset = shipped_stages[-1]["last_step"] if shipped_stages else 0
        earlier, stages = list(shipped_records), list(shipped_stages)
        start = f"the weights of stage {number - 1} (fresh optimizer and schedule)" if shipped_stages else "init_from"
        if is_decoder_stage(saved):
            start = (
                f"the backbone and slot attention of stage {number - 1}, frozen, under a new decoder (decoder stage)"
            )
        stage = {"start": start, "commands": commands, "differences": differences}
    else:
        number, offset, earlier, stages = 1, 0, [], []
        stage = {"start": "random initialisation", "commands": commands, "differences": differences}
    for record in run_records:
        record["stage"], record["total_step"] = number, offset + record["step"]
    stage |= {"stage": number, "first_step": offset + 1, "last_step": offset + step, "steps": step}
    return stages + [stage], earlier + run_records


def _differences_text(differences: dict) -> str:
    quiet = {f"{s}.{k}" for s, k in RUN_ONLY_FIELDS if s != "train"}  # where files go, not what is trained
    shown = {name: pair for name, pair in differences.items() if name not in quiet}
    return ", ".join(f"`{name}` {old!r} -> {new!r}" for name, (old, new) in shown.items()) or "none"


def _lr_lines(records: list[dict]) -> str:
    from lsd.reproduction.movi_e import learning_rate_phases

    lines = []
    by_total = [{**r, "step": r.get("total_step", r["step"])} for r in records]
    for phase in learning_rate_phases(by_total):
        span = f"steps {phase['first_step']:,} to {phase['last_step']:,}"
        if phase["kind"] == "constant":
            lines.append(f"- {span}: constant {phase['first_lr']:.2e}")
        else:
            lines.append(f"- {span}: {phase['kind']} from {phase['first_lr']:.2e} to {phase['last_lr']:.2e}")
    return "\n".join(lines) or "- (the log records no learning rate)"


def _cli_value(value) -> str:
    """A config value as ``--set`` parses it: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _continue_command(stage: dict, saved: dict) -> str:
    """`lsd train` starting a new stage from the shipped weights with the last stage's settings.

    After a decoder stage that is the decoder recipe again with more steps: a decoder stage always
    trains a fresh decoder on the shipped (unchanged) encoder, which is what the stage rules ship."""
    if is_decoder_stage(saved):
        return (
            f"OMP_NUM_THREADS=1 lsd train --config synth-cpu-decoder --output-dir outputs/standin-stage{stage['stage'] + 1}"
            f" \\\n    --set train.max_steps={2 * stage['steps']}"
        )
    quiet = {f"{s}.{k}" for s, k in RUN_ONLY_FIELDS}
    sets = ["--set init_from=reproductions/checkpoints/movi-e-standin"]
    sets += [f"--set {shlex.quote(name + '=' + _cli_value(new))}"
             for name, (_, new) in stage["differences"].items() if name not in quiet]  # fmt: skip
    sets += ["--set train.max_steps=10000", "--set checkpoint.every=1000", "--set checkpoint.total_limit=100"]
    return (
        f"OMP_NUM_THREADS=1 lsd train --config synth-cpu --output-dir outputs/standin-stage{stage['stage'] + 1} \\\n    "
        + " \\\n    ".join(sets)
    )


def _readme(stages: list[dict], records: list[dict], saved: dict, table: str) -> str:
    data = saved["data"]
    total = stages[-1]["last_step"]
    seconds = _training_seconds(records)
    hours = f", about {seconds / 3600:.1f} h of training" if seconds else ""
    scenes = f'{data["synth_num_train"]:,} "{data["synth_level"]}" scenes at {data["resolution"]} px'
    stage_text = []
    for stage in stages:
        commands = "\n".join(stage["commands"]) or "(commands not recorded)"
        stage_text.append(
            f"**Stage {stage['stage']}**: steps {stage['first_step']:,} to {stage['last_step']:,} "
            f"({stage['steps']:,} optimizer steps), from {stage['start']}; changed from the recipe: "
            f"{_differences_text(stage['differences'])}.\n\n```bash\n{commands}\n```"
        )
    last = stages[-1]
    return f"""# Shipped stand-in checkpoint (MOVi-E reproduction, synthetic stand-in)

The `standin` model (`lsd/configs/standin.json`, with the changes of each stage below) trained
by the cpu budget's recipe (`lsd/configs/train/synth-cpu.json`, seed 42; a decoder stage by
`lsd/configs/train/synth-cpu-decoder.json`) for **{total:,} optimizer
steps** in {len(stages)} stage(s) on the synthetic stand-in ({scenes}), on a 2-core CPU with
one torch thread per run{hours}. This is NOT a MOVi-E model: it exists so that the default
`nox -s reproduce-movi-e` shows what longer training of the same pipeline gives, beside the
short run it trains itself.

- `model/`: the `lsd.LatentSlotDiffusion` folder (safetensors), evaluated by the reproduction.
- `train_config.json`, `trainer_state.json`: the recipe and step of the last stage's training
  checkpoint (`trainer_state.json` counts the last stage's steps). The optimizer and RNG state
  is NOT shipped (as large as the model again; every re-ship would add it to the git history):
  this folder is a model + recipe, continued as a new stage with `init_from` (a fresh optimizer
  and schedule), not an exact resume; `lsd train --resume` refuses it and says so.
- `manifest.json`: size and sha256 of every file, checked when the folder is loaded.
- `train_log.jsonl`: the log of every stage (`step` within the stage, `total_step` over the
  run), with the slot diagnostic (denoising loss with each image's own slots against slots
  shuffled across the batch); `stages.json`: the stages below, as data.

How it was trained (within a stage every command resumed the previous one exactly):

{chr(10).join(stage_text)}

Learning rate over the run (from `train_log.jsonl`, total steps):
{_lr_lines(records)}

Continue with a new stage from these weights (a fresh optimizer and learning-rate schedule:
pick the schedule of the next phase on purpose), then ship again:

```bash
{_continue_command(last, saved)}
python reproductions/ship_standin.py --run outputs/standin-stage{last["stage"] + 1} --command "..."
```

Evaluation (`reproductions/movi_e.py --checkpoint reproductions/checkpoints/movi-e-standin/model
--no-shipped`, 200 held-out stand-in scenes, seed 42), written by `ship_standin.py`:

{table}
"""


def _read_shipped() -> tuple[list[dict], list[dict]]:
    """``stages.json`` and the log of the checkpoint shipped now (empty lists when none)."""
    from lsd.reproduction.movi_e import read_train_log

    if not (TARGET / "stages.json").is_file():
        return [], []
    return json.loads((TARGET / "stages.json").read_text()), read_train_log(TARGET / "train_log.jsonl")


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
    shipped_stages, shipped_records = _read_shipped()
    init_from = saved.get("init_from")
    stages, records = merge_stages(  # refuses a run trained by another recipe before copying anything
        shipped_stages, shipped_records, read_train_log(args.run / "train_log.jsonl"), saved, step,
        args.command, bool(init_from) and _same_folder(init_from, TARGET),
    )  # fmt: skip

    def recipe_only(folder: str, names: list[str]) -> list[str]:  # no optimizer/RNG state, a fresh manifest
        if Path(folder) != checkpoint:
            return []
        return [n for n in names if n.startswith("training_state") or n == MANIFEST_NAME]

    if is_decoder_stage(saved):  # before copying anything
        check_encoder_unchanged(checkpoint / "model", TARGET / "model")
    with atomic_dir(TARGET) as build, tempfile.TemporaryDirectory() as evaluation_root:
        shutil.copytree(checkpoint, build, dirs_exist_ok=True, ignore=recipe_only)
        if not (build / "model" / MANIFEST_NAME).is_file():  # a checkpoint written before manifests
            write_manifest(build / "model")
        (build / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        (build / "stages.json").write_text(json.dumps(stages, indent=2) + "\n")
        evaluation = Path(evaluation_root) / "evaluation"
        record = reproduce_movi_e(
            ReproduceOptions(output=evaluation, checkpoint=build / "model", budget="cpu", cache=args.cache)
        )
        table = (evaluation / "table.md").read_text().split("\n\n", 2)[-1]
        (build / "README.md").write_text(_readme(stages, records, saved, table))
        (build / "evaluation.json").write_text(json.dumps(record["methods"], indent=2) + "\n")
        write_manifest(build)  # last
    print(
        f"shipped stage {stages[-1]['stage']} step {step} (total {stages[-1]['last_step']}) from {checkpoint} to {TARGET}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
