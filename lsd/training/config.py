"""Training configs: JSON files (one per dataset and budget) -> nested dataclasses.

A training config names a model config (see :mod:`lsd.configs`), the data, the autoencoder stage
and the optimisation recipe. Any field can be overridden with ``section.field=value`` strings
(``--set train.max_steps=100`` on the command line; values parse as JSON, else as strings), the
model config's fields too (``--set model.slot_attention.num_slots=11`` resolves a named model
config into a dict first). Unknown fields are errors that name the field. The resolved config is
saved beside every checkpoint.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from importlib import resources
from pathlib import Path
from typing import Any, get_type_hints


@dataclass
class DataConfig:
    """Where the training images come from.

    kind: ``"glob"`` (every image under ``root`` matching ``pattern``: the release's dataset) or
        ``"synth"`` (generate the synthetic stand-in under ``root`` first, cached, then read its
        train-split images with the same glob reader).
    portion: the release's split (sorted, shuffled with seed 42, ``[lo, hi)``); ``None`` = all.
    """

    kind: str = "glob"
    root: str | None = None
    pattern: str = "**/*.png"
    portion: list[float] | None = None
    resolution: int = 256
    flip: bool = False
    dinov2_resolution: int | None = None
    num_workers: int = 0
    # synthetic stand-in (kind == "synth")
    synth_level: str = "hard"
    synth_num_train: int = 1000
    synth_num_validation: int = 100
    synth_seed: int = 0


@dataclass
class AutoencoderConfig:
    """The frozen autoencoder stage (recorded in every result).

    kind: ``"model"`` (the model config's ``vae`` entry, e.g. the SD 2.1 VAE from local files),
        ``"pretrained"`` (an ``AutoencoderKL`` folder or cached repo id in ``path``),
        ``"pixel_unshuffle"`` (lossless space-to-depth by ``factor``, no training), or
        ``"train_kl"`` (a small ``AutoencoderKL`` trained on the training images first for
        ``train_steps`` steps and cached under ``<output_dir>/../autoencoders/<hash>``).
    """

    kind: str = "model"
    path: str | None = None
    factor: int = 4
    scaling_factor: float = 2.0
    train_steps: int = 2000
    train_batch_size: int = 16
    train_lr: float = 1e-3
    kl_weight: float = 1e-6
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 64])
    latent_channels: int = 4


@dataclass
class OptimConfig:
    """AdamW with two groups: encoder (backbone + slot attention, ``lr * encoder_lr_scale``) and decoder."""

    lr: float = 1e-4
    encoder_lr_scale: float = 1.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 1e-2
    eps: float = 1e-8
    max_grad_norm: float | None = 1.0
    lr_scheduler: str = "constant"
    warmup_steps: int = 0


@dataclass
class TrainLoopConfig:
    """batch_size is per device and micro-batch: one optimizer step sees
    ``batch_size * num_processes * grad_accum`` images."""

    batch_size: int = 32
    grad_accum: int = 1
    max_steps: int = 200_000
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16"
    seed: int = 42
    log_every: int = 10
    diagnostic_every: int = 50  # loss with slots shuffled across the batch (does the decoder use them?)


@dataclass
class CheckpointConfig:
    every: int = 25_000
    total_limit: int | None = 2


@dataclass
class ValidationConfig:
    every: int = 5_000  # 0 disables validation images
    num_images: int = 4
    sample_steps: int = 25


@dataclass
class TrainConfig:
    name: str = "custom"
    model: str | dict = "movi-e"  # a shipped model config name, a path, or an inline dict
    # Start from these weights (an lsd model folder, or a training checkpoint holding ``model/``)
    # with a fresh optimizer and schedule at step 0; every parameter must match the model's shape.
    # Ignored when the run resumes (the checkpoint holds the weights). None: random init.
    init_from: str | None = None
    # With init_from: copy only these components' weights (e.g. ["backbone", "slot_attention"] to
    # train a new decoder on a trained encoder); the others keep their fresh init and may differ in
    # shape from the source's. None: every component.
    init_from_components: list[str] | None = None
    output_dir: str = "outputs/lsd"
    data: DataConfig = field(default_factory=DataConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(cls: type, values: dict[str, Any], where: str):
    if not isinstance(values, dict):
        raise ValueError(f"config field {where or '<root>'} must be an object, got {values!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ValueError(f"unknown config field(s) {sorted(prefix + u for u in unknown)}; allowed: {sorted(known)}")
    hints = get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        sub = hints[name]
        path = f"{where}.{name}" if where else name
        kwargs[name] = _build(sub, value, path) if is_dataclass(sub) else value
    return cls(**kwargs)


def available_train_configs() -> list[str]:
    folder = resources.files("lsd.configs") / "train"
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``"a.b=value"`` strings to a nested dict (validated later by :func:`load_train_config`).

    An override inside ``model`` (``model.slot_attention.num_slots=11``) while ``model`` is a
    config name or path first replaces it by that config's dict (:func:`lsd.configs.load_config`).
    """
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like section.field=value")
        node = values
        parts = key.split(".")
        if len(parts) > 1 and parts[0] == "model" and isinstance(values.get("model"), str):
            from lsd.configs import load_config

            values["model"] = load_config(values["model"])
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = _parse_value(raw)
    return values


def load_train_config(name_or_path: str | os.PathLike | dict, overrides: list[str] = ()) -> TrainConfig:
    """A shipped training config name (``lsd.configs/train/<name>.json``), a JSON path or a dict,
    with ``overrides`` applied."""
    if isinstance(name_or_path, dict):
        values, source = json.loads(json.dumps(name_or_path)), "<dict>"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            shipped = resources.files("lsd.configs") / "train" / f"{name_or_path}.json"
            if not shipped.is_file():
                raise FileNotFoundError(
                    f"no training config {str(name_or_path)!r}: not a file and not one of {available_train_configs()}"
                )
            path = Path(str(shipped))
        source = str(path)
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: invalid JSON ({err})") from err
    values = apply_overrides(values, list(overrides))
    try:
        config = _build(TrainConfig, values, "")
    except (TypeError, ValueError) as err:
        raise ValueError(f"training config {source}: {err}") from err
    validate(config)
    return config


_MODEL_COMPONENTS = ("backbone", "slot_attention", "unet", "vae")  # LatentSlotDiffusion's weight-holding parts


def validate(config: TrainConfig) -> None:
    """Value checks that name the offending field."""
    checks = [
        (config.data.kind in ("glob", "synth"), "data.kind must be 'glob' or 'synth'"),
        (config.data.kind == "synth" or config.data.root is not None, "data.root is required for data.kind='glob'"),
        (config.autoencoder.kind in ("model", "pretrained", "pixel_unshuffle", "train_kl"),
         "autoencoder.kind must be one of model, pretrained, pixel_unshuffle, train_kl"),
        (config.autoencoder.kind != "pretrained" or config.autoencoder.path, "autoencoder.path is required for kind 'pretrained'"),
        (config.train.mixed_precision in ("no", "fp16", "bf16"), "train.mixed_precision must be no, fp16 or bf16"),
        (config.train.batch_size >= 1, "train.batch_size must be >= 1"),
        (config.train.grad_accum >= 1, "train.grad_accum must be >= 1"),
        (config.train.max_steps >= 1, "train.max_steps must be >= 1"),
        (config.checkpoint.every >= 1, "checkpoint.every must be >= 1"),
        (config.checkpoint.total_limit is None or config.checkpoint.total_limit >= 1, "checkpoint.total_limit must be >= 1 or null"),
        (config.optim.lr > 0, "optim.lr must be > 0"),
        (config.init_from_components is None or config.init_from is not None,
         "init_from_components needs init_from"),
        (config.init_from_components is None
         or (bool(config.init_from_components) and set(config.init_from_components) <= set(_MODEL_COMPONENTS)),
         f"init_from_components must be a non-empty list of {list(_MODEL_COMPONENTS)}"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise ValueError(f"invalid training config: {message}")


__all__ = [
    "AutoencoderConfig", "CheckpointConfig", "DataConfig", "OptimConfig", "TrainConfig", "TrainLoopConfig",
    "ValidationConfig", "apply_overrides", "available_train_configs", "load_train_config",
]  # fmt: skip
