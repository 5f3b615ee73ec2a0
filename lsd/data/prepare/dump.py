"""One video written as the LSD release's dump script writes it, atomically and verifiably.

The release (``scripts/data_preprocess/movi_kubric_dump_with_labels.py``) writes, per record
``b`` (numbered in ``tfds.load`` order) and frame ``t``::

    <split folder>/images/<b:08d>/<t:08d>_image.png        video[t], RGB
    <split folder>/labels/<b:08d>/<t:08d>_segment.png      segmentations[t, :, :, 0], mode L
    <split folder>/labels/<b:08d>/<t:08d>_instances.json   the instances, per frame

and builds the JSON as follows (its loop body), quirks kept:

1. ragged instance fields (``bboxes`` (k, None, 4), ``bbox_frames`` (k, None)) are padded with
   zeros to the video's longest list (``RaggedTensor.to_tensor()``): (k, L, 4) and (k, L);
2. every field whose second axis equals the frame count T is cut to ``v[:, t]``; every other
   field is written whole. So ``bboxes`` / ``bbox_frames`` are cut only when L == T (some object
   is visible in every frame), and then frame t gets each object's t-th box, not its box of
   frame t; otherwise every frame repeats the whole padded list;
3. numpy values become JSON through ``tolist()`` (float32 values as doubles, ``category`` and
   ``visibility`` ints, ``is_dynamic`` bools, ``asset_id`` strings), keys in the order tfds
   yields them (sorted), ``json.dump``'s default separators.

Writing is atomic per video: ``labels/<b>`` then ``images/<b>`` are each filled in a temporary
folder and renamed into place (``lsd._atomic.atomic_dir``); last, a small record of the video's
files and their sha256 goes to ``<split folder>/.prepare/<b:08d>.json``. A video counts as done
only when that record exists and every file still matches it (:func:`verify_video`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lsd._atomic import atomic_dir, write_text_atomic
from lsd._integrity import sha256_file
from lsd.data.prepare.features import MoviRecord, Ragged

#: Folder (inside the split folder) of the per-video records; the readers never look there.
STATE_DIR = ".prepare"


def split_folder(out: str | os.PathLike, dataset: str, split: str) -> Path:
    """``<out>/<dataset>/<dataset>-<split>-with-label`` (``dataset`` as ``movi-e``)."""
    return Path(out) / dataset / f"{dataset}-{split}-with-label"


def instances_per_frame(instances: dict[str, np.ndarray | Ragged], frames: int) -> list[dict[str, Any]]:
    """The release's per-frame instance dicts (steps 1 and 2 of the module docstring)."""
    dense = {k: (v.to_dense() if isinstance(v, Ragged) else v) for k, v in instances.items()}
    return [
        {k: (v[:, t] if v.ndim > 1 and v.shape[1] == frames else v) for k, v in dense.items()} for t in range(frames)
    ]


def instances_json(per_frame: dict[str, Any]) -> str:
    """One ``_instances.json`` text (step 3)."""
    return json.dumps({k: np.asarray(v).tolist() for k, v in per_frame.items()})


def video_files(record: MoviRecord) -> dict[str, Any]:
    """Relative path -> content (an image array or a JSON text) of one video's files."""
    frames = record.video.shape[0]
    files: dict[str, Any] = {}
    for t, per_frame in enumerate(instances_per_frame(record.instances, frames)):
        files[f"images/{t:08d}_image.png"] = record.video[t]
        files[f"labels/{t:08d}_segment.png"] = record.segmentations[t, :, :, 0]
        files[f"labels/{t:08d}_instances.json"] = instances_json(per_frame)
    return files


def _state_path(folder: Path, video: int) -> Path:
    return folder / STATE_DIR / f"{video:08d}.json"


def write_video(folder: Path, video: int, record: MoviRecord, origin: str) -> int:
    """Write video ``video`` of a split folder from ``record`` (``origin``: where the record came
    from, kept in its state file). Returns the bytes written."""
    name = f"{video:08d}"
    files = video_files(record)
    digests: dict[str, str] = {}
    for part in ("labels", "images"):  # labels first: a video is listed (images/) only once labelled
        with atomic_dir(folder / part / name) as tmp:
            for relative, content in files.items():
                if not relative.startswith(part + "/"):
                    continue
                path = tmp / relative.split("/", 1)[1]
                if isinstance(content, str):
                    path.write_text(content)
                else:
                    Image.fromarray(content).save(path, optimize=False)
                digests[f"{part}/{name}/{path.name}"] = sha256_file(path)
    size = sum((folder / rel).stat().st_size for rel in digests)
    state = _state_path(folder, video)
    state.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(state, json.dumps({"origin": origin, "files": digests}, indent=0))
    return size


def verify_video(folder: Path, video: int) -> bool:
    """Whether video ``video`` is complete: its state file exists and every file it lists is
    there with the same sha256, and no other file sits in its two folders."""
    state = _state_path(folder, video)
    try:
        listed = json.loads(state.read_text())["files"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
        return False
    name = f"{video:08d}"
    present = {f"{part}/{name}/{p.name}" for part in ("images", "labels") if (folder / part / name).is_dir()
               for p in (folder / part / name).iterdir()}  # fmt: skip
    if present != set(listed):
        return False
    return all(sha256_file(folder / rel) == digest for rel, digest in listed.items())
