#!/usr/bin/env python
"""Ship a checkpoint of a long stand-in run as reproductions/checkpoints/movi-e-standin/.

    python reproductions/ship_standin.py --run outputs/standin-long [--step 6000]

The run must have been trained with the cpu budget's recipe (`lsd train --config synth-cpu`,
only `train.max_steps`, `checkpoint.*`, `output_dir` and `data.root` changed). The whole training
checkpoint is copied (so a later session can continue it with `lsd train --resume`), with the
run's log up to that step, then evaluated by the reproduction pipeline on the held-out stand-in
scenes; the README beside it records the commands and the table. The folder is replaced
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


def _readme(step: int, seconds: float, data: dict, table: str) -> str:
    hours = f"about {seconds / 3600:.1f} h of training" if seconds else ""
    scenes = f'{data["synth_num_train"]:,} "{data["synth_level"]}" scenes at {data["resolution"]} px'
    return f"""# Shipped stand-in checkpoint (MOVi-E reproduction, synthetic stand-in)

The `standin` model (`lsd/configs/standin.json`) trained by the cpu budget's recipe
(`lsd/configs/train/synth-cpu.json`, seed 42) for **{step} optimizer steps** on the synthetic
stand-in ({scenes}), on a 2-core CPU with one torch thread{", " + hours if hours else ""}.
This is NOT a MOVi-E model: it exists so that the default `nox -s reproduce-movi-e` shows what
longer training of the same pipeline gives, beside the short run it trains itself.

- `model/`: the `lsd.LatentSlotDiffusion` folder (safetensors), evaluated by the reproduction.
- `training_state.pt`, `train_config.json`, `trainer_state.json`: the rest of the training
  checkpoint, for exact resume.
- `train_log.jsonl`: the run's log up to this step, with the slot diagnostic (denoising loss
  with each image's own slots against slots shuffled across the batch).

Train it further (exact resume: the same weights as one uninterrupted run), then ship again:

```bash
OMP_NUM_THREADS=1 lsd train --config synth-cpu --output-dir outputs/standin-long \\
    --set train.max_steps={step + 20000} --set checkpoint.total_limit=100 \\
    --resume reproductions/checkpoints/movi-e-standin
python reproductions/ship_standin.py --run outputs/standin-long
```

Evaluation (`reproductions/movi_e.py --checkpoint reproductions/checkpoints/movi-e-standin/model
--no-shipped`, 200 held-out stand-in scenes, seed 42), written by `ship_standin.py`:

{table}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="output_dir of the long `lsd train` run")
    parser.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    parser.add_argument("--cache", type=Path, default=Path("data"), help="where the stand-in scenes live")
    args = parser.parse_args(argv)

    from lsd.reproduction.movi_e import ReproduceOptions, read_train_log, reproduce_movi_e

    checkpoint = _pick(args.run, args.step)
    step = json.loads((checkpoint / "trainer_state.json").read_text())["step"]
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
        data = json.loads((build / "train_config.json").read_text())["data"]
        (build / "README.md").write_text(_readme(step, seconds, data, table))
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
