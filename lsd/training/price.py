"""What training a paper recipe costs, counted before renting a GPU (docs/perf.md, "What a paper
table costs").

For each ``<table>-paper`` training config: the FLOPs of one training step (forward and backward
of :func:`lsd.training.objective.training_loss`, matmuls, convolutions and attention as
``torch.utils.flop_counter.FlopCounterMode`` counts them, the real architectures at random init on
the ``meta`` device, so counting takes seconds and no memory), with and without the cache
(:mod:`lsd.cache`); the one-off FLOPs and disk of building the cache; and the GPU-hours these imply
at a stated fraction of a stated peak (:data:`H200_BF16_FLOP_S`, :data:`UTILISATION`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

#: Dense bf16 matmul rate measured on one H200 (``torch.matmul`` of large square matrices).
H200_BF16_FLOP_S = 790e12
#: The fraction of that peak a training step is assumed to reach (kernels, memory-bound ops, input).
UTILISATION = 0.40
#: Processes the release trains with (configs/movi-e/train.sh: 32 images per GPU on 4 GPUs); the
#: configs' ``train.batch_size`` is per process.
RELEASE_PROCESSES = 4
#: Training images of each paper recipe's split, and where the count comes from.
TRAIN_IMAGES: dict[str, tuple[int, str]] = {
    "movi-e": (210_578, "9,749 videos x 24 frames, the release's first 90 % (portion [0, 0.9])"),
    "movi-c": (210_319, "9,737 videos x 24 frames, the release's first 90 % (portion [0, 0.9])"),
    "clevr": (100_000, "CLEVR with masks: every image of the source (the paper's split is not recovered)"),
    "clevrtex": (40_000, "CLEVRTex full: the train fraction [0.2, 1.0) of 50,000"),
    "ffhq": (60_000, "FFHQ: the first 60,000 of 70,000"),
    "coco": (118_287, "COCO train2017"),
}


@dataclass(frozen=True)
class TablePrice:
    """The price of one paper recipe. FLOPs per step are per optimizer step of the global batch."""

    table: str
    train_config: str
    steps: int
    global_batch: int
    resolution: int
    cached_parts: tuple[str, ...]
    flops_per_image_uncached: int
    flops_per_image_cached: int
    cache_build_flops_per_image: int
    cache_bytes_per_image: int
    train_images: int
    views: int

    @property
    def total_flops_uncached(self) -> float:
        return float(self.flops_per_image_uncached) * self.global_batch * self.steps

    @property
    def total_flops_cached(self) -> float:
        return float(self.flops_per_image_cached) * self.global_batch * self.steps

    @property
    def cache_build_flops(self) -> float:
        return float(self.cache_build_flops_per_image) * self.train_images * self.views

    @property
    def cache_bytes(self) -> int:
        return self.cache_bytes_per_image * self.train_images * self.views

    def gpu_hours(self, flops: float) -> float:
        return flops / (H200_BF16_FLOP_S * UTILISATION) / 3600

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gpu_hours_uncached": self.gpu_hours(self.total_flops_uncached),
                "gpu_hours_cached": self.gpu_hours(self.total_flops_cached),
                "gpu_hours_cache_build": self.gpu_hours(self.cache_build_flops), "cache_bytes": self.cache_bytes}  # fmt: skip


def _random_pretrained_parts(model_config: dict[str, Any]) -> dict[str, Any]:
    """Random-weight stand-ins of the pretrained entries of a model config (their real
    architectures, :mod:`lsd.models.architectures`)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

    from lsd.models.architectures import DINOV2_BASE, SD21_UNET, SD21_VAE
    from lsd.models.dinov2 import DINOv2Backbone

    parts: dict[str, Any] = {}
    for name, spec in model_config.items():
        if not isinstance(spec, dict) or "pretrained" not in spec:
            continue
        if name == "vae":
            parts[name] = AutoencoderKL(**SD21_VAE)
        elif name == "unet":
            parts[name] = UNet2DConditionModel(**SD21_UNET)
        elif name == "backbone":
            parts[name] = DINOv2Backbone(dinov2_config=DINOV2_BASE, input_resolution=spec["input_resolution"])
        elif name == "scheduler":
            parts[name] = DDPMScheduler(beta_schedule="scaled_linear", prediction_type="v_prediction")
        else:
            raise ValueError(f"no architecture known for the pretrained {name!r} entry")
    return parts


def _count(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def price_table(table: str) -> TablePrice:
    """Count the FLOPs of the ``<table>-paper`` recipe (batch of one image, scaled to the global
    batch; FLOPs are linear in the batch)."""
    from lsd.configs import build_model, load_config
    from lsd.models.autoencoder import posterior_moments
    from lsd.training.config import load_train_config
    from lsd.training.objective import training_loss

    name = f"{table}-paper"
    config = load_train_config(name)
    model_config = load_config(config.model)
    side = config.data.resolution
    dino = config.data.dinov2_resolution
    with torch.device("meta"):
        torch.manual_seed(0)
        model = build_model(model_config, **_random_pretrained_parts(model_config))
        pixels = torch.zeros(1, 3, side, side)
        view = torch.zeros(1, 3, dino, dino) if dino else None
    cached_parts = ("vae",) + (("backbone",) if config.cache.backbone else ())

    with torch.no_grad():  # what the cache holds for this image (its build: one encode, counted below)
        with FlopCounterMode(display=False) as counter:
            posterior = torch.cat(posterior_moments(model.vae, pixels), dim=1)
            features = model.backbone(view if view is not None else pixels) if config.cache.backbone else None
        build_flops = int(counter.get_total_flops())
    cache_bytes = posterior.numel() * 4 + (features.numel() * 4 if features is not None else 0)  # float32

    def step(cached: bool) -> None:
        kwargs: dict[str, Any] = {"backbone_pixel_values": view}
        if cached:
            kwargs |= {"posterior": posterior, "backbone_features": features}
        training_loss(model, pixels, generator=[torch.Generator().manual_seed(0)], **kwargs).loss.backward()
        model.zero_grad(set_to_none=True)

    flops_uncached, flops_cached = _count(lambda: step(False)), _count(lambda: step(True))
    processes = RELEASE_PROCESSES
    return TablePrice(
        table=table,
        train_config=name,
        steps=config.train.max_steps,
        global_batch=config.train.batch_size * config.train.grad_accum * processes,
        resolution=side,
        cached_parts=cached_parts,
        flops_per_image_uncached=flops_uncached,
        flops_per_image_cached=flops_cached,
        cache_build_flops_per_image=build_flops,
        cache_bytes_per_image=cache_bytes,
        train_images=TRAIN_IMAGES[table][0],
        views=2 if config.data.flip else 1,
    )


__all__ = ["H200_BF16_FLOP_S", "RELEASE_PROCESSES", "TRAIN_IMAGES", "TablePrice", "UTILISATION", "price_table"]
