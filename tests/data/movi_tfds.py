"""The MOVi TFDS fixtures (tests/fixtures/movi_tfds, written by tensorflow-datasets with
scripts/make_movi_tfds_fixtures.py) and what tfds read back from them, per record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "movi_tfds"
#: tfds name -> (config folder, frames, size)
RELEASES = {"movi_e": ("16x16", 5, 16), "movi_c": ("8x8", 3, 8)}
SPLITS = [("movi_e", "train"), ("movi_e", "validation"), ("movi_c", "train"), ("movi_c", "validation")]


def release_folder(name: str) -> Path:
    return FIXTURES / name / RELEASES[name][0] / "1.0.0"


@dataclass
class Expected:
    """tfds's read of one record: ``video``, ``segmentations``, ``instances`` (dense arrays;
    ragged fields as lists of per-object arrays), and the sha256 prefixes of the release's
    ``_instances.json`` texts."""

    tfds_id: str
    video: np.ndarray
    segmentations: np.ndarray
    instances: dict[str, np.ndarray | list[np.ndarray]]
    json_sha256: list[str]


def expected_records(name: str, split: str) -> list[Expected]:
    """Every record of a fixture split, in ``tfds.load`` order."""
    meta = json.loads((FIXTURES / "expected" / f"{name}-{split}.json").read_text())
    with np.load(FIXTURES / "expected" / f"{name}-{split}.npz", allow_pickle=False) as z:
        arrays = {key: z[key] for key in z.files}
    counts = arrays["num_instances"]
    starts = np.concatenate([[0], np.cumsum(counts)])
    keys = sorted({k.split("/")[1] for k in arrays if k.startswith("instances/")})
    ragged_starts = {}
    for key in keys:
        if f"instances/{key}/row_lengths" in arrays:
            lengths = arrays[f"instances/{key}/row_lengths"]
            ragged_starts[key] = np.concatenate([[0], np.cumsum(lengths)])
    records = []
    for i, tfds_id in enumerate(meta["tfds_id"]):
        a, b = starts[i], starts[i + 1]
        instances: dict[str, np.ndarray | list[np.ndarray]] = {}
        for key in keys:
            if key in ragged_starts:
                flat, bounds = arrays[f"instances/{key}/flat_values"], ragged_starts[key]
                instances[key] = [flat[bounds[j] : bounds[j + 1]] for j in range(a, b)]
            else:
                instances[key] = arrays[f"instances/{key}"][a:b]
        records.append(Expected(tfds_id, arrays["video"][i], arrays["segmentations"][i], instances,
                                meta["instances_json_sha256"][i]))  # fmt: skip
    return records
