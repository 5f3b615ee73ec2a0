"""Training configs: JSON files (one per dataset and budget) -> typed, validated pydantic models.

A training config names a model config (see :mod:`lsd.configs`), the data, the autoencoder stage
and the optimisation recipe. Any field can be overridden with ``section.field=value`` strings
(``--set train.max_steps=100`` on the command line; values parse as JSON, else as strings), the
model config's fields too (``--set model.slot_attention.num_slots=11`` resolves a named model
config into a dict first). Every field has a type and a range, checked strictly (``"8"`` or
``true`` is not an integer, NaN is not a learning rate); an error names the field, the value and
what is allowed, as do unknown fields. The resolved config is saved beside every checkpoint.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: Learning-rate schedules of ``diffusers.optimization.get_scheduler`` that need no extra arguments.
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
#: Difficulty levels of the synthetic stand-in (:data:`lsd.data.synthetic.LEVELS`).
SYNTH_LEVELS = ("easy", "medium", "hard", "smooth")

PositiveInt = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class _Section(BaseModel):
    """Strict: no coercion (``"8"``, ``true`` and ``8.0`` are not integers), no NaN/inf, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, validate_assignment=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


class DataConfig(_Section):
    """Where the training images come from.

    kind: ``"glob"`` (every image under ``root`` matching ``pattern``: the release's dataset),
        ``"synth"`` (generate the synthetic stand-in under ``root`` first, cached, then read its
        train-split images with the same glob reader) or ``"dataset"`` (the images of split
        ``split`` of the real reader ``dataset`` over ``root``, cropped as that reader crops them:
        :func:`lsd.data.readers.open_dataset`; e.g. CLEVRTex's index-fraction train split).
    portion: the release's split (sorted, shuffled with seed 42, ``[lo, hi)``); ``None`` = all.
    """

    kind: Literal["glob", "synth", "dataset"] = "glob"
    root: str | None = None
    # kind == "dataset": which reader, which split, and (FFHQ) how many sorted files are train
    dataset: Literal["movi-e", "movi-c", "clevr", "clevrtex", "coco", "ffhq"] | None = None
    split: str | None = Field(None, min_length=1)  # None: "train"
    ffhq_num_train: int | None = Field(None, ge=1)
    # kind == "dataset": also the same split of a second reader (CLEVR's LSD-Mix: CLEVR + CLEVRTex)
    mix_dataset: Literal["movi-e", "movi-c", "clevr", "clevrtex", "coco", "ffhq"] | None = None
    mix_root: str | None = None
    pattern: str = Field("**/*.png", min_length=1)
    portion: Annotated[list[Fraction], Field(min_length=2, max_length=2)] | None = None
    resolution: int = Field(256, ge=8)
    flip: bool = False
    dinov2_resolution: int | None = Field(None, ge=14)
    num_workers: int = Field(0, ge=0)
    # synthetic stand-in (kind == "synth")
    synth_level: Literal[SYNTH_LEVELS] = "hard"
    synth_num_train: int = Field(1000, ge=1)
    synth_num_validation: int = Field(100, ge=0)
    synth_seed: int = Field(0, ge=0)


class AutoencoderConfig(_Section):
    """The frozen autoencoder stage (recorded in every result).

    kind: ``"model"`` (the model config's ``vae`` entry, e.g. the SD 2.1 VAE from local files),
        ``"pretrained"`` (an ``AutoencoderKL`` folder or cached repo id in ``path``),
        ``"pixel_unshuffle"`` (lossless space-to-depth by ``factor``, no training), or
        ``"train_kl"`` (a small ``AutoencoderKL`` trained on the training images first for
        ``train_steps`` steps and cached under ``<output_dir>/../autoencoders/<hash>``).
    """

    kind: Literal["model", "pretrained", "pixel_unshuffle", "train_kl"] = "model"
    path: str | None = None
    factor: int = Field(4, ge=1)
    scaling_factor: float = Field(2.0, gt=0)
    train_steps: int = Field(2000, ge=1)
    train_batch_size: int = Field(16, ge=1)
    train_lr: float = Field(1e-3, gt=0)
    kl_weight: float = Field(1e-6, ge=0)
    block_out_channels: list[PositiveInt] = Field(default_factory=lambda: [32, 64, 64], min_length=1)
    latent_channels: int = Field(4, ge=1)


class CacheConfig(_Section):
    """Cached outputs of the frozen networks (:mod:`lsd.cache`, docs/perf.md "Cached latents").

    latents: draw each step's latents from the VAE posterior cached once per image, instead of
        encoding the images again (about half a MOVi-E step's FLOPs). Needs an ``AutoencoderKL``
        (a pixel-unshuffle autoencoder is a reshape of the pixels: nothing to cache).
    backbone: feed slot attention a frozen backbone's cached features (Stable-LSD's DINOv2).
        Needs ``"backbone"`` among the model's ``frozen`` components.
    dir: the cache folder (``vae-posterior/`` and ``backbone-features/`` inside); ``None``:
        ``<output_dir>/../cache/<data>-<resolution>px``, shared by the runs beside it.
    dtype: ``"float32"`` (losses and gradients equal the uncached path's) or ``"bfloat16"``
        (half the disk, not bitwise).
    hash_files: key the images by sha256 instead of size + modification time.
    With random flips (``data.flip``) each image is cached as read and mirrored.
    """

    latents: bool = False
    backbone: bool = False
    dir: str | None = Field(None, min_length=1)
    dtype: Literal["float32", "bfloat16"] = "float32"
    hash_files: bool = False
    shard_size: int = Field(1024, ge=1)


