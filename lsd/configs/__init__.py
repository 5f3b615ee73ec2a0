"""Shipped model configs and the builder that turns a config into a :class:`LatentSlotDiffusion`.

A config is JSON with one entry per component (``vae``, ``backbone``, ``slot_attention``,
``unet``, ``scheduler``) plus ``objective``, ``frozen``, ``resolution``, ``name`` and
``description``. A component entry is either a diffusers config (``_class_name`` plus the class's
init fields; built with random weights) or ``{"pretrained": NAME_OR_PATH, "subfolder": ...,
"_class_name": ...}`` (loaded from a local folder or the local Hugging Face cache, never
downloaded). Shipped: ``movi-e``, ``coco`` (the paper's), ``cpu`` (embedded default), ``tiny``.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

CONFIG_KEYS = (
    "name",
    "description",
    "resolution",
    "vae",
    "backbone",
    "slot_attention",
    "unet",
    "scheduler",
    "objective",
    "frozen",
)


def available_configs() -> list[str]:
    """Names of the configs shipped with lsd."""
    return sorted(p.name.removesuffix(".json") for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))


def read_config_json(name_or_path: str | os.PathLike | dict, shipped, kind: str, choices: str) -> tuple[Any, str]:
    """The one JSON config lookup: a dict (deep-copied), a JSON file path, or the name of a file
    ``<name>.json`` in the ``shipped`` folder (an ``importlib.resources`` traversable). Returns the
    parsed JSON and its source (the path read, or ``"<dict>"``). A name that is neither a file nor
    shipped raises ``FileNotFoundError`` listing ``choices``; malformed JSON raises ``ValueError``
    naming the file. ``kind`` names what is looked up in messages (``"config"``)."""
    if isinstance(name_or_path, dict):
        return json.loads(json.dumps(name_or_path)), "<dict>"
    path = Path(name_or_path)
    if not path.is_file():
        candidate = shipped / f"{name_or_path}.json"
        if not candidate.is_file():
            raise FileNotFoundError(f"no {kind} {str(name_or_path)!r}: not a file and not one of {choices}")
        path = Path(str(candidate))
    try:
        return json.loads(path.read_text()), str(path)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err})") from err


def load_config(name_or_path: str | os.PathLike | dict[str, Any]) -> dict[str, Any]:
    """A config as a dict: a shipped name (``"movi-e"``), a JSON file path, or a dict (copied)."""
    config, source = read_config_json(
        name_or_path, resources.files(__name__), "config", f"the shipped configs {available_configs()}"
    )
    unknown = set(config) - set(CONFIG_KEYS)
    if unknown:
        raise ValueError(f"config {source}: unknown field(s) {sorted(unknown)}; allowed: {list(CONFIG_KEYS)}")
    for key in ("backbone", "slot_attention", "unet", "scheduler"):
        if key not in config:
            raise ValueError(f"config {source}: missing component {key!r}")
    return config


def build_component(spec: dict[str, Any], field: str):
    """Instantiate one component entry (see the module docstring)."""
    from lsd.models.registry import component_class

    spec = dict(spec)
    cls = component_class(spec.pop("_class_name", None), f"config field {field!r}")
    if "pretrained" in spec:
        return _load_pretrained(cls, spec, field)
    from lsd.models._config import init_defaults

    unknown = set(spec) - set(init_defaults(cls))
    if unknown:
        raise ValueError(f"config field {field!r}: {cls.__name__} has no argument(s) {sorted(unknown)}")
    return cls.from_config(spec)


def _load_pretrained(cls: type, spec: dict[str, Any], field: str):
    from lsd.models import pretrained
    from lsd.models.dinov2 import DINOv2Backbone

    name = spec.pop("pretrained")
    subfolder = spec.pop("subfolder", None)
    if cls is DINOv2Backbone:
        return DINOv2Backbone.from_dinov2(name, **spec)
    if spec:
        raise ValueError(
            f"config field {field!r}: a pretrained entry takes only pretrained/subfolder, got {sorted(spec)}"
        )
    if cls.__name__ == "AutoencoderKL":
        return pretrained.load_pretrained_vae(name, subfolder)
    folder = pretrained.resolve_pretrained(name, subfolder, f"pretrained {field}", cls.config_name)
    return cls.from_pretrained(folder, local_files_only=True)


def build_model(config: str | os.PathLike | dict[str, Any], **components: Any):
    """Build a :class:`~lsd.LatentSlotDiffusion` from a config; ``components`` (e.g. ``vae=...``)
    are used instead of the config's entries (``vae=None`` builds a model without autoencoder)."""
    from lsd.models.lsd import LatentSlotDiffusion
    from lsd.models.objective_options import DiffusionObjective

    config = load_config(config)
    built = {}
    for field in ("backbone", "slot_attention", "unet", "scheduler", "vae"):
        if field in components:
            built[field] = components[field]
        elif config.get(field) is not None:
            built[field] = build_component(config[field], field)
    try:
        objective = DiffusionObjective(**config.get("objective", {}))
    except TypeError as err:
        raise ValueError(f"config field 'objective': {err}") from err
    return LatentSlotDiffusion(objective=objective, frozen=config.get("frozen", ()), **built)
