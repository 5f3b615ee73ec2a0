"""``LSDPipeline``: decode slots to images, reconstruct images from their slots, with optional
classifier-free guidance (Stable-LSD). The project's one sampling loop.

Conventions (docs/generation.md):

- Pixels given to the pipeline are ``(B, 3, R, R)`` tensors in [-1, 1] (or PIL images of side R);
  images it returns follow diffusers: ``output_type="pt"`` / ``"np"`` in [0, 1], ``"pil"`` PIL
  images, ``"latent"`` the scaled latents before decoding.
- Sampler: ``"dpm"`` (DPM-Solver++ multistep, the release's validation sampler) or ``"ddim"``,
  built from the model's *training* scheduler config, started from ``randn * init_noise_sigma``.
  With guidance 1.0 this is step for step what the release's validation call computes:
  ``StableDiffusionPipeline(vae, unet, DPMSolverMultistepScheduler.from_config(train config),
  text_encoder=None)(prompt_embeds=slots, num_inference_steps=25, guidance_scale=1.0)``.
- Guidance: ``pred = uncond + s * (cond - uncond)`` for ``s > 1``, the unconditional branch being
  the denoiser conditioned on the *null embedding*: Stable-LSD's is what diffusers' Stable
  Diffusion pipeline computes when given ``prompt_embeds`` and no negative embeddings: SD's CLIP
  text encoder applied to the empty prompt, tokenised with ``padding="max_length"`` and
  ``max_length`` = the slot count. Plain LSD has no unconditional branch (it is trained without
  slot dropout): it refuses ``guidance_scale > 1``.
- Early stop: a model trained on timesteps ``>= objective.min_timestep > 0`` has never seen lower
  noise; sampling stops at the last inference timestep at or above it and returns the
  denoiser's clean estimate there (a documented departure; ``min_timestep = 0`` is the release).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from lsd.models.autoencoder import PixelUnshuffleAutoencoder
from lsd.models.lsd import LatentSlotDiffusion, attention_to_segmentation
from lsd.models.objective_options import DiffusionObjective
from lsd.models.slot_attention import sample_slot_noise

#: ``sampler=`` name -> diffusers scheduler class (built from the training scheduler's config).
SAMPLERS = {"dpm": DPMSolverMultistepScheduler, "ddim": DDIMScheduler}
OUTPUT_TYPES = ("pil", "pt", "np", "latent")
#: The null embedding's file in an lsd model folder (safetensors, one tensor ``null_embedding``).
NULL_EMBEDDING_FILE = "null_embedding.safetensors"
Generator = torch.Generator | list[torch.Generator] | None


@dataclass
class LSDPipelineOutput(BaseOutput):
    """What :class:`LSDPipeline` returns.

    Attributes:
        images: ``output_type="pil"``: a list of PIL images; ``"np"``: ``(B, R, R, 3)`` float32 in
            [0, 1]; ``"pt"``: ``(B, 3, R, R)`` in [0, 1]; ``"latent"``: ``(B, c, r, r)`` scaled latents.
        slots: ``(B, S, D)`` the slots decoded (``None`` when slots were given).
        masks: ``(B, R, R)`` int64 slot id per pixel, the release's segmentation rule (argmax of
            the head-summed last-iteration attention, bilinearly resized); ``None`` when slots were given.
    """

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor
    slots: torch.Tensor | None = None
    masks: torch.Tensor | None = None


class LSDPipeline(DiffusionPipeline):
    """Sampling from an LSD model (see the module docstring for the conventions).

    Build it with :meth:`from_pretrained` (an lsd model folder, a training checkpoint or run, or
    a release checkpoint) or :meth:`from_model` (a :class:`~lsd.LatentSlotDiffusion`); call it
    with ``images=`` (encode, then decode their slots) or ``slots=`` (decode given slots).

    Args:
        vae: the model's autoencoder (``AutoencoderKL`` or :class:`PixelUnshuffleAutoencoder`).
        backbone, slot_attention: the object encoder (used by ``images=`` calls only).
        unet: the slot-conditioned denoiser.
        scheduler: the model's *training* ``DDPMScheduler``; samplers are built from its config.
        min_timestep: the lowest training timestep (the early stop; 0 = the release).
    """

    model_cpu_offload_seq = "backbone->slot_attention->unet->vae"

    def __init__(self, vae, backbone, slot_attention, unet, scheduler, min_timestep: int = 0) -> None:
        super().__init__()
        self.register_modules(vae=vae, backbone=backbone, slot_attention=slot_attention, unet=unet, scheduler=scheduler)
        self.register_to_config(min_timestep=int(min_timestep))
        if vae is None:
            raise ValueError(
                "LSDPipeline needs an autoencoder: the model has none (pass vae=..., e.g. "
                "lsd.load_pretrained_vae(...) for a release checkpoint)"
            )
        self.model  # noqa: B018 -- checks that the components fit together (raises otherwise)
        self.null_embedding: torch.Tensor | None = None
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor, do_resize=False)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_model(cls, model: LatentSlotDiffusion, null_embedding: torch.Tensor | None = None) -> LSDPipeline:
        """A pipeline over ``model``'s components (shared, not copied)."""
        pipe = cls(
            vae=model.vae,
            backbone=model.backbone,
            slot_attention=model.slot_attention,
            unet=model.unet,
            scheduler=model.scheduler,
            min_timestep=model.objective.min_timestep,
        )
        if null_embedding is not None:
            pipe.set_null_embedding(null_embedding)
        return pipe

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, vae: Any = None, **components: Any) -> LSDPipeline:  # type: ignore[override]
        """Load from an lsd model folder, an lsd training checkpoint (or run folder: its latest
        checkpoint) or a release checkpoint (:func:`lsd.runs.resolve_checkpoint`).

        Args:
            vae: an autoencoder or a local folder / cached repo id for :func:`lsd.load_pretrained_vae`;
                required for release checkpoints (the release does not save it), optional otherwise
                (replaces the saved one).
            components: replace saved components (``scheduler=``, ``unet=``, ...).

        A ``null_embedding.safetensors`` in the model folder becomes :attr:`null_embedding`.
        """
        from lsd.models.pretrained import load_pretrained_vae
        from lsd.runs import resolve_checkpoint

        kind, folder = resolve_checkpoint(path)
        if isinstance(vae, (str, os.PathLike)):
            vae = load_pretrained_vae(vae)
        if kind == "release":
            if vae is None:
                raise ValueError(f"{folder} is a release checkpoint, which stores no autoencoder: pass vae=...")
            from lsd.official import load_official_checkpoint

            model = load_official_checkpoint(folder, vae=vae, **components)
        else:
            overrides = dict(components, **({} if vae is None else {"vae": vae}))
            model = LatentSlotDiffusion.from_pretrained(folder, **overrides)
        pipe = cls.from_model(model.eval())
        if (folder / NULL_EMBEDDING_FILE).is_file():
            pipe.set_null_embedding(load_null_embedding(folder / NULL_EMBEDDING_FILE))
        return pipe

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Write an lsd model folder (:meth:`LatentSlotDiffusion.save_pretrained`) plus the null
        embedding, if set, as ``null_embedding.safetensors``."""
        embedding = self.null_embedding
        write_extra = (
            None if embedding is None else lambda tmp: save_null_embedding(embedding, tmp / NULL_EMBEDDING_FILE)
        )
        self.model.save_pretrained(save_directory, write_extra=write_extra)

    @property
    def model(self) -> LatentSlotDiffusion:
        """The :class:`~lsd.LatentSlotDiffusion` over this pipeline's components (shared modules)."""
        return LatentSlotDiffusion(
            self.backbone,
            self.slot_attention,
            self.unet,
            self.scheduler,
            vae=self.vae,
            objective=DiffusionObjective(min_timestep=self.config.min_timestep),
        )

    @property
    def device(self) -> torch.device:
        """Where the components' weights are (an accelerator when any is on one); parameter-free
        components (:class:`PixelUnshuffleAutoencoder`) are skipped."""
        modules = (self.unet, self.slot_attention, self.backbone, self.vae)
        devices = [p.device for m in modules for p in m.parameters()]
        return next((d for d in devices if d.type not in ("cpu", "meta")), devices[0])

    def to(self, *args: Any, **kwargs: Any) -> LSDPipeline:
        """Move / cast every component like ``nn.Module.to`` (diffusers' version reads each
        component's dtype, which a parameter-free :class:`PixelUnshuffleAutoencoder` lacks)."""
        for module in (self.vae, self.backbone, self.slot_attention, self.unet):
            module.to(*args, **kwargs)
        return self

    @property
    def dtype(self) -> torch.dtype:
        """The denoiser's dtype (what sampling runs in)."""
        return self.unet.dtype

    @property
    def vae_scale_factor(self) -> int:
        if isinstance(self.vae, PixelUnshuffleAutoencoder):
            return int(self.vae.config.factor)
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def resolution(self) -> int:
        """Side ``R`` of the images the denoiser generates (and that ``images=`` must have)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    # -- the null embedding --------------------------------------------------------------------
    def set_null_embedding(self, source: Any) -> torch.Tensor:
        """Set the unconditional embedding used when ``guidance_scale > 1``; returns it ``(1, S, D)``.

        ``source``: a tensor ``(1, S, D)`` or ``(S, D)``; a ``(text_encoder, tokenizer)`` pair; or a
        local folder / cached repo id holding ``text_encoder/`` and ``tokenizer/`` (e.g.
        ``"stabilityai/stable-diffusion-2-1"``, Stable-LSD's), never downloaded. From a text
        encoder it is :func:`encode_null_embedding` at this model's slot count.
        """
        if isinstance(source, (str, os.PathLike)):
            source = load_text_encoder(source)
        if isinstance(source, tuple):
            text_encoder, tokenizer = source
            source = encode_null_embedding(text_encoder, tokenizer, self.slot_attention.config.num_slots)
        if not isinstance(source, torch.Tensor):
            raise TypeError(f"null embedding: expected a tensor, (text_encoder, tokenizer) or a path, got {source!r}")
        embedding = source.detach()[None] if source.dim() == 2 else source.detach()
        width = self.unet.config.cross_attention_dim
        if embedding.dim() != 3 or embedding.shape[0] != 1 or embedding.shape[2] != width:
            raise ValueError(
                f"null embedding: expected shape (1, S, {width}) (the denoiser's cross_attention_dim), "
                f"got {tuple(source.shape)}"
            )
        self.null_embedding = embedding.cpu()
        return self.null_embedding

    # -- sampling ------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        images: torch.Tensor | PIL.Image.Image | Sequence[PIL.Image.Image] | None = None,
        slots: torch.Tensor | None = None,
        *,
        num_inference_steps: int = 25,
        guidance_scale: float = 1.0,
        generator: Generator = None,
        output_type: str = "pil",
        sampler: str = "dpm",
        batch_size: int | None = None,
        slot_noise: torch.Tensor | None = None,
        backbone_images: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> LSDPipelineOutput | tuple:
        """Decode ``slots`` ``(B, S, D)``, or encode ``images`` ``(B, 3, R, R)`` in [-1, 1] and decode theirs.

        Args:
            num_inference_steps: sampler steps (release validation: 25; Stable-LSD figures: 100).
            guidance_scale: classifier-free guidance scale; 1.0 = none. Above 1 needs
                :attr:`null_embedding` (:meth:`set_null_embedding`).
            generator: one generator, or one per sample. Per batch of ``batch_size`` samples the
                draws are, in order: slot-init noise ``(b, S, slot_size)`` (``images=`` calls with
                a Gaussian slot init and no ``slot_noise``), then the initial latents. With one
                generator the result depends on ``batch_size``; with one per sample it does not.
            output_type: ``"pil"``, ``"np"``, ``"pt"`` (images in [0, 1]) or ``"latent"``.
            sampler: ``"dpm"`` (DPM-Solver++ multistep, the release's) or ``"ddim"``.
            batch_size: samples per denoising batch (default: all at once).
            slot_noise: ``(B, S, slot_size)`` slot-init draws for ``images=`` calls.
            backbone_images: the backbone's own view for ``images=`` calls (a DINOv2 backbone:
                ImageNet-normalised at its input resolution, as ``GlobImageDataset`` makes it).
            return_dict: return :class:`LSDPipelineOutput` (else a tuple ``(images, slots, masks)``).
        """
        pixels = self._check_call(images, slots, num_inference_steps, guidance_scale, output_type, sampler, batch_size)
        if pixels is not None and backbone_images is None and type(self.backbone).__name__ == "DINOv2Backbone":
            raise ValueError(
                "backbone_images: a DINOv2 backbone needs its own ImageNet-normalised view of the images "
                "(GlobImageDataset(dinov2_resolution=...) gives it as backbone_pixel_values)"
            )
        device = self._execution_device
        total = (pixels if pixels is not None else slots).shape[0]
        batch_size = batch_size or total
        generators = _split_generators(generator, total)
        if slot_noise is not None and (pixels is None or slot_noise.shape[0] != total):
            raise ValueError("slot_noise: expected one row per image of images= (and only with images=)")
        chunks = list(range(0, total, batch_size))
        outputs, all_slots, all_masks = [], [], []
        with self.progress_bar(total=len(chunks) * num_inference_steps) as bar:
            for start in chunks:
                part = slice(start, start + batch_size)
                gen = generators(part)
                if pixels is not None:
                    view = None if backbone_images is None else backbone_images[part].to(device)
                    noise = None if slot_noise is None else slot_noise[part]
                    encoded, masks = self._encode(pixels[part].to(device), gen, noise, view)
                    all_slots.append(encoded)
                    all_masks.append(masks)
                else:
                    encoded = slots[part]
                latents = self._sample_latents(encoded, num_inference_steps, guidance_scale, gen, sampler, bar)
                if output_type != "latent":
                    latents = self.model.decode_latents(latents)
                outputs.append(latents)
        result = torch.cat(outputs)
        if output_type != "latent":
            result = self.image_processor.postprocess(result, output_type="pt", do_denormalize=[True] * total)
            if output_type != "pt":
                result = self.image_processor.pt_to_numpy(result)
                if output_type == "pil":
                    result = self.image_processor.numpy_to_pil(result)
        found_slots = torch.cat(all_slots) if all_slots else None
        found_masks = torch.cat(all_masks) if all_masks else None
        self.maybe_free_model_hooks()
        if not return_dict:
            return result, found_slots, found_masks
        return LSDPipelineOutput(images=result, slots=found_slots, masks=found_masks)

    def _encode(
        self, pixels: torch.Tensor, generator: Generator, noise: torch.Tensor | None, view: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots ``(b, S, D)`` and segmentation masks ``(b, R, R)`` of pixels ``(b, 3, R, R)``."""
        sa = self.slot_attention.config
        if noise is None and not sa.learnable_slot_init:
            noise = sample_slot_noise(
                sa.num_slots, sa.slot_size, pixels.shape[0], generator, pixels.device, self.slot_attention.dtype
            )
        elif noise is not None:
            noise = noise.to(device=pixels.device, dtype=self.slot_attention.dtype)
        encoding = self.model.encode(pixels, noise=noise, backbone_pixel_values=view)
        return encoding.slots, attention_to_segmentation(encoding.attn, pixels.shape[-2:])

    def _sample_latents(
        self,
        slots: torch.Tensor,
        num_inference_steps: int,
        guidance_scale: float,
        generator: Generator,
        sampler: str,
        bar: Any,
    ) -> torch.Tensor:
        """The sampling loop: slots ``(b, S, D)`` -> clean latents ``(b, c, r, r)``."""
        device = self._execution_device
        slots = slots.to(device=device, dtype=self.unet.dtype)
        scheduler = SAMPLERS[sampler].from_config(self.scheduler.config)
        scheduler.set_timesteps(num_inference_steps, device=device)
        cfg = self.unet.config
        shape = (slots.shape[0], cfg.in_channels, cfg.sample_size, cfg.sample_size)
        latents = randn_tensor(shape, generator=generator, device=device, dtype=slots.dtype)
        latents = latents * scheduler.init_noise_sigma
        guided = guidance_scale > 1.0
        if guided:  # diffusers' order: unconditional first, one batched denoiser call
            null = self.null_embedding.to(device=device, dtype=slots.dtype).expand(slots.shape[0], -1, -1)
            condition = torch.cat([null, slots])
        else:
            condition = slots
        timesteps = scheduler.timesteps
        lowest_trained = self.config.min_timestep
        for i, t in enumerate(timesteps):
            model_input = torch.cat([latents] * 2) if guided else latents
            model_input = scheduler.scale_model_input(model_input, t)
            pred = self.unet(model_input, t, encoder_hidden_states=condition).sample
            if guided:
                uncond, cond = pred.chunk(2)
                pred = uncond + guidance_scale * (cond - uncond)
            following = int(timesteps[i + 1]) if i + 1 < len(timesteps) else -1
            bar.update()
            if lowest_trained > 0 and following < lowest_trained:
                # A denoiser trained on t >= min_timestep has never seen lower noise: stop here and
                # return its clean estimate (a documented departure; min_timestep = 0 is the release).
                bar.update(len(timesteps) - i - 1)
                return predict_clean(self.scheduler, latents, pred, t)
            latents = scheduler.step(pred, t, latents).prev_sample
        return latents

    def _check_call(
        self,
        images: Any,
        slots: torch.Tensor | None,
        num_inference_steps: int,
        guidance_scale: float,
        output_type: str,
        sampler: str,
        batch_size: int | None,
    ) -> torch.Tensor | None:
        """Validate the arguments (before any compute); returns the pixels of ``images`` or None."""
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler: must be one of {sorted(SAMPLERS)}, got {sampler!r}")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type: must be one of {list(OUTPUT_TYPES)}, got {output_type!r}")
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps: must be a positive int, got {num_inference_steps!r}")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size: must be a positive int or None, got {batch_size!r}")
        if not guidance_scale >= 1.0:
            raise ValueError(f"guidance_scale: must be >= 1.0 (1.0 = no guidance), got {guidance_scale!r}")
        if (images is None) == (slots is None):
            raise ValueError("give exactly one of images= (pixels to reconstruct) or slots= (slots to decode)")
        width = self.unet.config.cross_attention_dim
        pixels = None
        if images is not None:
            pixels = self._check_images(images)
            num_slots = self.slot_attention.config.num_slots
        else:
            if not isinstance(slots, torch.Tensor) or slots.dim() != 3:
                shape = tuple(slots.shape) if isinstance(slots, torch.Tensor) else type(slots).__name__
                hint = "; images go to images=" if isinstance(slots, torch.Tensor) and slots.dim() == 4 else ""
                raise ValueError(f"slots: expected a (batch, num_slots, {width}) tensor, got {shape}{hint}")
            if slots.shape[2] != width:
                raise ValueError(
                    f"slots: width {slots.shape[2]} does not match the denoiser's cross_attention_dim {width} "
                    f"(shape {tuple(slots.shape)})"
                )
            num_slots = slots.shape[1]
        self.check_guidance(guidance_scale, num_slots)
        return pixels

    def check_guidance(self, guidance_scale: float, num_slots: int) -> None:
        """Refuse ``guidance_scale > 1`` unless a null embedding for ``num_slots`` slots is set (a
        ValueError that says how to set one); a scale of 1 or below needs none."""
        if guidance_scale <= 1.0:
            return
        if self.null_embedding is None:
            raise ValueError(
                f"guidance_scale={guidance_scale}: this model has no unconditional branch (no null embedding; "
                "plain LSD is trained without one). Use guidance_scale=1.0, or for Stable-LSD call "
                'pipe.set_null_embedding("stabilityai/stable-diffusion-2-1") first'
            )
        if self.null_embedding.shape[1] != num_slots:
            raise ValueError(
                f"guidance_scale={guidance_scale}: the null embedding covers {self.null_embedding.shape[1]} "
                f"slots, the slots to decode are {num_slots}; set it again from the text encoder"
            )

    def _check_images(self, images: Any) -> torch.Tensor:
        """``images`` as ``(B, 3, R, R)`` pixels in [-1, 1], or a ValueError naming what is wrong."""
        side = self.resolution
        if isinstance(images, PIL.Image.Image):
            images = [images]
        if isinstance(images, (list, tuple)) and images and all(isinstance(i, PIL.Image.Image) for i in images):
            sizes = {i.size for i in images}
            if sizes != {(side, side)}:
                raise ValueError(
                    f"images: PIL images must be {side}x{side} (this model's resolution), got sizes {sorted(sizes)}; "
                    "resize first (e.g. lsd.data.transforms.resize_and_crop)"
                )
            from lsd.data.images import as_rgb
            from lsd.data.transforms import to_model_range

            return torch.stack([to_model_range(as_rgb(i, f"images[{n}]")) for n, i in enumerate(images)])
        if not isinstance(images, torch.Tensor):
            raise ValueError(
                f"images: expected a (B, 3, {side}, {side}) tensor or PIL images, got {type(images).__name__}"
            )
        if images.dim() != 4 or images.shape[1] != 3:
            hint = "; slot vectors go to slots=" if images.dim() == 3 else ""
            raise ValueError(f"images: expected a (B, 3, {side}, {side}) pixel tensor, got {tuple(images.shape)}{hint}")
        if tuple(images.shape[-2:]) != (side, side):
            raise ValueError(
                f"images: expected {side}x{side} pixels (this model's resolution), got {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise ValueError(f"images: expected floating-point pixels in [-1, 1], got dtype {images.dtype}")
        low, high = images.min().item(), images.max().item()
        if low < -1.0 or high > 1.0:
            raise ValueError(
                f"images: pixel values must lie in [-1, 1], got [{low:.3g}, {high:.3g}] "
                "(for images in [0, 1] pass images * 2 - 1)"
            )
        return images


def predict_clean(
    scheduler: Any, noisy: torch.Tensor, pred: torch.Tensor, timestep: int | torch.Tensor
) -> torch.Tensor:
    """The clean latents ``x0`` implied by the denoiser's output ``pred`` at ``timestep``
    (epsilon: ``(x_t - sqrt(1 - a) eps) / sqrt(a)``; v: ``sqrt(a) x_t - sqrt(1 - a) v``, with
    ``a`` the training ``scheduler``'s cumulative alpha, in float32). Shapes: ``(B, C, h, w)``."""
    alpha = scheduler.alphas_cumprod[int(timestep)].to(device=noisy.device, dtype=torch.float32)
    x_t, out = noisy.float(), pred.float()
    if scheduler.config.prediction_type == "epsilon":
        clean = (x_t - (1 - alpha).sqrt() * out) / alpha.sqrt()
    elif scheduler.config.prediction_type == "v_prediction":
        clean = alpha.sqrt() * x_t - (1 - alpha).sqrt() * out
    else:
        raise ValueError(f"unsupported prediction_type {scheduler.config.prediction_type!r}")
    return clean.to(noisy.dtype)


def encode_null_embedding(text_encoder: Any, tokenizer: Any, num_slots: int) -> torch.Tensor:
    """Stable-LSD's unconditional embedding ``(1, num_slots, D)``: the empty prompt tokenised with
    ``padding="max_length"``, ``max_length=num_slots``, through the CLIP text encoder's last
    hidden state, exactly as diffusers' ``StableDiffusionPipeline.encode_prompt`` builds it when it
    is given ``prompt_embeds`` and no negative embeddings (attention mask only when the encoder's
    config sets ``use_attention_mask``)."""
    tokens = tokenizer([""], padding="max_length", max_length=num_slots, truncation=True, return_tensors="pt")
    device = next(text_encoder.parameters()).device
    use_mask = getattr(text_encoder.config, "use_attention_mask", False)
    mask = tokens.attention_mask.to(device) if use_mask else None
    with torch.no_grad():
        return text_encoder(tokens.input_ids.to(device), attention_mask=mask)[0].detach().cpu()


def load_text_encoder(name_or_path: str | os.PathLike) -> tuple[Any, Any]:
    """``(CLIPTextModel, CLIPTokenizer)`` from ``text_encoder/`` and ``tokenizer/`` of a local
    folder or a repo already in the local Hugging Face cache (never downloaded; a clear
    :class:`~lsd.PretrainedNotFound` when absent)."""
    from transformers import CLIPTextModel, CLIPTokenizer

    from lsd.models.pretrained import resolve_pretrained

    encoder_dir = resolve_pretrained(name_or_path, "text_encoder", "pretrained CLIP text encoder")
    tokenizer_dir = resolve_pretrained(name_or_path, "tokenizer", "pretrained CLIP tokenizer", "tokenizer_config.json")
    text_encoder = CLIPTextModel.from_pretrained(encoder_dir, local_files_only=True).eval()
    return text_encoder, CLIPTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)


