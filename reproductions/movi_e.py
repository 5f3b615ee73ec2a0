#!/usr/bin/env python
"""Reproduce the paper's MOVi-E table (segmentation + property prediction); ``nox -s reproduce-movi-e``.

    python reproductions/movi_e.py                      # stand-in, cpu budget (a measured time: README)
    python reproductions/movi_e.py --budget smoke       # the whole pipeline in about 2 minutes (CI)
    python reproductions/movi_e.py --data /data/movi    # real MOVi-E (the release's dump layout)
    python reproductions/movi_e.py --data /data/movi --checkpoint release/checkpoint-200000
    accelerate launch reproductions/movi_e.py --data /data/movi --budget paper   # the paper's recipe, GPUs

The shipped stand-in checkpoint (reproductions/checkpoints/movi-e-standin/model: a model + recipe
folder, no optimizer state; continued with `init_from`, not `--resume`) is evaluated beside the new
run. See lsd/reproduction/runner.py for what runs and what lands in --output.
"""

import sys
from pathlib import Path

from lsd.reproduction.cli import main

if __name__ == "__main__":
    sys.exit(main("movi-e", here=Path(__file__).resolve().parent))
