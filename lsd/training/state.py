"""The training state of a checkpoint without pickle: ``training_state.safetensors`` + ``training_state.json``.

``training_state.json`` holds the optimizer, LR-scheduler and RNG states (python ``random``, numpy,
torch CPU and, when present, CUDA) with every tensor replaced by ``{"__tensor__": key}``, a key of
``training_state.safetensors``. Other values are plain JSON, with two tags that JSON lacks:
``{"__tuple__": [...]}`` and ``{"__items__": [[key, value], ...]}`` (a dict whose keys are not all
strings, e.g. the optimizer's integer parameter ids). Reading uses ``json`` and ``safetensors``
only, so a checkpoint cannot run code when loaded.

The old format (``training_state.pt``, a pickle) is refused; :func:`convert_checkpoint` (``lsd
convert-checkpoint DIR``) rewrites it, and is the one place that unpickles: run it only on files
you trust.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lsd._atomic import writing
from lsd.runs import OLD_STATE, STATE_JSON, STATE_TENSORS, OldCheckpointFormatError, refuse_old_format

FORMAT = "lsd-training-state-1"


def _encode(value: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{key}.{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, f"{key}.{k}", tensors) for k, v in value.items()}
        if not all(isinstance(k, (str, int)) for k in value):
            raise TypeError(f"training state {key}: keys of type {sorted({type(k).__name__ for k in value})}")
        return {"__items__": [[k, _encode(v, f"{key}.{k}", tensors)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"training state {key}: cannot store a {type(value).__name__} without pickle")


def _decode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, where) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        key = value["__tensor__"]
        if key not in tensors:
            raise ValueError(f"{where}: tensor {key!r} is not in {STATE_TENSORS}")
        return tensors[key]
    if "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=value["dtype"])
    if "__tuple__" in value:
        return tuple(_decode(v, tensors, where) for v in value["__tuple__"])
    if "__items__" in value:
        return {k: _decode(v, tensors, where) for k, v in value["__items__"]}
    return {k: _decode(v, tensors, where) for k, v in value.items()}


def rng_state() -> dict[str, Any]:
    """The RNG states a resumed run must continue: python, numpy, torch CPU (and CUDA when present)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(folder: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, plain values, tuples, numpy arrays) as the two files in ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(state, "state", tensors)
    with writing(folder / STATE_TENSORS):
        save_file(tensors, str(folder / STATE_TENSORS))
    with writing(folder / STATE_JSON):
        (folder / STATE_JSON).write_text(json.dumps({"format": FORMAT, "state": encoded}) + "\n")


def load_training_state(folder: str | os.PathLike) -> dict[str, Any]:
    """Read what :func:`save_training_state` wrote (json + safetensors only; no pickle)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    refuse_old_format(folder)
    if not (folder / STATE_JSON).is_file():
        raise FileNotFoundError(
            f"{folder} holds no training state ({STATE_JSON}): it can start a run with "
            f"`--set init_from={folder}`, not resume one"
        )
    try:
        record = json.loads((folder / STATE_JSON).read_text())
        tensors = load_file(str(folder / STATE_TENSORS))
    except Exception as err:  # corrupt json, truncated or missing safetensors
        raise ValueError(f"{folder}: cannot read the training state ({type(err).__name__}: {err})") from err
    if record.get("format") != FORMAT:
        raise ValueError(f"{folder / STATE_JSON}: format {record.get('format')!r}, expected {FORMAT!r}")
    return _decode(record["state"], tensors, str(folder / STATE_JSON))


def convert_checkpoint(folder: str | os.PathLike) -> Path:
    """Rewrite an old checkpoint (pickled ``training_state.pt``) in the current format, with a
    manifest. UNPICKLES the file: run it only on files you trust. Returns the folder."""
    from lsd._atomic import atomic_dir
    from lsd._integrity import MANIFEST_NAME, write_manifest

    folder = Path(folder)
    old = folder / OLD_STATE
    if not old.is_file():
        raise FileNotFoundError(f"{old} does not exist: nothing to convert")
    state = torch.load(old, map_location="cpu", weights_only=False)  # the one trusted unpickling
    with atomic_dir(folder) as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(OLD_STATE, MANIFEST_NAME))
        save_training_state(tmp, state)
        if (tmp / "model").is_dir() and not (tmp / "model" / MANIFEST_NAME).is_file():
            write_manifest(tmp / "model")
        write_manifest(tmp)
    return folder


__all__ = [
    "OLD_STATE",
    "STATE_JSON",
    "STATE_TENSORS",
    "OldCheckpointFormatError",
    "convert_checkpoint",
    "load_training_state",
    "refuse_old_format",
    "rng_state",
    "save_training_state",
    "set_rng_state",
]
