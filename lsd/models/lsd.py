"""``LatentSlotDiffusion``: VAE + object encoder + slot attention + slot-conditioned denoiser.

This module holds the components, their compatibility checks, encoding (slots, latents),
segmentation and save/load. The training loss is :mod:`lsd.training.objective`; sampling (slots
-> images, classifier-free guidance) is :class:`lsd.pipelines.LSDPipeline`.

    pixels (B, 3, R, R) in [-1, 1] --frozen VAE--> z (B, c, R/f, R/f)
    pixels --backbone--> features (B, C, h, w) --slot attention--> slots (B, S, D_out), attn
    unet(z_t, t, encoder_hidden_states=slots).sample -> eps or v (the scheduler's prediction_type)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from torch import nn

from lsd._atomic import atomic_dir
from lsd._integrity import check_finite, check_links, inside, verify_manifest, write_manifest
from lsd.backends import resolve_kernel_backend
from lsd.models.autoencoder import (
    Autoencoder,
    PixelUnshuffleAutoencoder,
    decode_latents,
    encode_latents,
    sample_posterior,
)
from lsd.models.denoiser import set_unet_kernel_backend
from lsd.models.objective_options import DiffusionObjective
from lsd.models.registry import component_classes
from lsd.models.slot_attention import SlotAttention, SlotAttentionOutput

LSD_CONFIG_NAME = "lsd_config.json"
PREDICTION_TYPES = ("epsilon", "v_prediction")


class LatentSlotDiffusion(nn.Module):
    """The LSD model. Components are ordinary diffusers/torch modules, reachable as attributes.

    Args:
        backbone: pixels ``(B, 3, R, R)`` -> features ``(B, C, h, w)`` (:class:`CNNBackbone` or
            :class:`~lsd.models.dinov2.DINOv2Backbone`); any module exposing ``feature_channels``
            (``C``) and ``feature_resolution`` (``h == w``) works.
        slot_attention: :class:`SlotAttention` with ``input_size == C``, ``input_resolution == h``.
        unet: the denoiser, any ``UNet2DConditionModel`` (usually :class:`SlotConditionedUNet`)
            with ``cross_attention_dim == slot_attention.out_size``.
        scheduler: ``DDPMScheduler``; its ``prediction_type`` picks the training target.
        vae: the frozen autoencoder (``AutoencoderKL`` or :class:`PixelUnshuffleAutoencoder`), or
            ``None`` for a model that only encodes/segments (training and sampling then raise).
        objective: :class:`DiffusionObjective`, the training options (used by
            :func:`lsd.training.objective.training_loss`; its ``min_timestep`` also stops
            :class:`lsd.pipelines.LSDPipeline` sampling early).
        frozen: component names whose parameters are frozen (Stable-LSD: ``("backbone", "unet")``).
            The VAE is always frozen.
    """

    COMPONENTS = ("backbone", "slot_attention", "unet", "vae", "scheduler")
    TRAINABLE = ("backbone", "slot_attention", "unet")

    def __init__(
        self,
        backbone: nn.Module,
        slot_attention: SlotAttention,
        unet: UNet2DConditionModel,
        scheduler: DDPMScheduler,
        vae: Autoencoder | None = None,
        objective: DiffusionObjective | None = None,
        frozen: Iterable[str] = (),
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.slot_attention = slot_attention
        self.unet = unet
        self.vae = vae
        self.scheduler = scheduler
        self.objective = objective or DiffusionObjective()
        self.frozen = tuple(frozen)
        self._check_compatible()
        for name in self.frozen:
            getattr(self, name).requires_grad_(False)
        if vae is not None:
            vae.requires_grad_(False)

    def _check_compatible(self) -> None:
        sa = self.slot_attention.config
        problems = []
        if self.backbone.feature_channels != sa.input_size:
            problems.append(
                f"backbone gives {self.backbone.feature_channels} channels, slot_attention.input_size={sa.input_size}"
            )
        if self.backbone.feature_resolution != sa.input_resolution:
            problems.append(
                f"backbone gives {self.backbone.feature_resolution}px maps, slot_attention.input_resolution={sa.input_resolution}"
            )
        if self.unet.config.cross_attention_dim != sa.out_size:
            problems.append(
                f"unet.cross_attention_dim={self.unet.config.cross_attention_dim}, slot_attention.out_size={sa.out_size}"
            )
        if self.scheduler.config.prediction_type not in PREDICTION_TYPES:
            problems.append(
                f"scheduler.prediction_type={self.scheduler.config.prediction_type!r} (expected one of {PREDICTION_TYPES})"
            )
        if self.vae is not None:
            latent_channels = (
                self.vae.latent_channels
                if isinstance(self.vae, PixelUnshuffleAutoencoder)
                else self.vae.config.latent_channels
            )
            if latent_channels != self.unet.config.in_channels:
                problems.append(
                    f"vae gives {latent_channels} latent channels, unet.in_channels={self.unet.config.in_channels}"
                )
        unknown = set(self.frozen) - set(self.TRAINABLE)
        if unknown:
            problems.append(f"frozen names {sorted(unknown)} are not among {self.TRAINABLE}")
        obj = self.objective
        last = self.scheduler.config.num_train_timesteps - 1
        if not 0 <= obj.min_timestep <= (obj.max_timestep if obj.max_timestep is not None else last) <= last:
            problems.append(
                f"objective timestep range [{obj.min_timestep}, {obj.max_timestep}] is not within [0, {last}]"
            )
        if problems:
            raise ValueError("incompatible LatentSlotDiffusion components: " + "; ".join(problems))

    @property
    def device(self) -> torch.device:
        return self.slot_attention.slot_mu.device

    # -- encoding ------------------------------------------------------------------------------
    def encode(
        self,
        pixel_values: torch.Tensor,
        noise: torch.Tensor | None = None,
        backbone_pixel_values: torch.Tensor | None = None,
    ) -> SlotAttentionOutput:
        """Slots and attention of images.

        Args:
            pixel_values: ``(B, 3, R, R)`` in [-1, 1] (``(B, T, 3, R, R)`` for videos).
            noise: optional ``(B, num_slots, slot_size)`` standard-normal draws for the slot init.
            backbone_pixel_values: a separately preprocessed view for the backbone (Stable-LSD:
                448 px, ImageNet-normalised for DINOv2); defaults to ``pixel_values``.

        Returns:
            ``.slots`` ``(B, S, out_size)``; ``.attn`` ``(B, heads, N, S)`` (last iteration, softmax
            over slots, before epsilon); ``.hidden`` ``(B, S, slot_size)``.
        """
        features = self.backbone(pixel_values if backbone_pixel_values is None else backbone_pixel_values)
        return self.slot_attention(features, noise=noise)

    def encode_features(self, features: torch.Tensor, noise: torch.Tensor | None = None) -> SlotAttentionOutput:
        """Slots and attention from backbone features ``(B, C, h, w)`` already computed (a frozen
        backbone's, read from :mod:`lsd.cache`): :meth:`encode` without the backbone."""
        if "backbone" not in self.frozen:
            raise ValueError(
                "backbone features can stand in for the backbone only when it is frozen "
                f"(this model's frozen components: {list(self.frozen) or 'none'})"
            )
        return self.slot_attention(features, noise=noise)

    def encode_latents(
        self, pixel_values: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None = None
    ) -> torch.Tensor:
        """Pixels ``(B, 3, R, R)`` -> scaled VAE latents (sampled from the posterior, no grad)."""
        return encode_latents(self._require_vae(), pixel_values, generator)

    def latents_from_posterior(
        self, posterior: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None = None
    ) -> torch.Tensor:
        """Scaled latents drawn from a cached VAE posterior ``(B, 2c, h, w)`` (mean, then logvar):
        the same draw as :meth:`encode_latents` makes from the posterior it computes."""
        vae = self._require_vae()
        if not isinstance(vae, AutoencoderKL):
            raise TypeError(
                f"a cached posterior needs an AutoencoderKL; this model's autoencoder is {type(vae).__name__}"
            )
        return sample_posterior(posterior.to(vae.dtype), vae.config.scaling_factor, generator)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> pixels in [-1, 1] (not clamped)."""
        return decode_latents(self._require_vae(), latents)

    def _require_vae(self) -> Autoencoder:
        if self.vae is None:
            raise RuntimeError(
                "this LatentSlotDiffusion has no autoencoder: set `model.vae` (e.g. "
                "lsd.load_pretrained_vae(...) or PixelUnshuffleAutoencoder(...)) before using latents"
            )
        return self.vae

    def segment(
        self,
        pixel_values: torch.Tensor,
        size: int | tuple[int, int],
        noise: torch.Tensor | None = None,
        backbone_pixel_values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted slot id per pixel, ``(B, H, W)`` int64, for ``size = (H, W)``.

        The release's rule: last-iteration attention summed over heads, bilinearly resized
        (``align_corners=False``) from the feature grid to ``size``, argmax over slots.
        """
        attn = self.encode(pixel_values, noise=noise, backbone_pixel_values=backbone_pixel_values).attn
        return attention_to_segmentation(attn, size)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters: ``"encoder"`` (backbone + slot attention; the release scales its
        lr by ``encoder_lr_scale``) and ``"decoder"`` (the denoiser)."""

        def trainable(*modules: nn.Module) -> list[nn.Parameter]:
            return [p for m in modules for p in m.parameters() if p.requires_grad]

        return {"encoder": trainable(self.backbone, self.slot_attention), "decoder": trainable(self.unet)}

    # -- kernels -------------------------------------------------------------------------------
    def set_kernel_backend(self, name: str) -> str:
        """Route slot attention and the denoiser's attention through ``"torch"`` (reference),
        ``"triton"`` (fused kernels) or ``"auto"``; returns the backend now in use."""
        resolved = resolve_kernel_backend(name, self.device)  # raises before changing anything
        self.slot_attention.set_kernel_backend(resolved)
        set_unet_kernel_backend(self.unet, resolved)
        return resolved

    # -- persistence ---------------------------------------------------------------------------
    def save_pretrained(
        self, save_directory: str | os.PathLike, write_extra: Callable[[Path], None] | None = None
    ) -> None:
        """Write the whole model as one folder: a subfolder per component (diffusers layout, weights
        in safetensors), ``lsd_config.json`` and, last, ``manifest.json`` (size + sha256 of every
        file). Written to a temporary folder first, then renamed into place (:mod:`lsd._atomic`).

        ``write_extra(folder)``: writes further files into the folder before the manifest, so they
        are covered by it (the pipeline's null embedding)."""
        with atomic_dir(save_directory) as tmp:
            components = {}
            for name in self.COMPONENTS:
                component = getattr(self, name)
                if component is None:
                    continue
                component.save_pretrained(tmp / name)
                components[name] = type(component).__name__
            meta = {"components": components, "objective": asdict(self.objective), "frozen": list(self.frozen)}
            (tmp / LSD_CONFIG_NAME).write_text(json.dumps(meta, indent=2) + "\n")
            if write_extra is not None:
                write_extra(tmp)
            write_manifest(tmp)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, **component_overrides: Any) -> LatentSlotDiffusion:
        """Load a folder written by :meth:`save_pretrained` (safetensors and JSON only). Keyword
        arguments replace components (e.g. ``vae=...`` for a model saved without one).

        Checks first, naming the file: its ``manifest.json`` when there is one (folders written by
        older versions have none), a readable ``lsd_config.json``, and a complete safetensors file
        for each component with weights (a pickled ``.bin`` is never read). Raises
        :class:`~lsd._integrity.NonFiniteWeightsError` naming a tensor with NaN/inf values."""
        directory = Path(directory)
        meta_path = directory / LSD_CONFIG_NAME
        if not meta_path.is_file():
            hint = ""
            if (directory / "multiheadstevesa").is_dir():
                hint = " It looks like a release checkpoint: use lsd.load_official_checkpoint()."
            raise FileNotFoundError(f"{directory} is not an lsd model folder: {meta_path} is missing.{hint}")
        check_links(directory, "model folder")  # no link leaving the folder or dangling
        verify_manifest(directory, required=False)
        try:
            meta = json.loads(meta_path.read_text())
            listed = dict(meta["components"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise ValueError(f"{meta_path}: not an lsd model config ({type(err).__name__}: {err})") from err
        classes = component_classes()
        components: dict[str, Any] = {}
        for name, class_name in listed.items():
            if name not in cls.COMPONENTS:
                raise ValueError(
                    f"{meta_path}: unknown component {name!r}; an lsd model has {', '.join(cls.COMPONENTS)}"
                )
            if name in component_overrides:
                continue
            if class_name not in classes:
                raise ValueError(f"{meta_path}: unknown component class {class_name!r} for {name!r}")
            folder = inside(directory, name, str(meta_path))
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} is missing (listed in {meta_path})")
            components[name] = _load_component(classes[class_name], folder)
        components.update(component_overrides)
        try:
            objective = DiffusionObjective(**meta.get("objective", {}))
        except TypeError as err:
            raise ValueError(f"{meta_path}: objective: {err}") from err
        return cls(objective=objective, frozen=meta.get("frozen", ()), **components)


def _load_component(cls: type, folder: Path):
    """One component of an lsd model folder; weights from safetensors only, checked finite."""
    from diffusers import ModelMixin
    from safetensors import SafetensorError, safe_open

    if not issubclass(cls, ModelMixin):  # e.g. the noise scheduler: a JSON config only
        return cls.from_pretrained(folder)
    weights = folder / "diffusion_pytorch_model.safetensors"
    if not weights.is_file():
        try:
            bare = cls.from_config(cls.load_config(folder))
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read {folder / 'config.json'} ({type(err).__name__}: {err})") from err
        if not bare.state_dict():  # nothing to load (e.g. the pixel-unshuffle autoencoder)
            return bare
        raise FileNotFoundError(f"{weights} is missing (lsd model folders keep weights in safetensors)")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            handle.keys()
        component = cls.from_pretrained(folder, use_safetensors=True, local_files_only=True)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"cannot load {weights} ({type(err).__name__}: {str(err).splitlines()[0]})") from err
    check_finite(component.state_dict().items(), str(weights))
    return component


def attention_to_segmentation(attn: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """``(B, H, N, S)`` slot attention (N a square grid) -> ``(B, *size)`` argmax slot ids."""
    batch, _, num_inputs, num_slots = attn.shape
    side = int(round(num_inputs**0.5))
    if side * side != num_inputs:
        raise ValueError(f"attention over {num_inputs} inputs is not a square grid")
    maps = attn.float().sum(dim=1).transpose(1, 2).reshape(batch, num_slots, side, side)
    size = (size, size) if isinstance(size, int) else tuple(size)
    maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    return maps.argmax(dim=1)


__all__ = ["DiffusionObjective", "LatentSlotDiffusion", "attention_to_segmentation"]