class OptimConfig(_Section):
    """AdamW with two groups: encoder (backbone + slot attention, ``lr * encoder_lr_scale``) and decoder."""

    lr: float = Field(1e-4, gt=0)
    encoder_lr_scale: float = Field(1.0, ge=0)
    betas: Annotated[list[Annotated[float, Field(ge=0.0, lt=1.0)]], Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: [0.9, 0.999]
    )
    weight_decay: float = Field(1e-2, ge=0)
    eps: float = Field(1e-8, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    lr_scheduler: Literal[LR_SCHEDULERS] = "constant"
    warmup_steps: int = Field(0, ge=0)


class TrainLoopConfig(_Section):
    """batch_size is per device and micro-batch: one optimizer step sees
    ``batch_size * num_processes * grad_accum`` images."""

    batch_size: int = Field(32, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_steps: int = Field(200_000, ge=1)
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    seed: int = Field(42, ge=0, lt=2**32)  # numpy seeds are 32-bit
    log_every: int = Field(10, ge=1)
    diagnostic_every: int = Field(50, ge=0)  # loss with slots shuffled across the batch (does the decoder use them?)


class CheckpointConfig(_Section):
    every: int = Field(25_000, ge=1)
    total_limit: int | None = Field(2, ge=1)
    # SIGINT / SIGTERM: also save a checkpoint of the step reached before stopping (docs/checkpoints.md)
    on_interrupt: bool = False


class ValidationConfig(_Section):
    every: int = Field(5_000, ge=0)  # 0 disables validation images
    num_images: int = Field(4, ge=0)
    sample_steps: int = Field(25, ge=1)


class TrainConfig(_Section):
    name: str = "custom"
    model: str | dict[str, Any] = "movi-e"  # a shipped model config name, a path, or an inline dict
    # Start from these weights (an lsd model folder, or a training checkpoint holding ``model/``)
    # with a fresh optimizer and schedule at step 0; every parameter must match the model's shape.
    # Ignored when the run resumes (the checkpoint holds the weights). None: random init.
    init_from: str | None = None
    # With init_from: copy only these components' weights (e.g. ["backbone", "slot_attention"] to
    # train a new decoder on a trained encoder); the others keep their fresh init and may differ in
    # shape from the source's. None: every component.
    init_from_components: list[Literal["backbone", "slot_attention", "unet", "vae"]] | None = Field(None, min_length=1)
    output_dir: str = Field("outputs/lsd", min_length=1)
    data: DataConfig = Field(default_factory=DataConfig)
    autoencoder: AutoencoderConfig = Field(default_factory=AutoencoderConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainLoopConfig = Field(default_factory=TrainLoopConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        """Checks across fields (run after every field is valid)."""
        data, autoencoder = self.data, self.autoencoder
        if data.kind == "glob" and data.root is None:
            raise ValueError("data.root is required for data.kind='glob'")
        if data.kind == "dataset" and (data.dataset is None or data.root is None):
            raise ValueError("data.kind='dataset' needs data.dataset (the reader) and data.root")
        if (data.mix_dataset is None) != (data.mix_root is None) or (data.mix_dataset and data.kind != "dataset"):
            raise ValueError("data.mix_dataset and data.mix_root go together, with data.kind='dataset'")
        if data.kind == "dataset" and (data.portion is not None or data.dinov2_resolution is not None):
            raise ValueError(
                "data.kind='dataset' reads the reader's own split and crop: data.portion and "
                "data.dinov2_resolution apply to data.kind='glob' only"
            )
        if data.portion is not None and not data.portion[0] < data.portion[1]:
            raise ValueError(f"data.portion={data.portion}: needs lo < hi")
        if autoencoder.kind == "pretrained" and not autoencoder.path:
            raise ValueError("autoencoder.path is required for autoencoder.kind='pretrained'")
        if self.init_from_components is not None and self.init_from is None:
            raise ValueError(f"init_from_components={self.init_from_components} needs init_from")
        return self


_UNION_TAGS = {"str", "int", "float", "bool", "none", "list", "dict"}


def _where(loc: tuple) -> str:
    """Dotted field path of a pydantic error location, without the tags a union adds (``str``, ``list[...]``)."""
    parts = [str(p) for p in loc if isinstance(p, int) or (str(p) not in _UNION_TAGS and "[" not in str(p))]
    return ".".join(parts) or "<root>"


def _describe(error: dict[str, Any]) -> str:
    """One pydantic error as ``field=value: what is allowed``."""
    where, message = _where(error["loc"]), error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown config field {where}"
    if error["type"] == "value_error":  # a cross-field check: its message names the fields
        return message
    return f"{where}={error['input']!r}: {message}"


def _build(values: Any) -> TrainConfig:
    if not isinstance(values, dict):
        raise ValueError(f"a training config must be a JSON object, got {values!r}")
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as err:
        seen, parts = set(), []
        for error in err.errors():
            where = _where(error["loc"])
            if where not in seen:  # one message per field (a union reports each of its branches)
                seen.add(where)
                parts.append(_describe(error))
        raise ValueError("; ".join(parts)) from None


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
    from lsd.configs import read_config_json

    values, source = read_config_json(
        name_or_path, resources.files("lsd.configs") / "train", "training config", str(available_train_configs())
    )
    values = apply_overrides(values, list(overrides))
    try:
        return _build(values)
    except ValueError as err:
        raise ValueError(f"training config {source}: {err}") from None


__all__ = [
    "AutoencoderConfig", "CacheConfig", "CheckpointConfig", "DataConfig", "OptimConfig", "TrainConfig", "TrainLoopConfig",
    "ValidationConfig", "apply_overrides", "available_train_configs", "load_train_config",
]  # fmt: skip
