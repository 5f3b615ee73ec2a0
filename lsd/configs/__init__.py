"""Shipped model configs and the builder that turns a config into a :class:`LatentSlotDiffusion`.

A config is JSON with one entry per component (``vae``, ``backbone``, ``slot_attention``,
``unet``, ``scheduler``) plus ``objective``, ``frozen``, ``resolution``, ``name`` and
``description``. A component entry is either a diffusers config (``_class_name`` plus the class's
init fields; built with random weights) or ``{"pretrained": NAME_OR_PATH, "subfolder": ...,
"_class_name": ...}`` (loaded from a local folder or the local Hugging Face cache, never
downloaded). Shipped: ``movi-e``, ``coco`` (the release's), ``movi-c``, ``clevr``, ``clevrtex``,
``ffhq`` (the paper's datasets; mostly guesses, see below), ``cpu`` (embedded default), ``tiny``.

Provenance: ``provenance/<name>.json`` beside the configs says, for every leaf field of the
shipped paper configs (model configs and ``train/<name>.json`` training configs), where its value
comes from: ``"paper"`` (the paper states it), ``"release"`` (a file of the official release,
named in the note) or ``"derived"`` (a guess, mostly the release's MOVi-E value carried over;
:func:`guessed_fields` lists them). docs/paper-configs.md tabulates them.
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
#: The values a provenance entry's ``source`` may take.
PROVENANCE_SOURCES = ("paper", "release", "derived")


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


def config_leaves(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf of a nested config as ``{"dotted.path": value}``, in file order. A leaf is any
    value that is not a non-empty dict (lists such as ``optim.betas``, ``null`` and ``{}`` are leaves)."""
    leaves: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            leaves.update(config_leaves(value, f"{path}."))
        else:
            leaves[path] = value
    return leaves


def shipped_config_json(name: str) -> dict[str, Any]:
    """The JSON of the shipped model config ``<name>.json`` or training config ``train/<name>.json``,
    exactly as written (no defaults filled in)."""
    folder = resources.files(__name__)
    found = [c for c in (folder / f"{name}.json", folder / "train" / f"{name}.json") if c.is_file()]
    if len(found) != 1:
        what = "no shipped model or training config" if not found else "both a model and a training config"
        raise FileNotFoundError(f"{what} named {name!r}")
    return read_config_json(str(found[0]), folder, "config", "")[0]


def provenance(name: str) -> dict[str, dict[str, str]]:
    """Where each field of the shipped config ``name`` comes from (``provenance/<name>.json``):
    ``{"slot_attention.num_slots": {"source": "paper" | "release" | "derived", "note": "..."}}``,
    one entry per leaf of the config (see :func:`config_leaves`), in the config's order.

    Raises ``FileNotFoundError`` when ``name`` has no provenance file, ``ValueError`` naming the
    file when an entry is malformed, has another source, or the entries and the config's leaves
    differ (a field without provenance, or provenance for a field the config no longer has)."""
    folder = resources.files(__name__) / "provenance"
    sidecar = folder / f"{name}.json"
    if not sidecar.is_file():
        known = sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))
        raise FileNotFoundError(f"no provenance for config {name!r}; known: {known}")
    entries, source = read_config_json(str(sidecar), folder, "provenance", "")
    for field, entry in entries.items():
        if not (isinstance(entry, dict) and set(entry) == {"source", "note"} and isinstance(entry["note"], str)):
            raise ValueError(f"{source}: entry {field!r} must be {{'source': ..., 'note': str}}, got {entry!r}")
        if entry["source"] not in PROVENANCE_SOURCES:
            raise ValueError(f"{source}: entry {field!r} has source {entry['source']!r}; allowed: {PROVENANCE_SOURCES}")
    leaves = list(config_leaves(shipped_config_json(name)))
    missing, stale = [f for f in leaves if f not in entries], [f for f in entries if f not in leaves]
    if missing or stale:
        raise ValueError(f"{source}: fields without provenance {missing}; entries for no field {stale}")
    return {field: entries[field] for field in leaves}


def guessed_fields(name: str) -> list[str]:
    """The fields of the shipped config ``name`` whose value is a guess (source ``"derived"``), in
    the config's order."""
    return [field for field, entry in provenance(name).items() if entry["source"] == "derived"]


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