def save_null_embedding(embedding: torch.Tensor, path: str | os.PathLike) -> None:
    """Write ``embedding`` ``(1, S, D)`` to ``path`` (safetensors; temporary name, then renamed)."""
    from safetensors.torch import save_file

    from lsd._atomic import atomic_write

    atomic_write(path, lambda tmp: save_file({"null_embedding": embedding.contiguous().cpu()}, str(tmp)))


def load_null_embedding(path: str | os.PathLike) -> torch.Tensor:
    """Read a null embedding written by :func:`save_null_embedding` (safetensors, no pickle)."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))["null_embedding"]
    except Exception as err:  # corrupt file or missing key
        raise ValueError(f"could not read the null embedding {path}: {err}") from err


def _split_generators(generator: Generator, total: int):
    """``part -> generator(s)`` for a slice of the batch; checks a list's length."""
    if isinstance(generator, list):
        if len(generator) != total:
            raise ValueError(f"generator: got {len(generator)} generators for {total} samples")
        return lambda part: generator[part]
    return lambda part: generator


__all__ = [
    "NULL_EMBEDDING_FILE",
    "SAMPLERS",
    "LSDPipeline",
    "LSDPipelineOutput",
    "encode_null_embedding",
    "load_null_embedding",
    "load_text_encoder",
    "predict_clean",
    "save_null_embedding",
]
