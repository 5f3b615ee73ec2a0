"""``LatentSlotDiffusion``: VAE + object encoder + slot attention + slot-conditioned denoiser.

Data flow of one training step (Jiang et al. 2023; the release's ``train_lsd.py``):

    pixels (B, 3, R, R) in [-1, 1] --frozen VAE--> z (B, c, R/f, R/f)
    z_t = scheduler.add_noise(z, eps, t),  eps ~ N(0, I) (+ offset noise),  t ~ U{t_min..t_max}
    pixels --backbone--> features (B, C, h, w) --slot attention--> slots (B, S, D_out), attn
    pred = unet(z_t, t, encoder_hidden_states=slots).sample
    loss = mean MSE(pred, eps or v) in float32   (optionally min-SNR-gamma weighted)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.utils.torch_utils import randn_tensor
from torch import nn

from lsd._atomic import atomic_dir
from lsd._integrity import check_finite, verify_manifest, write_manifest
from lsd.backends import resolve_kernel_backend
from lsd.models.autoencoder import Autoencoder, PixelUnshuffleAutoencoder, decode_latents, encode_latents
from lsd.models.backbone import CNNBackbone
from lsd.models.denoiser import SlotConditionedUNet, set_unet_kernel_backend
from lsd.models.slot_attention import SlotAttention, SlotAttentionOutput

LSD_CONFIG_NAME = "lsd_config.json"
PREDICTION_TYPES = ("epsilon", "v_prediction")


def _component_classes() -> dict[str, type]:
    """Class name (as written in a component's config ``_class_name``) -> class."""
    from lsd.models.dinov2 import DINOv2Backbone  # transformers is imported only when used

    classes = [
        CNNBackbone, DINOv2Backbone, SlotAttention, SlotConditionedUNet, UNet2DConditionModel,
        AutoencoderKL, PixelUnshuffleAutoencoder, DDPMScheduler,
    ]  # fmt: skip
    return {cls.__name__: cls for cls in classes}


@dataclass
class DiffusionObjective:
    """Training-objective options (not architecture); saved in ``lsd_config.json``.

    Attributes:
        noise_offset: offset-noise scale: ``eps += noise_offset * N(0, 1)`` per (sample, channel).
        snr_gamma: min-SNR-gamma loss weighting (Hang et al. 2023) when set; ``None`` = plain MSE.
        min_timestep, max_timestep: training timesteps are drawn uniformly from this inclusive range
            (release: 0 .. num_train_timesteps - 1; ``None`` means that upper end).
    """

    noise_offset: float = 0.0
    snr_gamma: float | None = None
    min_timestep: int = 0
    max_timestep: int | None = None


@dataclass
class TrainingLossOutput:
    """Attributes:
    loss: scalar, what to backpropagate.
    mse: ``(B,)`` unweighted per-sample MSE (float32).
    timesteps: ``(B,)`` the sampled timesteps.
    encoding: the slot-attention output used to condition the denoiser.
    """

    loss: torch.Tensor
    mse: torch.Tensor
    timesteps: torch.Tensor
    encoding: SlotAttentionOutput


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
            ``None`` for a model that only encodes/segments (training then raises).
        objective: :class:`DiffusionObjective`.
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

    def encode_latents(
        self, pixel_values: torch.Tensor, generator: torch.Generator | list[torch.Generator] | None = None
    ) -> torch.Tensor:
        """Pixels ``(B, 3, R, R)`` -> scaled VAE latents (sampled from the posterior, no grad)."""
        return encode_latents(self._require_vae(), pixel_values, generator)

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

    # -- training ------------------------------------------------------------------------------
    def forward(self, pixel_values: torch.Tensor, **kwargs: Any) -> TrainingLossOutput:
        """Same as :meth:`training_loss` (so that DDP wrappers see a ``forward`` call)."""
        return self.training_loss(pixel_values, **kwargs)

    def training_loss(
        self,
        pixel_values: torch.Tensor,
        *,
        backbone_pixel_values: torch.Tensor | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        noise: torch.Tensor | None = None,
        timesteps: torch.Tensor | None = None,
        slot_noise: torch.Tensor | None = None,
        slot_permutation: torch.Tensor | None = None,
    ) -> TrainingLossOutput:
        """The LSD denoising loss of a batch.

        Every random draw comes from ``generator`` (or the global RNG) unless given explicitly:
        ``noise`` (latent-shaped), ``timesteps`` ``(B,)``, ``slot_noise`` ``(B, S, slot_size)``.
        ``generator`` may be a list with one generator per sample; sample ``i`` then draws, in this
        order, its VAE posterior sample, noise, offset noise, timestep and slot noise from
        ``generator[i]`` alone, so a sample's loss does not depend on the rest of the batch (how
        multi-process training reproduces single-process training).
        ``slot_permutation`` ``(B,)``: condition image ``i`` on the slots of image
        ``slot_permutation[i]`` (the "does the decoder use its slots" diagnostic).
        """
        obj, sched = self.objective, self.scheduler
        latents = self.encode_latents(pixel_values, generator)
        batch, device = latents.shape[0], latents.device
        if noise is None:
            noise = randn_tensor(latents.shape, generator=generator, device=device, dtype=latents.dtype)
        if obj.noise_offset:
            offset_shape = (batch, latents.shape[1], 1, 1)
            noise = noise + obj.noise_offset * randn_tensor(
                offset_shape, generator=generator, device=device, dtype=latents.dtype
            )
        if timesteps is None:
            high = (obj.max_timestep if obj.max_timestep is not None else sched.config.num_train_timesteps - 1) + 1
            timesteps = _randint(obj.min_timestep, high, batch, generator, device)
        timesteps = timesteps.to(device=device, dtype=torch.long)
        if slot_noise is None and not self.slot_attention.config.learnable_slot_init:
            sa = self.slot_attention.config
            shape = (batch, sa.num_slots, sa.slot_size)
            slot_noise = randn_tensor(shape, generator=generator, device=device, dtype=self.slot_attention.dtype)

        noisy = sched.add_noise(latents, noise, timesteps)
        encoding = self.encode(pixel_values, noise=slot_noise, backbone_pixel_values=backbone_pixel_values)
        slots = encoding.slots if slot_permutation is None else encoding.slots[slot_permutation.to(device)]
        pred = self.unet(noisy, timesteps, encoder_hidden_states=slots).sample
        if sched.config.prediction_type == "epsilon":
            target = noise
        else:
            target = sched.get_velocity(latents, noise, timesteps)
        mse = F.mse_loss(pred.float(), target.float(), reduction="none").flatten(1).mean(dim=1)  # (B,)
        if obj.snr_gamma is None:
            loss = mse.mean()
        else:
            loss = (mse * self.min_snr_weights(timesteps)).mean()
        return TrainingLossOutput(loss=loss, mse=mse, timesteps=timesteps, encoding=encoding)

    @torch.no_grad()
    def generate(
        self,
        slots: torch.Tensor,
        num_inference_steps: int = 25,
        generator: torch.Generator | list[torch.Generator] | None = None,
        sampler: str = "dpm",
        progress: bool = False,
    ) -> torch.Tensor:
        """Decode slots ``(B, S, out_size)`` to images ``(B, 3, R, R)`` in [-1, 1] (clamped).

        The release's validation sampler: DPM-Solver++ multistep (``sampler="dpm"``) or DDIM
        (``"ddim"``) built from this model's training scheduler config, guidance scale 1.0 (no
        classifier-free guidance: LSD has no unconditional branch).
        """
        from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
        from tqdm.auto import tqdm

        classes = {"dpm": DPMSolverMultistepScheduler, "ddim": DDIMScheduler}
        if sampler not in classes:
            raise ValueError(f"sampler must be one of {sorted(classes)}, got {sampler!r}")
        scheduler = classes[sampler].from_config(self.scheduler.config)
        scheduler.set_timesteps(num_inference_steps, device=slots.device)
        cfg = self.unet.config
        shape = (slots.shape[0], cfg.in_channels, cfg.sample_size, cfg.sample_size)
        latents = randn_tensor(shape, generator=generator, device=slots.device, dtype=slots.dtype)
        latents = latents * scheduler.init_noise_sigma
        timesteps = scheduler.timesteps
        lowest_trained = self.objective.min_timestep
        for i, t in enumerate(tqdm(timesteps, desc="sampling", disable=not progress)):
            model_input = scheduler.scale_model_input(latents, t)
            pred = self.unet(model_input, t, encoder_hidden_states=slots).sample
            following = int(timesteps[i + 1]) if i + 1 < len(timesteps) else -1
            if lowest_trained > 0 and following < lowest_trained:
                # A denoiser trained on t >= min_timestep has never seen lower noise: stop here and
                # return its clean estimate (a documented departure; min_timestep = 0 is the release).
                latents = self.predict_clean(latents, pred, t)
                break
            latents = scheduler.step(pred, t, latents).prev_sample
        return self.decode_latents(latents).clamp(-1, 1)

    def predict_clean(self, noisy: torch.Tensor, pred: torch.Tensor, timestep: int | torch.Tensor) -> torch.Tensor:
        """The clean latents ``x0`` implied by the denoiser's output ``pred`` at ``timestep``
        (epsilon: ``(x_t - sqrt(1 - a) eps) / sqrt(a)``; v: ``sqrt(a) x_t - sqrt(1 - a) v``, with
        ``a`` the training scheduler's cumulative alpha). Shapes: ``(B, C, h, w)``."""
        alpha = self.scheduler.alphas_cumprod[int(timestep)].to(device=noisy.device, dtype=torch.float32)
        x_t, out = noisy.float(), pred.float()
        if self.scheduler.config.prediction_type == "epsilon":
            clean = (x_t - (1 - alpha).sqrt() * out) / alpha.sqrt()
        elif self.scheduler.config.prediction_type == "v_prediction":
            clean = alpha.sqrt() * x_t - (1 - alpha).sqrt() * out
        else:
            raise ValueError(f"unsupported prediction_type {self.scheduler.config.prediction_type!r}")
        return clean.to(noisy.dtype)

    def min_snr_weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        """min-SNR-gamma weights ``(B,)``: ``min(snr, gamma) / snr`` for epsilon targets,
        ``min(snr, gamma) / (snr + 1)`` for v-prediction (Hang et al. 2023)."""
        from diffusers.training_utils import compute_snr

        snr = compute_snr(self.scheduler, timesteps).float()
        clipped = torch.clamp(snr, max=self.objective.snr_gamma)
        if self.scheduler.config.prediction_type == "v_prediction":
            return clipped / (snr + 1)
        return clipped / snr

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
    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Write the whole model as one folder: a subfolder per component (diffusers layout, weights
        in safetensors), ``lsd_config.json`` and, last, ``manifest.json`` (size + sha256 of every
        file). Written to a temporary folder first, then renamed into place (:mod:`lsd._atomic`)."""
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
        verify_manifest(directory, required=False)
        try:
            meta = json.loads(meta_path.read_text())
            listed = dict(meta["components"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise ValueError(f"{meta_path}: not an lsd model config ({type(err).__name__}: {err})") from err
        classes = _component_classes()
        components: dict[str, Any] = {}
        for name, class_name in listed.items():
            if name in component_overrides:
                continue
            if class_name not in classes:
                raise ValueError(f"{meta_path}: unknown component class {class_name!r} for {name!r}")
            if not (directory / name).is_dir():
                raise FileNotFoundError(f"{directory / name} is missing (listed in {meta_path})")
            components[name] = _load_component(classes[class_name], directory / name)
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


def _randint(
    low: int, high: int, batch: int, generator: torch.Generator | list[torch.Generator] | None, device: torch.device
) -> torch.Tensor:
    """``(batch,)`` integers in ``[low, high)``; one draw per generator when given a list."""
    if isinstance(generator, list):
        if len(generator) != batch:
            raise ValueError(f"got {len(generator)} generators for a batch of {batch}")
        draws = [torch.randint(low, high, (1,), generator=g, device=g.device) for g in generator]
        return torch.cat(draws).to(device)
    gen_device = generator.device if generator is not None else device
    return torch.randint(low, high, (batch,), generator=generator, device=gen_device).to(device)


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


__all__ = ["DiffusionObjective", "LatentSlotDiffusion", "TrainingLossOutput", "attention_to_segmentation"]
