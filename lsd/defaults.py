"""Defaults every command shares: ``lsd evaluate / reconstruct / compose / edit /
evaluate-generation`` and ``reproductions/<table>.py``, so the same model on the same images gives
the same numbers whichever command measures it."""

from __future__ import annotations

__all__ = ["DATASET", "SEED"]

#: Evaluation, slot-noise and sampler seed (the reproductions' ``--seed``).
SEED = 42

#: ``--dataset``: the reader of the synthetic stand-in that ``lsd synth`` and the main job write
#: (``nox -s reproduce-movi-e`` caches it under ``data/``).
DATASET = "synth"
